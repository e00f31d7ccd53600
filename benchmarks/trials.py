"""Equal-minute training trials: which recipe buys the most compression per training minute.

    python -m benchmarks.trials run --start WEIGHTS --data ../shared/datasets/train \\
        --kodak ../shared/datasets/kodak --minutes 12 --out benchmarks/results/trials

Every arm continues the same start weights (``train --init-from``) for the same wall-minutes on
the same machine, with the same data, batch, crop and a constant learning rate; arms differ only in
their own train options (``--arm NAME='OPTIONS'``; the default arms are :data:`ARMS`). On a CPU
the arms run side by side, one thread each (``--parallel 2`` on 2 cores), so they share the
machine's state; on a GPU (``--device cuda``) one after the other. Each arm's weights are exported
next to the results, then the start and every arm are coded on Kodak with real bitstreams through
the codec's path (``aecodec.train.evaluate``: the bytes of the .aec file, PSNR on 8-bit pixels) at
the same qualities, and compared by BD-rate (PSNR, PCHIP, on the mean curves) against the first arm
(the baseline) and against the start. A repeat of the baseline with another seed (``baseline-seed1``)
measures how far two runs of the *same* recipe land apart: differences below that are noise.

The two halves also run apart — ``train`` (e.g. on a lent GPU, weights come back) and ``eval``
(here) — writing ``arms.json`` and ``<arm>.pt`` into ``--out``; ``eval`` adds ``results.json``,
``trials.md`` and ``trials.png`` there or into ``--results`` (what is committed: the weights are not).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bdrate import bd_rate
from benchmarks.rd import machine_info

ROOT = Path(__file__).resolve().parent.parent

# name → extra train options. The first arm is the baseline the others are compared against.
ARMS = {
    "baseline": "",
    "baseline-seed1": "--seed 1",
    "lr-low": "--lr 2e-5",
    "level-bias-2": "--level-bias 2",
    "auxt": "--aux-transform",
    "bf16": "--amp bf16",
}
BASE_LR = 5e-5
QUALITIES = (0.0, 25.0, 50.0, 75.0, 100.0)
LOSS_RE = re.compile(r"^step \d+ loss ([\d.]+) bpp ([\d.]+) psnr ([\d.]+) ")


def parse_arm(text: str) -> tuple[str, str]:
    name, sep, opts = text.partition("=")
    if not sep or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", name):
        raise argparse.ArgumentTypeError(f"--arm wants NAME='TRAIN OPTIONS' (NAME in [a-z0-9.-]), got {text!r}")
    return name, opts


def common_options(a) -> list[str]:
    """What every arm is told: same start, data, batch, crop, minutes; a constant LR (the schedule's
    length is far beyond the trial, so the cosine stays at its peak); a short ramp after init-from."""
    return ["--init-from", str(a.start), "--batch-size", str(a.batch_size), "--crop", str(a.crop),
            "--lr", f"{a.lr:g}", "--steps", "100000000", "--warmup", "0", "--init-warmup", str(a.ramp),
            "--max-minutes", f"{a.minutes:g}", "--log-every", "25",
            "--quiet", "--device", a.device, *shlex.split(a.common)]


def train_arms(a) -> None:
    """Train every arm (``a.parallel`` at a time) and export its weights to ``<out>/<name>.pt``."""
    a.out.mkdir(parents=True, exist_ok=True)
    arms = a.arm or list(ARMS.items())
    common = common_options(a)
    record = {"start": str(a.start), "common": common, "data": [str(d) for d in a.data],
              "device": a.device, "parallel": a.parallel, "threads_per_arm": a.threads,
              "machine": machine_info(), "arms": []}
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if a.device == "cpu":
        env.update(OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    with tempfile.TemporaryDirectory(prefix="aec-trials-") as tmp:  # resumable chunks: ~90 MB an arm
        for i in range(0, len(arms), a.parallel):
            _train_group(a, arms[i:i + a.parallel], common, env, Path(tmp), record)


def _train_group(a, group: list[tuple[str, str]], common: list[str], env: dict, work: Path, record: dict) -> None:
    """Train the arms of ``group`` at the same time; append each one's row and rewrite arms.json."""
    procs = []
    for name, opts in group:
        cmd = [sys.executable, "-m", "aecodec", "train", *map(str, a.data), "-o", str(work / f"{name}.pt"),
               *common, *(["--threads", str(a.threads)] if a.device == "cpu" else []), *shlex.split(opts)]
        log = open(work / f"{name}.log", "w")
        print(f"[{time.strftime('%H:%M:%S')}] arm {name}: {opts or '(baseline recipe)'}", flush=True)
        procs.append((name, opts, log, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                        env=env, cwd=ROOT)))
    for name, opts, log, p in procs:
        rc = p.wait()
        log.close()
        text = (work / f"{name}.log").read_text()
        if rc:
            raise SystemExit(f"trials: arm {name} failed (exit {rc}):\n{text[-2000:]}")
        record["arms"].append(summarise_arm(name, opts, work / f"{name}.pt", text, a.out / f"{name}.pt"))
        (a.out / "arms.json").write_text(json.dumps(record, indent=1) + "\n")


def summarise_arm(name: str, opts: str, chunk: Path, log: str, weights: Path) -> dict:
    """Export the arm's weights; its steps, minutes and speed from its training record, its
    training loss (running mean) at the end from its log."""
    from aecodec.models.checkpoint import read_checkpoint
    from aecodec.train import export

    c = read_checkpoint(chunk)["training"]["chunks"][-1]
    digest = export(chunk, weights, log=lambda *_: None)
    steps = c["to_step"] - c["from_step"]
    last = [m.groups() for m in map(LOSS_RE.match, log.splitlines()) if m]
    row = {"name": name, "options": opts, "weights": weights.name, "weights_hash": digest, "steps": steps,
           "minutes": c["minutes"], "steps_per_s": round(steps / (60 * c["minutes"]), 3),
           "crops_per_s": c.get("crops_per_s")}
    if last:
        row.update(final_loss=float(last[-1][0]), final_bpp=float(last[-1][1]), final_psnr=float(last[-1][2]))
    print(f"  {name}: {steps} steps in {c['minutes']} min ({row['steps_per_s']} steps/s)", flush=True)
    return row


# ----------------------------------------------------------------------------- evaluation
def _evaluate(job: tuple[str, str, list[float], int]) -> list[dict]:
    path, kodak, qualities, threads = job
    import torch

    torch.set_num_threads(threads)
    from aecodec.models.checkpoint import load_checkpoint
    from aecodec.train import evaluate, load_images

    model, ckpt = load_checkpoint(path)
    images = load_images([Path(kodak)], log=lambda *_: None)
    return evaluate(model, images, qualities, model_id=ckpt["model_id"], device=torch.device("cpu"))


def evaluate_arms(a) -> dict:
    """Code Kodak with the start and every arm's weights; BD-rates against the baseline and the start."""
    from aecodec.models.checkpoint import read_checkpoint

    out, res = a.out, a.results or a.out
    res.mkdir(parents=True, exist_ok=True)
    record = json.loads((out / "arms.json").read_text())
    start = Path(record["start"]) if a.start is None else a.start
    paths = {"start": start, **{r["name"]: out / r["weights"] for r in record["arms"]}}
    jobs = [(str(p), str(a.kodak), list(a.qualities), 1) for p in paths.values()]
    print(f"[{time.strftime('%H:%M:%S')}] coding Kodak at q {', '.join(f'{q:g}' for q in a.qualities)} "
          f"with {len(jobs)} weights on {a.jobs} processes", flush=True)
    with multiprocessing.get_context("spawn").Pool(a.jobs) as pool:
        curves = dict(zip(paths, pool.map(_evaluate, jobs, chunksize=1)))
    s = read_checkpoint(start)
    base = record["arms"][0]["name"]

    def bd(name, ref):
        c, r = curves[name], curves[ref]
        v = bd_rate([p["bpp"] for p in r], [p["psnr"] for p in r], [p["bpp"] for p in c], [p["psnr"] for p in c])
        return None if v is None else round(v, 2)

    for row in record["arms"]:
        row["kodak"] = curves[row["name"]]
        row["bd_vs_baseline"] = bd(row["name"], base)
        row["bd_vs_start"] = bd(row["name"], "start")
    record["start_weights"] = {"path": str(start), "weights_hash": s["weights_hash"],
                               "steps": s.get("training", {}).get("steps"), "kodak": curves["start"]}
    record["qualities"] = list(a.qualities)
    record["evaluated"] = machine_info()["date"]
    record["evaluation"] = ("Kodak, 24 images, real .aec bytes through aecodec.train.evaluate; "
                            "BD-rate: PSNR, PCHIP, mean curves; negative = fewer bits at equal PSNR")
    (res / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    (res / "trials.md").write_text(markdown(record))
    plot(record, res / "trials.png")
    print(markdown(record), flush=True)
    return record


def markdown(record: dict) -> str:
    rows = ["| arm | options | steps | minutes | steps/s | BD-rate vs baseline | BD-rate vs start |",
            "|---|---|---:|---:|---:|---:|---:|"]
    fmt = lambda v: "—" if v is None else f"{v:+.2f} %"
    for r in record["arms"]:
        rows.append(f"| {r['name']} | `{r['options'] or '—'}` | {r['steps']} | {r['minutes']:.1f} | "
                    f"{r['steps_per_s']:.3f} | {fmt(r.get('bd_vs_baseline'))} | {fmt(r.get('bd_vs_start'))} |")
    return "\n".join(rows) + "\n"


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import numpy as np

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    start = record["start_weights"]["kodak"]
    sb, sp = np.log([p["bpp"] for p in start]), np.array([p["psnr"] for p in start])
    for r in record["arms"]:
        # PSNR gained over the start at the start's rates (log-rate interpolation of the arm's curve).
        b, q = np.log([p["bpp"] for p in r["kodak"]]), [p["psnr"] for p in r["kodak"]]
        gain = np.interp(sb, b, q, left=np.nan, right=np.nan) - sp
        ax.plot(np.exp(sb), gain, marker="o", label=r["name"])
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="bpp (the start's points)", ylabel="PSNR gain over the start (dB)",
           title="at equal rate, per quality")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    names = [r["name"] for r in record["arms"]]
    vals = [r.get("bd_vs_start") or 0.0 for r in record["arms"]]
    bx.barh(names, vals, color=["tab:green" if v < 0 else "tab:red" for v in vals])
    bx.axvline(0, color="k", lw=0.8)
    bx.invert_yaxis()
    bx.set(xlabel="BD-rate vs start (%; negative is better)", title="what each arm gained")
    bx.grid(alpha=0.3, axis="x")
    arm = record["arms"][0]
    fig.suptitle(f"Kodak after {arm['minutes']:g} training minutes per arm on {record['device']} "
                 f"({record['machine']['cpu_model'] if record['device'] == 'cpu' else 'GPU'}); "
                 f"start {record['start_weights']['weights_hash']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- command line
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.trials", description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=("run", "train", "eval"), help="run = train + eval")
    p.add_argument("--out", type=Path, required=True, help="folder for the arms' weights and the results")
    p.add_argument("--results", type=Path, default=None,
                   help="eval: folder for results.json, trials.md, trials.png (default: --out, beside the weights)")
    p.add_argument("--start", type=Path, default=None, help="weights every arm starts from (train: required)")
    p.add_argument("--data", type=Path, nargs="+", default=[ROOT.parent / "shared/datasets/train"])
    p.add_argument("--kodak", type=Path, default=ROOT.parent / "shared/datasets/kodak")
    p.add_argument("--arm", type=parse_arm, action="append", metavar="NAME='OPTIONS'",
                   help=f"an arm (repeatable; the first is the baseline). Default: {', '.join(ARMS)}")
    p.add_argument("--minutes", type=float, default=12.0, help="training minutes of every arm")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--lr", type=float, default=BASE_LR, help="constant LR of every arm (an arm may override)")
    p.add_argument("--ramp", type=int, default=20, help="LR ramp steps after init-from")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--common", default="", metavar="'OPTIONS'",
                   help="train options every arm gets (e.g. '--amp bf16' for the GPU job's recipe)")
    p.add_argument("--parallel", type=int, default=None, help="arms at a time (default: CPU cores, 1 on cuda)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per arm on the CPU")
    p.add_argument("--qualities", type=float, nargs="+", default=list(QUALITIES))
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)), help="evaluation processes")
    a = p.parse_args(argv)
    if a.stage in ("run", "train") and a.start is None:
        p.error("--start is required to train")
    if a.parallel is None:
        a.parallel = 1 if a.device == "cuda" else max(1, len(os.sched_getaffinity(0)) // a.threads)
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.stage in ("run", "train"):
        train_arms(a)
    if a.stage in ("run", "eval"):
        evaluate_arms(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
