"""aecodec.cli.options: the help texts the commands share (the quality scale)."""

from __future__ import annotations

from typer.testing import CliRunner

from aecodec.cli import app
from tests.helpers import ok

runner = CliRunner()


def test_encode_help_documents_the_quality_scale():
    r = ok(runner.invoke(app, ["encode", "--help"]))
    assert "0–100" in r.output and "higher is" in r.output
