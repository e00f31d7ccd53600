"""aecodec.entropy.ans: CompressAI's table semantics on constriction — round trips, escapes, hostile
tables and strings, the size bound, and its speed on a Kodak-sized latent."""

from __future__ import annotations

import time

import numpy as np
import pytest

from aecodec.entropy import ans
from aecodec.entropy.ans import MAX_VALUE, Tables, decode, encode, max_string


def _cdf(pmf: np.ndarray) -> np.ndarray:
    """A 16-bit CDF of ``pmf`` plus its tail mass as the escape symbol, every frequency ≥ 1."""
    pmf = np.append(pmf, max(0.0, 1 - pmf.sum()))
    freq = np.maximum(1, np.round(pmf * 2**16)).astype(np.int64)
    freq[np.argmax(freq)] -= freq.sum() - 2**16
    return np.concatenate([[0], np.cumsum(freq)])


def gaussian_tables(K: int = 8) -> Tables:
    """K discretised Gaussians of growing scale (as CompressAI's Gaussian conditional's tables)."""
    rows, offsets = [], []
    for s in np.geomspace(0.11, 40, K):
        tail = int(np.ceil(4 * s)) + 1
        x = np.arange(-tail, tail + 1)
        pmf = np.exp(-0.5 * (x / s) ** 2)
        rows.append(_cdf(0.999 * pmf / pmf.sum()))
        offsets.append(-tail)
    L = max(map(len, rows))
    cdfs = np.zeros((K, L), np.int32)
    for k, r in enumerate(rows):
        cdfs[k, :len(r)] = r
    return Tables(cdfs, np.array([len(r) for r in rows], np.int32), np.array(offsets, np.int32))


@pytest.fixture(scope="module")
def tables() -> Tables:
    return gaussian_tables()


def _latent(tables: Tables, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(tables.lengths), n).astype(np.int32)
    scale = np.geomspace(0.11, 40, len(tables.lengths))[idx]
    return np.round(rng.normal(0, scale)).astype(np.int32), idx


def test_round_trip_with_escapes_and_extremes(tables):
    values, idx = _latent(tables, 5000)
    values[:6] = [MAX_VALUE, -MAX_VALUE, 300, -300, 0, 7]  # far beyond every table: escapes
    string = encode(values, idx, tables)
    out = decode(string, idx, tables)
    assert out.dtype == np.int32 and np.array_equal(out, values)
    assert len(string) % 4 == 0 and len(string) <= max_string(values.size)


def test_every_value_around_a_table_codes_through_its_range_and_escape(tables):
    k = 3
    lo, top = int(tables.offsets[k]), int(tables.offsets[k] + tables.lengths[k] - 2)
    values = np.arange(lo - 70, top + 70, dtype=np.int32)  # below, in range, at the escape symbol, above
    idx = np.full(values.size, k, np.int32)
    assert np.array_equal(decode(encode(values, idx, tables), idx, tables), values)


def test_nothing_to_code(tables):
    empty = np.zeros(0, np.int32)
    assert encode(empty, empty, tables) == b""
    assert decode(b"", empty, tables).shape == (0,)


def test_the_string_is_a_deterministic_function_of_the_integer_tables(tables):
    values, idx = _latent(tables, 2000, seed=4)
    again = Tables(tables.cdfs.copy(), tables.lengths.astype(np.int64), tables.offsets.copy())
    assert encode(values, idx, tables) == encode(values, idx, again)
    assert tables.model(2) is tables.model(2)  # built once


@pytest.mark.parametrize("damage", ["not monotone", "zero frequency", "start", "end", "short", "long",
                                    "offset", "shapes", "empty", "float"])
def test_malformed_tables_are_refused(tables, damage):
    cdfs, lengths, offsets = tables.cdfs.copy(), tables.lengths.copy(), tables.offsets.copy()
    if damage == "not monotone":
        cdfs[1, 2], cdfs[1, 3] = cdfs[1, 3], cdfs[1, 2]
    elif damage == "zero frequency":
        cdfs[1, 2] = cdfs[1, 1]
    elif damage == "start":
        cdfs[0, 0] = 1
    elif damage == "end":
        cdfs[0, lengths[0] - 1] -= 1
    elif damage == "short":
        lengths[0] = 2
    elif damage == "long":
        lengths[0] = cdfs.shape[1] + 1
    elif damage == "offset":
        offsets[0] = -(MAX_VALUE + 1)
    elif damage == "shapes":
        lengths = lengths[:-1]
    elif damage == "empty":
        cdfs, lengths, offsets = cdfs[:0], lengths[:0], offsets[:0]
    else:
        cdfs = cdfs.astype(np.float32)
    with pytest.raises(ValueError, match="tables"):
        Tables(cdfs, lengths, offsets)


def test_values_and_indexes_it_cannot_code_are_refused(tables):
    idx = np.zeros(2, np.int32)
    with pytest.raises(ValueError, match="beyond"):
        encode(np.array([0, MAX_VALUE + 1], np.int32), idx, tables)
    with pytest.raises(ValueError, match="table indexes"):
        encode(np.zeros(2, np.int32), np.array([0, len(tables.lengths)], np.int32), tables)
    with pytest.raises(ValueError, match="shaped like"):
        encode(np.zeros(3, np.int32), idx, tables)
    with pytest.raises(ValueError, match="table indexes"):
        decode(b"", np.array([-1], np.int32), tables)


def test_hostile_strings_raise_value_error_or_decode_to_what_re_encodes_to_them(tables):
    values, idx = _latent(tables, 3000, seed=1)
    values[::97] = 1000  # some escapes
    good = encode(values, idx, tables)
    rng = np.random.default_rng(2)
    refused = 0
    for i in range(400):
        s = bytearray(good)
        how = i % 6
        if how == 0:
            s = bytearray(rng.bytes(int(rng.integers(0, 80))))
        elif how == 1:
            s = s[:int(rng.integers(0, len(s)))]
        elif how == 2:
            s[int(rng.integers(len(s)))] ^= 1 << int(rng.integers(8))
        elif how == 3:
            s += rng.bytes(4 * int(rng.integers(1, 4)))
        elif how == 4:
            s = bytearray(rng.bytes(4 * int(rng.integers(1, 3000))))
        else:
            s[-4:] = bytes(4)  # a trailing zero word: never made by an encoder
        try:
            out = decode(bytes(s), idx, tables)
        except ValueError:
            refused += 1
            continue
        assert encode(out, idx, tables) == bytes(s)
    assert refused > 350


def test_max_string_bounds_the_worst_strings():
    """Symbols of the least probable kind and escapes of the largest magnitude stay within the bound."""
    cdf = np.array([[0, 1, 2, 2**16]], np.int32)  # symbols 0 and 1 at 2**-16 each
    t = Tables(cdf, np.array([4]), np.array([0]))
    for values in [np.zeros(1000, np.int32), np.full(1000, -MAX_VALUE, np.int32),
                   np.resize(np.array([0, 1, MAX_VALUE, -MAX_VALUE], np.int32), 1001), np.zeros(1, np.int32)]:
        n_escapes = int(((values < 0) | (values >= 2)).sum())
        assert len(encode(values, np.zeros(values.size, np.int32), t)) <= max_string(values.size, n_escapes)
    assert max_string(0) == 8 and max_string(100, 0) < max_string(100)


def test_speed_of_a_kodak_sized_latent(capsys):
    """y of a 512×768 image (192×32×48 symbols, 64 tables) and its z (128×8×12); printed, loosely bounded."""
    t = gaussian_tables(64)
    timings = {}
    for name, n in [("y", 192 * 32 * 48), ("z", 128 * 8 * 12)]:
        values, idx = _latent(t, n, seed=5)
        encode(values[:10], idx[:10], t)
        t0 = time.perf_counter()
        s = encode(values, idx, t)
        t1 = time.perf_counter()
        assert np.array_equal(decode(s, idx, t), values)
        timings[name] = (t1 - t0, time.perf_counter() - t1, len(s))
    with capsys.disabled():
        print("\n" + ", ".join(f"{k}: encode {1e3 * e:.1f} ms, decode {1e3 * d:.1f} ms, {b} bytes"
                               for k, (e, d, b) in timings.items()))
    assert timings["y"][1] < 1.0


def test_a_table_of_the_shipped_model_round_trips():
    pytest.importorskip("torch")
    from aecodec.models import zoo

    gc = zoo.load()[0].gaussian_conditional
    t = Tables(*(b.numpy() for b in (gc._quantized_cdf, gc._cdf_length, gc._offset)))
    values, idx = _latent(t, 20000, seed=6)
    assert np.array_equal(decode(encode(values, idx, t), idx, t), values)


def test_panics_become_value_errors(tables, monkeypatch):
    """constriction's Rust panics (pyo3's PanicException, a BaseException) leave as ValueError."""
    panic = type("PanicException", (BaseException,), {})

    class Coder:
        def __init__(self, words):
            pass

        def decode(self, *args):
            raise panic("assertion failed")

    monkeypatch.setattr(ans, "_AnsCoder", Coder)
    with pytest.raises(ValueError, match="damaged"):
        decode(b"\x01\x00\x00\x00", np.zeros(3, np.int32), tables)
