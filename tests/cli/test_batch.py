"""aecodec.cli.batch without a cluster: the rd command's help, how to install Ray where it is missing,
folders that would let outputs replace inputs (refused in one line before any work), and a cluster
that fails partway (one line, exit 1, the manifest of what finished kept)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import aecodec
from aecodec.cli import app
from tests.helpers import smooth_image

runner = CliRunner()
try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="needs Ray: pip install -e '.[cluster]' (CI installs it)")


def test_batch_rd_help_shows_the_benchmark_qualities_it_uses_by_default():
    from aecodec.batch.work import RD_QUALITIES

    r = runner.invoke(app, ["batch", "rd", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "(" + ",".join(f"{q:g}" for q in RD_QUALITIES) + ")" in r.output


def test_without_ray_batch_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    r = runner.invoke(app, ["batch", "encode", str(tmp_path), str(tmp_path / "out")])
    assert r.exit_code == 2 and "pip install 'aecodec[cluster]'" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@needs_ray
def test_batch_encode_then_decode_into_the_folder_itself_is_refused_and_the_originals_are_kept(tmp_path, monkeypatch):
    """The issue's case: `batch encode same same`, then `batch decode same same`, replaced the
    original PNGs by their lossy decodes (exit 0, no --force). Both are refused now, --force too."""
    monkeypatch.chdir(tmp_path)
    same = tmp_path / "same"
    (same / "sub").mkdir(parents=True)
    for i, name in enumerate(("a.png", "sub/b.png")):
        Image.fromarray(smooth_image(24, 32, seed=i)).save(same / name)
        (same / name).with_suffix(".aec").write_bytes(aecodec.encode(same / name, quality=10))  # as an old run left
    before = _snapshot(same)
    for args in (["encode", "same", "same"], ["decode", "same", "same"], ["decode", "same", "same", "--force"],
                 ["decode", "same", "same/dec"], ["rd", "same", "-o", "same/rd"]):
        r = runner.invoke(app, ["batch", *args])
        assert r.exit_code == 2, (args, r.output)
        dst = args[-1] if args[-1] != "--force" else args[-2]
        assert r.output.splitlines() == [f"aecodec: error: {dst}: the output folder is "
                                         f"{'the' if dst == 'same' else 'inside the'} input folder same; give one "
                                         "outside it (outputs there would replace inputs or be taken as inputs by "
                                         "the next run)"], args
        assert _snapshot(same) == before, args


@needs_ray
def test_a_refused_output_folder_is_one_line_and_exit_2_as_a_process(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(smooth_image(24, 32)).save(src / "a.png")
    (tmp_path / "link").symlink_to(src)
    r = subprocess.run([sys.executable, "-m", "aecodec", "batch", "decode", str(src), str(tmp_path / "link" / "out")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [f"aecodec: error: {tmp_path / 'link' / 'out'}: the output folder is inside the "
                                     f"input folder {src} ({tmp_path / 'link' / 'out'} resolves to {src / 'out'}); "
                                     "give one outside it (outputs there would replace inputs or be taken as inputs "
                                     "by the next run)"]
    assert sorted(os.listdir(src)) == ["a.png"]


@needs_ray
def test_a_cluster_that_fails_partway_is_one_error_line_and_exit_1(tmp_path, monkeypatch):
    from tests.batch import fake_engine

    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        Image.fromarray(smooth_image(24, 32, seed=i)).save(src / f"p{i}.png")
    fake_engine.install(monkeypatch, fail=(1, ray.exceptions.NodeDiedError("Node 10.0.0.9 is dead")))
    r = runner.invoke(app, ["batch", "encode", str(src), str(tmp_path / "out")])
    partial = tmp_path / "out" / "manifest.jsonl.partial"
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.splitlines() == ["3 images, 1 worker × 1 CPU",
                                     "aecodec: error: batch job stopped: a node of the cluster died: Node 10.0.0.9 is "
                                     f"dead; 1 of 3 images finished, their rows are in {partial}, and a rerun "
                                     "resumes"]
    assert len(partial.read_text().splitlines()) == 1 and not (tmp_path / "out" / "manifest.jsonl").exists()
