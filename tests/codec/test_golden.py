"""Files users already have keep decoding: every golden file in tests/golden/ — small .aec files of
each format version, written once by an earlier aecodec (scripts/make_golden.py) and never
rewritten — decodes, with today's code, to exactly the latents and pixels recorded when it was written.

The latents ŷ are bit-identical on every machine (the exact entropy path), so they are compared
exactly everywhere. The pixels come from g_s in float32, bit-identical for one engine on one kind of
CPU: with the engine and the kind of CPU that wrote the file they must be identical too; otherwise
within one level of the recorded decode (tests/golden/decoded/), as the portability guarantee says
(docs/format.md). Files of format 1 and 2 were synthesised by torch when they were recorded; today
every file is synthesised by onnxruntime (the runtime bundle), so theirs are held to one level.

``aecodec upgrade`` re-codes every file of format 1 and 2 as format 3: the same latents, so the
same pixels as the original decodes to today.

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
from aecodec.codec.api import decode_latents, upgrade
from aecodec.device import cpu_name
from aecodec.models.runtime import has_torch

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())["files"]
NAMES = sorted(MANIFEST)
LEGACY = [n for n in NAMES if MANIFEST[n]["format_version"] in fmt.LEGACY]
needs_torch = pytest.mark.skipif(not has_torch(), reason="files of format 1 and 2 decode with the torch model "
                                 "(pip install 'aecodec[train]')")


def _engine(entry: dict) -> str:
    """The engine that synthesised a golden file's recorded pixels (torch before it was recorded)."""
    return entry["written_by"].get("synthesis", "torch").split()[0]


def _case(name: str):
    """A golden file's parameter, skipped without torch when its format needs it."""
    return pytest.param(name, marks=needs_torch) if MANIFEST[name]["format_version"] in fmt.LEGACY else name


CASES = [_case(n) for n in NAMES]


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


def _recorded_pixels(name: str) -> np.ndarray:
    """The decode recorded with the file (a lossless PNG), checked against the manifest's hash."""
    with Image.open(GOLDEN / "decoded" / name.replace(".aec", ".png")) as im:
        pixels = np.asarray(im)
    assert sha256(pixels.tobytes()) == MANIFEST[name]["pixels_sha256"], f"decoded/{name}: not the recorded decode"
    return pixels


def _assert_recorded_pixels(name: str, img: Image.Image) -> None:
    entry = MANIFEST[name]
    assert (img.mode, list(img.size)) == (entry["mode"], entry["size"])
    pixels, recorded = np.asarray(img), _recorded_pixels(name)
    what = f"{name} (format version {entry['format_version']}, {entry['case']})"
    if cpu_name() == entry["written_by"]["cpu"] and _engine(entry) == "onnxruntime":
        assert sha256(pixels.tobytes()) == entry["pixels_sha256"], (
            f"{what} decodes to other pixels than when it was written on this kind of CPU ({entry['written_by']}): "
            f"{int((pixels != recorded).sum())} values differ, by up to "
            f"{int(np.abs(pixels.astype(int) - recorded).max())}")
    else:  # another CPU or engine: g_s may round a value the other way, never more
        assert int(np.abs(pixels.astype(int) - recorded).max()) <= 1, f"{what} decodes to other pixels"


def _y_hat_sha256(data: bytes) -> str:
    return sha256(np.ascontiguousarray(decode_latents(data), np.float32).tobytes())


@pytest.mark.parametrize("name", CASES)
def test_every_golden_file_entropy_decodes_to_its_recorded_latents(name):
    assert _y_hat_sha256((GOLDEN / name).read_bytes()) == MANIFEST[name]["y_hat_sha256"]


@pytest.mark.parametrize("name", CASES)
def test_every_golden_file_decodes_to_its_recorded_pixels(name):
    _assert_recorded_pixels(name, _decoded(name))


@needs_torch
@pytest.mark.parametrize("name", LEGACY)
def test_every_old_golden_file_upgrades_losslessly_to_the_current_format(name):
    old = (GOLDEN / name).read_bytes()
    new = upgrade(old)
    assert new[4] == fmt.VERSION and aecodec.info(new)["format_version"] == fmt.VERSION
    assert {k: v for k, v in aecodec.info(new).items() if k not in ("format_version", "bytes", "bpp", "sections")} == {
        k: v for k, v in aecodec.info(old).items() if k not in ("format_version", "bytes", "bpp", "sections")}
    assert _y_hat_sha256(new) == MANIFEST[name]["y_hat_sha256"]  # the same latents, exactly
    assert np.array_equal(np.asarray(aecodec.decode(new)), np.asarray(_decoded(name)))  # so the same pixels
    assert upgrade(new) == new  # a current file is already upgraded


@pytest.mark.parametrize("name", CASES)
def test_every_golden_file_opens_in_pillow_to_the_same_pixels(name):
    entry = MANIFEST[name]
    with Image.open(GOLDEN / name) as im:
        assert im.format == "AEC" and (im.mode, list(im.size)) == (entry["mode"], entry["size"])  # header only
        _assert_recorded_pixels(name, im)


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
    assert sorted(p.name for p in (GOLDEN / "decoded").iterdir()) == [n.replace(".aec", ".png") for n in NAMES]
    assert all(p.name in ("manifest.json", "decoded") or p.suffix == ".aec" for p in GOLDEN.iterdir())


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
