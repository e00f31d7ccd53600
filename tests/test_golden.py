"""Files users already have keep decoding: every golden file in tests/golden/ — small .aec files of
each format version, written once by an earlier aecodec (scripts/make_golden.py) and never
rewritten — decodes, with today's code, to exactly the pixels recorded when it was written.

A failure here means a change would break files people have. Do not regenerate the golden files
to make it pass: fix the decoder (or keep the old path for the old version).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import aecodec
from aecodec.codec import format as fmt

GOLDEN = Path(__file__).resolve().parent / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())["files"]
NAMES = sorted(MANIFEST)


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _decoded(name: str) -> Image.Image:
    """The golden file decoded by the public API; a missing model is named with what it means."""
    entry = MANIFEST[name]
    try:
        return aecodec.decode((GOLDEN / name).read_bytes())
    except aecodec.ModelNotFound as e:
        pytest.fail(f"{name} was written with {entry['model_id']}@{entry['weights_hash']}, which this aecodec cannot "
                    f"find ({e}): files users made with those weights would no longer decode either. New weights "
                    "must be added beside the ones earlier files name, not replace them.")


def _fingerprint(img: Image.Image) -> tuple[str, list[int], str]:
    return img.mode, list(img.size), sha256(np.asarray(img).tobytes())


@pytest.mark.parametrize("name", NAMES)
def test_every_golden_file_decodes_to_its_recorded_pixels(name):
    entry = MANIFEST[name]
    mode, size, pixels = _fingerprint(_decoded(name))
    assert (mode, size) == (entry["mode"], entry["size"])
    assert pixels == entry["pixels_sha256"], (
        f"{name} (format version {entry['format_version']}, {entry['case']}) decodes to other pixels than "
        f"when it was written ({entry['written_by']})")


@pytest.mark.parametrize("name", NAMES)
def test_every_golden_file_opens_in_pillow_to_the_same_pixels(name):
    entry = MANIFEST[name]
    with Image.open(GOLDEN / name) as im:
        assert im.format == "AEC" and (im.mode, list(im.size)) == (entry["mode"], entry["size"])  # header only
        assert _fingerprint(im) == (entry["mode"], entry["size"], entry["pixels_sha256"])


@pytest.mark.parametrize("name", NAMES)
def test_every_golden_files_header_reads_as_recorded(name):
    entry = MANIFEST[name]
    header = aecodec.info((GOLDEN / name).read_bytes())
    assert {k: header.get(k) for k in entry["header"]} == entry["header"]  # fields added later are not compared
    assert (header["format_version"], header["model_id"], header["weights_hash"]) == (
        entry["format_version"], entry["model_id"], entry["weights_hash"])


@pytest.mark.parametrize("name", NAMES)
def test_no_golden_file_was_rewritten_since_it_was_recorded(name):
    data = (GOLDEN / name).read_bytes()
    assert (len(data), sha256(data)) == (MANIFEST[name]["bytes"], MANIFEST[name]["file_sha256"]), (
        f"{name} is not the file that was recorded: golden files are history, never regenerated")


def test_the_golden_folder_holds_exactly_the_files_of_the_manifest():
    assert sorted(p.name for p in GOLDEN.glob("*.aec")) == NAMES
    assert all(p.name == "manifest.json" or p.suffix == ".aec" for p in GOLDEN.iterdir())


def test_every_format_version_the_reader_reads_has_golden_files_named_for_it():
    versions = {MANIFEST[n]["format_version"] for n in NAMES}
    assert set(fmt.READS) <= versions, f"no golden file of format version {sorted(set(fmt.READS) - versions)}"
    assert fmt.VERSION in versions  # the newest version written today
    for name in NAMES:
        assert name.startswith(f"v{MANIFEST[name]['format_version']}-"), name


def test_every_layout_is_pinned_by_a_golden_file():
    layouts = {MANIFEST[n]["header"]["layout"] for n in NAMES}
    assert layouts == set(fmt.Layout.NAMES.values())
    assert any(MANIFEST[n]["header"]["tiles"] != "1x1" for n in NAMES)  # a grid of tiles
    assert any(MANIFEST[n]["header"]["strips"] > 1 for n in NAMES)  # a folded image


def test_golden_files_stay_small():
    assert all((GOLDEN / n).stat().st_size <= 10_240 for n in NAMES)
