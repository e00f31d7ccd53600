"""aecodec.models.bundle: the runtime bundle round-trips; a damaged or hostile one is one line of
CheckpointError naming the file, never a traceback or a large allocation; the shipped bundle holds
the shipped checkpoint's tensors."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from aecodec.errors import CheckpointError
from aecodec.models import bundle as bdl
from aecodec.models.bundle import bundle_path, read_bundle, write_bundle
from aecodec.models.zoo import SHIPPED_DIR

SHIPPED = SHIPPED_DIR / "mean-scale-vr-128.runtime.npz"
CONFIG = {"N": 4, "M": 6, "lambdas": [0.01, 0.02], "scale_levels": 5}  # a tiny architecture


def tiny_arrays() -> dict[str, np.ndarray]:
    """Arrays of the shapes :data:`CONFIG` needs (values need not make a good model)."""
    rng = np.random.default_rng(0)
    shapes = {"h_s.layers.0.weight": (4, 6, 5, 5), "h_s.layers.0.bias": (6,), "h_s.layers.1.weight": (6, 9, 5, 5),
              "h_s.layers.1.bias": (9,), "h_s.layers.2.weight": (12, 9, 3, 3), "h_s.layers.2.bias": (12,),
              "log_gain": (2, 6), "log_inv_gain": (2, 6), "entropy_bottleneck.quantiles": (4, 1, 3),
              "gaussian_conditional.scale_table": (5,)}
    arrays = {k: rng.normal(size=s).astype(np.float16 if k.startswith("h_s") else np.float32) for k, s in shapes.items()}
    for prefix, rows in (("entropy_bottleneck", 4), ("gaussian_conditional", 5)):
        arrays[f"{prefix}._quantized_cdf"] = np.tile(np.array([0, 30000, 65536, 0, 0], np.int32), (rows, 1))
        arrays[f"{prefix}._offset"] = np.zeros(rows, np.int32)
        arrays[f"{prefix}._cdf_length"] = np.full(rows, 3, np.int32)
    return arrays


def tiny_bundle(path):
    graphs = {g: f"not really {g}".encode() for g in bdl.GRAPHS}  # read_bundle leaves graphs to onnxruntime
    return write_bundle(path, model_id="tiny-model", weights_hash="0123456789abcdef", architecture=bdl.ARCHITECTURE,
                        config=CONFIG, graphs=graphs, arrays=tiny_arrays())


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def write_members(path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def test_a_bundle_round_trips(tmp_path):
    path = tiny_bundle(tmp_path / "tiny-model.runtime.npz")
    b = read_bundle(path)
    assert (b.model_id, b.weights_hash, b.architecture, b.config, b.path) == (
        "tiny-model", "0123456789abcdef", bdl.ARCHITECTURE, CONFIG, path)
    assert b.graphs == {g: f"not really {g}".encode() for g in bdl.GRAPHS}
    want = tiny_arrays()
    assert set(b.arrays) == set(want)
    for k, a in want.items():
        assert b.arrays[k].dtype == a.dtype and np.array_equal(b.arrays[k], a)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left
    assert bundle_path(tmp_path / "w" / "mean-scale-vr-128.pt") == tmp_path / "w" / "mean-scale-vr-128.runtime.npz"


def test_writing_a_bundle_that_would_not_read_back_leaves_nothing(tmp_path):
    path = tmp_path / "bad.runtime.npz"
    arrays = tiny_arrays() | {"log_gain": np.full((2, 6), np.nan, np.float32)}
    with pytest.raises(CheckpointError, match=f"^{path}: array log_gain holds NaN"):
        write_bundle(path, model_id="bad", weights_hash="0" * 16, architecture=bdl.ARCHITECTURE, config=CONFIG,
                     graphs={g: b"x" for g in bdl.GRAPHS}, arrays=arrays)
    assert list(tmp_path.iterdir()) == []


def _meta(**changes) -> bytes:
    meta = {"format": bdl.FORMAT, "version": 1, "model_id": "tiny-model", "weights_hash": "0123456789abcdef",
            "architecture": bdl.ARCHITECTURE, "config": CONFIG} | changes
    return npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))


def _huge_header() -> bytes:
    """A .npy header claiming 4 TiB of float32, followed by 16 bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (2**40,)})
    return buf.getvalue() + bytes(16)


def _array(name, a) -> dict:
    return {f"{name}.npy": npy(a)}


HOSTILE = {  # what is done to the tiny bundle's members → what the message says
    "missing entry": (lambda m: m.pop("log_gain.npy"), "no entry 'log_gain'"),
    "extra entry": (lambda m: m.update({"evil.npy": npy(np.zeros(1))}), "unexpected entry 'evil.npy'"),
    "meta not JSON": (lambda m: m.update({"meta.npy": npy(np.frombuffer(b"{not json", np.uint8))}),
                      "'meta' is not UTF-8 JSON"),
    "meta not UTF-8": (lambda m: m.update({"meta.npy": npy(np.frombuffer(b"\xff\xfe", np.uint8))}),
                       "'meta' is not UTF-8 JSON"),
    "meta nested deep": (lambda m: m.update({"meta.npy": npy(np.frombuffer(b"[" * 100000, np.uint8))}),
                         "'meta' is not UTF-8 JSON"),
    "meta a list": (lambda m: m.update({"meta.npy": npy(np.frombuffer(b"[1, 2]", np.uint8))}),
                    "not an aecodec runtime bundle"),
    "other format": (lambda m: m.update({"meta.npy": _meta(format="aecodec-checkpoint")}),
                     "not an aecodec runtime bundle"),
    "newer version": (lambda m: m.update({"meta.npy": _meta(version=2)}), "bundle version 2: this aecodec reads"),
    "version true": (lambda m: m.update({"meta.npy": _meta(version=True)}), "bundle version True"),
    "bad model id": (lambda m: m.update({"meta.npy": _meta(model_id="../Evil")}), "model id '../Evil' is not"),
    "bad hash": (lambda m: m.update({"meta.npy": _meta(weights_hash="xyz")}), "weights hash 'xyz' is not 16 hex"),
    "other architecture": (lambda m: m.update({"meta.npy": _meta(architecture="elic")}), "architecture 'elic'"),
    "extra meta field": (lambda m: m.update({"meta.npy": _meta(payload=1)}), "unexpected meta field 'payload'"),
    "config out of range": (lambda m: m.update({"meta.npy": _meta(config=CONFIG | {"N": 10**9})}),
                            "invalid model config: N must be a whole number from 1 to 512"),
    "config unknown field": (lambda m: m.update({"meta.npy": _meta(config={"evil": 1})}),
                             "invalid model config: unknown config field"),
    "config a list": (lambda m: m.update({"meta.npy": _meta(config=[1])}), "invalid model config"),
    "meta of int32": (lambda m: m.update(_array("meta", np.zeros(3, np.int32))), "entry 'meta' is <i4, not uint8"),
    "float64 weights": (lambda m: m.update(_array("log_gain", np.zeros((2, 6)))),
                        "entry 'log_gain' is <f8, not float16 or float32"),
    "int64 table": (lambda m: m.update(_array("gaussian_conditional._offset", np.zeros(5, np.int64))),
                    "entry 'gaussian_conditional._offset' is <i8, not int32"),
    "big-endian weights": (lambda m: m.update(_array("log_gain", np.zeros((2, 6), ">f4"))), "is >f4, not"),
    "object array": (lambda m: m.update({"log_gain.npy": _object_npy()}), "entry 'log_gain' is |O, not"),
    "NaN": (lambda m: m.update(_array("log_gain", np.full((2, 6), np.nan, np.float32))), "log_gain holds NaN"),
    "infinity": (lambda m: m.update(_array("h_s.layers.0.bias", np.full(6, np.inf, np.float16))),
                 "h_s.layers.0.bias holds infinity"),
    "wrong shape": (lambda m: m.update(_array("h_s.layers.0.weight", np.zeros((6, 4, 5, 5), np.float16))),
                    r"h_s.layers.0.weight has shape \(6, 4, 5, 5\), the config needs \(4, 6, 5, 5\)"),
    "table of other rows": (lambda m: m.update(_array("entropy_bottleneck._quantized_cdf", np.zeros((3, 5), np.int32))),
                            r"the config needs \(4, width\)"),
    "table too narrow": (lambda m: m.update(_array("entropy_bottleneck._quantized_cdf", np.zeros((4, 2), np.int32))),
                         "is 2 wide, not 3 to 65537"),
    "empty graph": (lambda m: m.update(_array("graph.g_s", np.zeros(0, np.uint8))), "'graph.g_s' is not the bytes"),
    "huge claimed array": (lambda m: m.update({"log_gain.npy": _huge_header()}),
                           r"entry 'log_gain' claims shape \(1099511627776,\), not what it holds"),
    "damaged header": (lambda m: m.update({"log_gain.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4\n"}),
                       "not a readable runtime bundle"),
}


def _object_npy() -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return buf.getvalue() + bytes(8)


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_bundle_is_one_line_naming_the_file(tmp_path, case):
    change, message = HOSTILE[case]
    entries = members(tiny_bundle(tmp_path / "good.runtime.npz"))
    change(entries)
    path = tmp_path / "hostile.runtime.npz"
    write_members(path, entries)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=message) as info:
            read_bundle(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(info.value)
    assert text.startswith(f"{path}: ") and "\n" not in text
    assert peak < 32 * 2**20  # the bundle's bytes and its arrays, not what a header claims


@pytest.mark.parametrize("data, message", [
    (b"", "not a readable runtime bundle"),
    (b"hello, not a zip", "not a readable runtime bundle"),
    (None, "not a readable runtime bundle"),  # the tiny bundle cut in half
])
def test_a_truncated_or_foreign_file_is_one_line(tmp_path, data, message):
    path = tmp_path / "x.runtime.npz"
    if data is None:
        good = tiny_bundle(tmp_path / "good.runtime.npz").read_bytes()
        data = good[: len(good) // 2]
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=f"^{path}: {message}"):
        read_bundle(path)


def test_a_damaged_member_fails_its_crc(tmp_path):
    path = tiny_bundle(tmp_path / "x.runtime.npz")
    data = bytearray(path.read_bytes())
    data[data.find(b"not really g_s")] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="not a readable runtime bundle"):
        read_bundle(path)


def test_an_entry_named_twice_is_refused(tmp_path):
    entries = members(tiny_bundle(tmp_path / "good.runtime.npz"))
    path = tmp_path / "twice.runtime.npz"
    write_members(path, entries)
    with pytest.warns(UserWarning), zipfile.ZipFile(path, "a") as zf:  # zipfile warns of the duplicate
        zf.writestr("log_gain.npy", entries["log_gain.npy"])
    with pytest.raises(CheckpointError, match="names an entry twice"):
        read_bundle(path)


def test_sizes_are_bounded_before_reading(tmp_path, monkeypatch):
    path = tiny_bundle(tmp_path / "x.runtime.npz")
    monkeypatch.setattr(bdl, "MAX_BYTES", path.stat().st_size - 1)
    with pytest.raises(CheckpointError, match="larger than a runtime bundle may be"):
        read_bundle(path)
    compressed = tmp_path / "deflated.runtime.npz"  # small on disk, large once inflated
    entries = members(path) | {"graph.g_s.npy": npy(np.zeros(2**20, np.uint8))}
    with zipfile.ZipFile(compressed, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    monkeypatch.setattr(bdl, "MAX_BYTES", 2**20)
    assert compressed.stat().st_size < 2**20
    with pytest.raises(CheckpointError, match="its entries hold more than a runtime bundle may"):
        read_bundle(compressed)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_bundle(tmp_path / "none.runtime.npz")


def test_the_shipped_bundle_reads():
    b = read_bundle(SHIPPED)
    assert b.model_id == "mean-scale-vr-128" and b.architecture == bdl.ARCHITECTURE
    assert set(b.arrays) == set(bdl.ARRAYS) and all(len(g) > 1_000_000 for g in b.graphs.values())
    assert SHIPPED.stat().st_size < 20 * 2**20


def test_the_shipped_bundle_holds_the_shipped_checkpoint():
    pytest.importorskip("torch")
    from aecodec.models import zoo
    from aecodec.models.checkpoint import read_checkpoint

    model, model_id, digest = zoo.load()
    b = read_bundle(SHIPPED)
    assert (b.model_id, b.weights_hash) == (model_id, digest)
    assert b.config == model.config.to_dict()
    stored = read_checkpoint(zoo.resolve(model_id))["state_dict"]
    sd = model.state_dict()
    for name, a in b.arrays.items():
        assert str(a.dtype) == str(stored[name].dtype).removeprefix("torch."), name  # as the checkpoint stores it
        want = sd[name].numpy()
        assert np.array_equal(a.astype(np.float32) if a.dtype.kind == "f" else a, want), name
