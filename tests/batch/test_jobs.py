"""aecodec.batch (run_job, rd_curve): the rd curve does not depend on the order the images finished
in; a cluster that fails partway ends the job in one line and keeps the manifest of what finished;
a rerun replaces the job's own outputs, never a file it did not write. Ray's cluster is stood in
for (tests/batch/fake_engine.py): no Ray starts here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from aecodec.batch import Job, JobFailed, read_manifest, run_job
from aecodec.errors import BatchError
from tests.batch import fake_engine
from tests.helpers import smooth_image

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="needs Ray: pip install -e '.[cluster]' (CI installs it)")


def test_the_rd_curve_does_not_depend_on_the_order_images_finished_in():
    """The manifest lists images as they finished, so a rerun reads them in another order; four
    times whose float sum, divided by 4 and rounded, gave 0.4948 one way round and 0.4949 the other."""
    from aecodec.batch import rd_curve

    rows = [{"status": "done", "points": [{"bpp": 0.5, "psnr": 30.0, "ms_ssim_db": None, "encode_s": s,
                                           "decode_s": s}]} for s in (0.4376, 0.9192, 0.5796, 0.043)]
    curves = [rd_curve(order, [50.0]) for order in (rows, rows[::-1])]
    assert curves[0] == curves[1]
    assert curves[0][0]["images"] == 4 and curves[0][0]["ms_ssim_db"] is None
    assert curves[0][0]["encode_s"] == pytest.approx(0.49485, abs=1e-4)


def _photos(root: Path, *names: str) -> Path:
    src = root / "photos"
    for i, name in enumerate(names):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_image(24, 32, seed=i)).save(src / name)
    return src


OOM = ("Task was killed due to the node running low on memory.\nMemory on the node (IP: 10.0.0.5, ID: 3f2a) where "
       "the task (actor ID: 9c, name=MapWorker(MapBatches(Worker)), pid=4242, memory used=6.1GB) was running was "
       "7.6GB / 8GB (0.95), which exceeds the memory usage threshold of 0.95.")


@needs_ray
@pytest.mark.parametrize("error, what", [
    (lambda: ray.exceptions.OutOfMemoryError(OOM), "a worker was killed for memory (worker pid 4242 on 10.0.0.5)"),
    (lambda: ray.exceptions.ObjectLostError("ab12", None, ""), "data the job needed was lost (its node died?)"),
    (lambda: ray.exceptions.RaySystemError("plasma store: mmap failed\n(details)"),
     "Ray failed: System error: plasma store: mmap failed"),
])
def test_a_cluster_that_fails_partway_ends_the_job_in_one_line_and_keeps_what_finished(
        tmp_path, monkeypatch, error, what):
    src = _photos(tmp_path, "a.png", "b.png", "sub/c.png", "sub/d.png")
    out = tmp_path / "out"
    fake_engine.install(monkeypatch, fail=(2, error()))
    with pytest.raises(JobFailed) as caught:
        run_job(Job("encode"), src, out)
    partial = out / "manifest.jsonl.partial"
    assert str(caught.value) == (f"batch job stopped: {what}; 2 of 4 images finished, their rows are in "
                                 f"{partial}, and a rerun resumes")
    assert "\n" not in str(caught.value)
    rows = read_manifest(partial)
    assert [r["status"] for r in rows] == ["done", "done"] and all(Path(r["output"]).is_file() for r in rows)
    assert not (out / "manifest.jsonl").exists()

    fake_engine.install(monkeypatch)  # the cluster is back: the rerun resumes
    summary = run_job(Job("encode"), src, out)
    assert (summary.done, summary.skipped, summary.failed) == (2, 2, 0)
    assert sorted(r["status"] for r in read_manifest(out / "manifest.jsonl")) == ["done", "done", "skipped", "skipped"]
    assert not partial.exists()


@needs_ray
def test_a_rerun_replaces_the_jobs_own_outputs_but_never_a_file_it_did_not_write(tmp_path, monkeypatch):
    fake_engine.install(monkeypatch)
    src = _photos(tmp_path, "a.png", "sub/b.png")
    out = tmp_path / "out"
    assert run_job(Job("encode"), src, out).done == 2
    Image.fromarray(smooth_image(24, 32, seed=9)).save(src / "c.png")
    (out / "c.aec").write_bytes(b"the user's own file")  # where c.png's output goes: not the job's
    os.utime(out / "sub" / "b.aec", (1, 1))  # the job's own output, stale: redone
    summary = run_job(Job("encode"), src, out)
    rows = {Path(r["input"]).name: r for r in read_manifest(out / "manifest.jsonl")}
    assert {n: r["status"] for n, r in rows.items()} == {"a.png": "skipped", "b.png": "done", "c.png": "failed"}
    assert rows["c.png"]["error"] == (f"{src / 'c.png'}: its output {out / 'c.aec'} already exists and was not "
                                      "written by this job (use --force to overwrite)")
    assert (out / "c.aec").read_bytes() == b"the user's own file" and summary.failed == 1

    moved = tmp_path / "moved"
    out.rename(moved)  # the manifest in the folder names the old paths: matched by their place in it
    os.utime(moved / "a.aec", (1, 1))
    run_job(Job("encode"), src, moved)
    rows = {Path(r["input"]).name: r["status"] for r in read_manifest(moved / "manifest.jsonl")}
    assert rows == {"a.png": "done", "b.png": "skipped", "c.png": "failed"}
    assert run_job(Job("encode", force=True), src, moved).done == 3  # --force: the user asked
    assert (moved / "c.aec").read_bytes()[:3] != b"the"


@needs_ray
def test_a_manifest_path_that_holds_something_else_is_refused_before_any_work(tmp_path, monkeypatch):
    fake_engine.install(monkeypatch)
    src = _photos(tmp_path, "a.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    with pytest.raises(BatchError, match=r"notes\.txt: already exists and is not a manifest of aecodec batch"):
        run_job(Job("encode"), src, tmp_path / "out", manifest=notes)
    assert notes.read_text() == "my notes\n" and not (tmp_path / "out").exists()
    with pytest.raises(BatchError, match="is a directory"):
        run_job(Job("encode"), src, tmp_path / "out", manifest=tmp_path)
    with pytest.raises(BatchError, match="inside the input folder"):
        run_job(Job("encode"), src, tmp_path / "out", manifest=src / "manifest.jsonl")
    run_job(Job("encode"), src, tmp_path / "out", manifest=tmp_path / "log.jsonl")
    assert run_job(Job("encode"), src, tmp_path / "out", manifest=tmp_path / "log.jsonl").skipped == 1  # its own: fine


@needs_ray
def test_an_output_of_another_image_at_another_depth_does_not_make_a_users_file_the_jobs(tmp_path, monkeypatch):
    """sub/a.png was encoded to out/sub/a.aec; the user's out/a.aec (where a new a.png goes) is not the job's."""
    fake_engine.install(monkeypatch)
    src = _photos(tmp_path, "sub/a.png")
    out = tmp_path / "out"
    assert run_job(Job("encode"), src, out).done == 1
    _photos(tmp_path, "a.png")
    (out / "a.aec").write_bytes(b"mine")
    assert run_job(Job("encode"), src, out).failed == 1 and (out / "a.aec").read_bytes() == b"mine"
