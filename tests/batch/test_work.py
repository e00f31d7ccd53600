"""aecodec.batch.work, without Ray: a job's items, stale or foreign outputs, an image whose worker died
twice, and outputs that never touch inputs (a destination inside the source, a symbolic link onto an
input, a user's file where an output goes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

import aecodec
from aecodec.batch import Job
from aecodec.batch.work import Worker, plan
from aecodec.errors import BatchError
from tests.helpers import smooth_image


def _images(src: Path, *names: str) -> Path:
    for name in names:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_image(20, 24)).save(src / name)
    return src


def test_two_inputs_that_would_write_one_output_the_second_is_refused(tmp_path):
    src = _images(tmp_path / "in", "x.png", "x.jpg")
    items = plan(Job("encode"), src, tmp_path / "out")
    assert [i.error is None for i in items] == [True, False]
    assert "x.jpg" in items[0].input and "written there already" in items[1].error


def test_a_stale_or_foreign_output_is_not_taken_as_done(tmp_path):
    """Without Ray: the worker redoes an output of the job older than its input, or made at another quality."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(smooth_image(40, 50)).save(src / "x.png")
    (item,) = plan(Job("encode", quality=30), src, tmp_path / "out")
    worker = Worker(Job("encode", quality=30))
    assert worker.run(item)["status"] == "done"
    item.owned = True  # this job wrote it: run_job learns that from the manifest
    assert worker.run(item)["status"] == "skipped"
    os.utime(item.dst, (1, 1))
    assert worker.run(item)["status"] == "done"
    assert Worker(Job("encode", quality=31)).run(item)["status"] == "done"
    assert Path(item.dst).read_bytes() == aecodec.encode(src / "x.png", quality=31)


def test_an_image_whose_worker_died_twice_fails_instead_of_killing_workers_forever(tmp_path):
    """Without Ray: the marker a worker leaves when it dies mid-image (Ray restarts it and retries)."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(smooth_image(40, 50)).save(src / "x.png")
    (item,) = plan(Job("encode"), src, tmp_path / "out")
    marker = Path(item.marker)
    marker.parent.mkdir(parents=True)
    marker.write_text("1")  # one worker died on it: tried again, and the marker goes with success
    assert Worker(Job("encode")).run(item)["status"] == "done" and not marker.exists()
    Path(item.dst).unlink()
    marker.write_text("2")
    row = Worker(Job("encode")).run(item)
    assert row["status"] == "failed" and "its worker died 2 times" in row["error"]
    assert not Path(item.dst).exists() and not marker.exists()


# ------------------------------------------------------------------------------- outputs never touch inputs
@pytest.mark.parametrize("kind", ["encode", "decode", "rd"])
@pytest.mark.parametrize("dst, where", [
    ("photos", "is the input folder"),
    ("photos/out", "is inside the input folder"),
    ("photos/sub/../out", "is inside the input folder"),
    ("link", "is the input folder"),  # link -> photos
    ("link/deeper/out", "is inside the input folder"),
])
def test_an_output_folder_that_is_the_input_folder_or_inside_it_is_refused_even_with_force(
        tmp_path, monkeypatch, kind, dst, where):
    monkeypatch.chdir(tmp_path)
    _images(tmp_path / "photos", "a.png", "sub/b.png")
    (tmp_path / "link").symlink_to("photos")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(BatchError, match=f"^{dst}: the output folder {where} photos"):
        plan(Job(kind, force=True), "photos", dst)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing made


def test_an_output_folder_beside_the_input_folder_or_holding_it_is_fine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _images(tmp_path / "photos", "a.png")
    for dst in ("out", ".", "photos-out", "photos/../out"):
        assert [i.output for i in plan(Job("encode"), "photos", dst)] == [str(Path(dst) / "a.aec")]


def test_an_output_that_resolves_to_an_input_or_into_the_input_folder_is_refused(tmp_path):
    src = _images(tmp_path / "photos", "a.png", "sub/b.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.aec").symlink_to(src / "a.png")  # a link in DST onto an input
    with pytest.raises(BatchError, match=r"out/a\.aec: resolves to the input .*photos/a\.png; an output never"):
        plan(Job("encode", force=True), src, tmp_path / "out")
    (tmp_path / "out" / "a.aec").unlink()
    (tmp_path / "out" / "sub").symlink_to(src / "sub")  # a folder of DST that is a folder of SRC
    with pytest.raises(BatchError, match=r"out/sub/b\.aec: resolves to .*photos/sub/b\.aec, inside the input folder"):
        plan(Job("encode"), src, tmp_path / "out")


def test_a_manifest_or_an_rd_file_onto_an_input_is_refused(tmp_path):
    src = _images(tmp_path / "photos", "a.png")
    with pytest.raises(BatchError, match="resolves to the input"):
        plan(Job("encode"), src, tmp_path / "out", others=[src / "a.png"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "rd.png").symlink_to(src / "a.png")
    with pytest.raises(BatchError, match=r"rd\.png: resolves to the input"):
        plan(Job("rd"), src, tmp_path / "out", others=[tmp_path / "out" / "rd.png"])


def test_a_destination_that_is_a_file_or_a_dangling_link_is_refused(tmp_path):
    src = _images(tmp_path / "photos", "a.png")
    (tmp_path / "file").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(BatchError, match="file: not a directory"):
        plan(Job("encode"), src, tmp_path / "file")
    with pytest.raises(BatchError, match="dangling: a dangling symbolic link"):
        plan(Job("encode"), src, tmp_path / "dangling")


def test_a_destination_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    """A folder without write permission; as root (who writes anywhere a mode allows), /sys, a
    read-only file system."""
    src = _images(tmp_path / "photos", "a.png")
    if os.geteuid() == 0:
        if not Path("/sys").is_dir():
            pytest.skip("no read-only folder for root on this system")
        with pytest.raises(BatchError, match="/sys/out: cannot write in /sys"):
            plan(Job("encode"), src, Path("/sys/out"))
        return
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(BatchError, match="locked/out: cannot write in .*locked"):
            plan(Job("encode"), src, locked / "out")
    finally:
        locked.chmod(0o755)


def test_a_users_file_where_an_output_goes_is_refused_unless_force_or_the_job_wrote_it(tmp_path):
    """Decoding photo.aec into a folder that holds the user's photo.png (older than the .aec, so it
    does not verify as a finished output): the photo is not written over without --force."""
    (tmp_path / "aec").mkdir()
    (tmp_path / "photos").mkdir()
    original = tmp_path / "photos" / "photo.png"
    Image.fromarray(smooth_image(30, 40, seed=5)).save(original)
    os.utime(original, (1, 1))
    (tmp_path / "aec" / "photo.aec").write_bytes(aecodec.encode(original, quality=20))
    mine = original.read_bytes()
    (item,) = plan(Job("decode"), tmp_path / "aec", tmp_path / "photos")
    row = Worker(Job("decode")).run(item)
    assert row["status"] == "failed" and original.read_bytes() == mine
    assert row["error"] == (f"{item.input}: its output {item.output} already exists and was not written by this "
                            "job (use --force to overwrite)")
    (tmp_path / "photos" / "dangling.png").symlink_to(tmp_path / "nowhere.png")  # a dangling link counts as a file
    (tmp_path / "aec" / "dangling.aec").write_bytes((tmp_path / "aec" / "photo.aec").read_bytes())
    dangling = next(i for i in plan(Job("decode"), tmp_path / "aec", tmp_path / "photos") if "dangling" in i.input)
    assert "already exists" in Worker(Job("decode")).run(dangling)["error"]
    assert (tmp_path / "photos" / "dangling.png").is_symlink()
    item.owned = True  # an earlier run of the job wrote it (its manifest says so): replaced
    assert Worker(Job("decode")).run(item)["status"] == "done" and original.read_bytes() != mine
    original.write_bytes(mine)
    os.utime(original, (1, 1))
    item.owned = False
    assert Worker(Job("decode", force=True)).run(item)["status"] == "done" and original.read_bytes() != mine


def test_an_output_name_too_long_for_its_temp_file_fails_before_any_work(tmp_path):
    """A 250-byte input name: its output name fits the file system, but not with the temp file's
    added (write_atomic would refuse it after the image was coded)."""
    src = _images(tmp_path / "in", "x" * 246 + ".png", "short.png")
    short, long = plan(Job("encode"), src, tmp_path / "out")  # sorted
    assert long.error == f"{long.output}: file name too long (at most 241 bytes, with room for its temp file's)"
    assert short.error is None
    row = Worker(Job("encode")).run(long)
    assert row["status"] == "failed" and "file name too long" in row["error"] and not (tmp_path / "out").exists()


def test_batch_decode_follows_its_pixel_cap(tmp_path):
    """A job's max_pixels is the decoder's cap, as for aecodec decode --max-pixels."""
    (tmp_path / "aec").mkdir()
    (tmp_path / "aec" / "a.aec").write_bytes(aecodec.encode(smooth_image(30, 40), quality=20))
    (item,) = plan(Job("decode"), tmp_path / "aec", tmp_path / "out")
    row = Worker(Job("decode", max_pixels=30 * 40 - 1)).run(item)
    assert row["status"] == "failed" and "exceeds the cap of 1199 pixels" in row["error"], row
    assert Worker(Job("decode", max_pixels=30 * 40)).run(item)["status"] == "done"
