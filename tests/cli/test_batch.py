"""aecodec.cli.batch without a cluster: the rd command's help, and how to install Ray where it is missing."""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from aecodec.cli import app

runner = CliRunner()


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
