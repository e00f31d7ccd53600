"""aecodec.train.distributed: two DDP processes on the CPU end with identical weights."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from aecodec.models.checkpoint import load_checkpoint


def test_two_ddp_processes_on_cpu_end_with_identical_weights(data_dir, tmp_path):
    ckpt = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "aecodec", "train", str(data_dir), "-o", str(ckpt), "--steps", "3", "--batch-size", "2",
           "--crop", "64", "--N", "16", "--M", "24", "--warmup", "2", "--device", "cpu",
           "--log-every", "1", "--max-minutes", "10"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "starting at step 0; 2 processes × batch 2" in out
    assert len(re.findall(r"^step 1 ", r.stdout, re.M)) == 1, out  # rank 0 alone logs
    # Every rank hashed its weights at the end and they agreed; rank 0 saved those weights.
    digest = re.search(r"ddp: all 2 processes hold weights ([0-9a-f]{16})", out).group(1)
    model, state = load_checkpoint(ckpt)
    assert state["step"] == 3 and state["weights_hash"] == digest
    assert state["training"]["chunks"][-1]["processes"] == 2 and (model.config.N, model.config.M) == (16, 24)
