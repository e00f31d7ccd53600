"""aecodec.batch.work, without Ray: a job's items, stale or foreign outputs, an image whose worker died twice."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

import aecodec
from aecodec.batch import Job
from aecodec.batch.work import Worker, plan
from tests.helpers import smooth_image


def test_two_inputs_that_would_write_one_output_the_second_is_refused(tmp_path):
    Image.fromarray(smooth_image(20, 20)).save(tmp_path / "x.png")
    Image.fromarray(smooth_image(20, 20)).save(tmp_path / "x.jpg")
    items = plan(Job("encode"), tmp_path, tmp_path / "out")
    assert [i.error is None for i in items] == [True, False]
    assert "x.jpg" in items[0].input and "written there already" in items[1].error


def test_a_stale_or_foreign_output_is_not_taken_as_done(tmp_path):
    """Without Ray: the worker redoes an output older than its input, or made at another quality."""
    Image.fromarray(smooth_image(40, 50)).save(tmp_path / "x.png")
    (item,) = plan(Job("encode", quality=30), tmp_path, tmp_path / "out")
    worker = Worker(Job("encode", quality=30))
    assert worker.run(item)["status"] == "done"
    assert worker.run(item)["status"] == "skipped"
    os.utime(item.dst, (1, 1))
    assert worker.run(item)["status"] == "done"
    assert Worker(Job("encode", quality=31)).run(item)["status"] == "done"
    assert Path(item.dst).read_bytes() == aecodec.encode(tmp_path / "x.png", quality=31)


def test_an_image_whose_worker_died_twice_fails_instead_of_killing_workers_forever(tmp_path):
    """Without Ray: the marker a worker leaves when it dies mid-image (Ray restarts it and retries)."""
    Image.fromarray(smooth_image(40, 50)).save(tmp_path / "x.png")
    (item,) = plan(Job("encode"), tmp_path, tmp_path / "out")
    marker = Path(item.marker)
    marker.parent.mkdir(parents=True)
    marker.write_text("1")  # one worker died on it: tried again, and the marker goes with success
    assert Worker(Job("encode")).run(item)["status"] == "done" and not marker.exists()
    Path(item.dst).unlink()
    marker.write_text("2")
    row = Worker(Job("encode")).run(item)
    assert row["status"] == "failed" and "its worker died 2 times" in row["error"]
    assert not Path(item.dst).exists() and not marker.exists()
