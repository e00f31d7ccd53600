"""Fuzzing harness for the .aec decoder.

Mutates valid files (bit flips, byte overwrites, truncation, insertion, section-length and
header-field edits, huge dimensions, other weights hash, shuffled or random coded payloads — with
and without a recomputed CRC, so that mutations also reach the entropy decoder) and feeds random
bytes. The seeds are files of today's format (3) and one of aecodec 0.1's (version 1, CompressAI's
rANS, decoded through the torch model). Hostile families of their own: ``tile`` (every tile-size field, valid or not),
``empty`` (sections of 0 to 7 bytes: too short for a rANS string, and for version 3 empty or
not whole 32-bit words), ``damage`` (a payload zeroed,
0xFF-filled, tail-flipped or with one byte changed, CRC recomputed) and ``bomb`` (headers declaring
up to 268 MP — decoded under the default pixel cap (2^26), not the harness's small one — with any tile
field and tiny sections). Each case is read by the bounded stream reader first, then decoded.
Every case must end in a clean error (``aecodec.FormatError`` /
``ModelNotFound``) or a correct-looking image: the header's size and mode. A crash, hang, traceback
of another type or runaway allocation fails the run.

    python -m tests.fuzz_decoder --cases 100000 --seed 1 --max-memory 4G   # the long run

``--max-memory`` caps the process's address space (RLIMIT_AS), ``--hang`` kills a case that runs
too long (with its stack); the summary gives the outcomes and the run's peak RSS.
``tests/codec/test_fuzz.py`` runs a short, seeded version of the same harness in the test suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import io
import random
import resource
import struct
import sys
import time
import zlib
from collections import Counter

import aecodec
from aecodec.codec import format as fmt
from aecodec.codec import geometry
from aecodec.codec.files import read_file

MAX_PIXELS = 1 << 16  # the fuzzer's decompression-bomb cap: keeps every accepted case small


LEGACY_SEED = "tests/golden/v1-gray16.aec"  # a 16×16 gray file of aecodec 0.1 (format 1)


def seeds() -> list[bytes]:
    """Valid files to mutate: tiny RGB, gray, RGBA and a 2×2-tile image (format 3), and a tiny
    format-1 file (when the torch model can decode it)."""
    from pathlib import Path

    from aecodec.models.runtime import has_torch
    from tests.helpers import smooth_image
    import numpy as np
    rgba = np.dstack([smooth_image(12, 10), np.full((12, 10), 200, np.uint8)])
    pool = [aecodec.encode(smooth_image(16, 24), quality=50),
            aecodec.encode(smooth_image(9, 7, channels=1), quality=90),
            aecodec.encode(rgba, quality=10),
            aecodec.encode(smooth_image(70, 100, seed=5), quality=70, tile=64)]
    legacy = Path(__file__).resolve().parents[1] / LEGACY_SEED
    if has_torch() and legacy.is_file():
        pool.append(legacy.read_bytes())
    return pool


def _table(b) -> int:
    """Where a file's section table starts: after the model id, and the strips field (versions 2, 3)."""
    return 27 + b[26] + (2 if b[4] >= 2 else 0)


def _fix_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack(">I", zlib.crc32(data[:-4])) if len(data) >= 4 else data


KINDS = ("bitflip", "bytes", "truncate", "insert", "length", "header", "dims", "hash", "payload", "random",
         "tile", "empty", "damage", "bomb")
BOMB_KINDS = {"bomb"}  # decoded under the default pixel cap


def _rans_like(rng: random.Random, most: int) -> bytes:
    """Random bytes shaped like a coded string of any version (a multiple of 4, at least 8), so they
    pass the format."""
    return bytes(rng.randrange(256) for _ in range(8 + 4 * rng.randrange(most // 4)))


def craft(width: int, height: int, tile_units: int, sections: list[bytes], *, weights_hash: str,
          layout: int = fmt.Layout.RGB, model_id: str = "mean-scale-vr-128", version: int = fmt.VERSION,
          strips: int = 1) -> bytes:
    """A file of ``version`` written byte by byte, as an attacker would: any header field, any
    sections, a valid CRC (``format.pack`` refuses what this writes). Versions 2 and 3 carry the
    ``strips`` field."""
    mid = model_id.encode()
    body = (struct.pack(">4sBBHIIH8sB", fmt.MAGIC, version, layout, 5000, width, height, tile_units,
                        bytes.fromhex(weights_hash), len(mid))
            + mid + (struct.pack(">H", strips) if version >= 2 else b"")
            + struct.pack(f">{len(sections)}I", *map(len, sections)) + b"".join(sections))
    return body + struct.pack(">I", zlib.crc32(body))


def _bomb(c: fmt.Container, rng: random.Random) -> bytes:
    """A header declaring a huge image (up to the default cap) with any tile field and tiny
    sections (all empty, all too short, or all random rANS-shaped strings) — a few hundred bytes
    that must not cost more than a small image to refuse."""
    w = rng.choice([rng.randrange(1, 1 << 14), 4096, 16384, 65535, 1 << 24])
    h = max(1, min(1 << 24, rng.randrange(1, 1 << 14) if w < (1 << 14) else rng.randrange(1, 64)))
    units = rng.choice([1, 16, 32, 32, 33, 64, 256, 1024, 65535])
    rows, cols = geometry.tile_grid(w, h, min(64 * units, fmt.MAX_TILE))
    n = min(2 * rows * cols, 4096) + (1 if c.layout in fmt.Layout.WITH_ALPHA else 0)
    style = rng.choice(["empty", "short", "junk"])  # junk: rANS-shaped, so it reaches the entropy decoder
    sections = [b"" if style == "empty" else bytes(4) if style == "short" else _rans_like(rng, 64)
                for _ in range(n)]
    return craft(w, h, units % 65536, sections, weights_hash=c.weights_hash, layout=c.layout, model_id=c.model_id,
                 version=rng.choice([1, fmt.VERSION]))  # the legacy rules and today's


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes, bool]:
    """``(kind, mutated bytes, crc_valid)``: ``crc_valid`` says whether the file's CRC matches its
    content (recomputed after the mutation, as a forger would; or never touched)."""
    b = bytearray(data)
    kind = rng.choice(KINDS)
    if kind == "bitflip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == "truncate":
        del b[rng.randrange(len(b)):]
    elif kind == "insert":
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == "length":  # a section length (the table follows the model id and the strips field)
        table = _table(b)
        n = (len(b) - table - 4) // 4
        if n > 0:
            i = table + 4 * rng.randrange(min(n, 16))
            b[i:i + 4] = struct.pack(">I", rng.choice([0, 1, 2**31, 2**32 - 1, rng.randrange(2**32)]))
    elif kind == "header":
        i = rng.randrange(4, 27)
        b[i] = rng.randrange(256)
    elif kind == "dims":
        w, h = rng.choice([(0, 1), (2**24, 2**24), (2**24 + 1, 1), (1, 2**31), (65536, 65536),
                           (rng.randrange(1, 300), rng.randrange(1, 300))])
        b[8:16] = struct.pack(">II", w, h)
    elif kind == "hash":
        b[18:26] = bytes(rng.randrange(256) for _ in range(8))
    elif kind == "payload":  # well-formed container, hostile rANS strings
        c = fmt.unpack(bytes(b))
        tiles = tuple((_rans_like(rng, 48), _rans_like(rng, 512)) for _ in c.tiles)
        return kind, fmt.pack(dataclasses.replace(c, tiles=tiles)), True
    elif kind == "tile":  # every tile-size field: valid ones change the grid (or not), others are refused
        b[16:18] = struct.pack(">H", rng.choice([0, 1, 2, 16, 31, 32, 33, 64, 1024, 1025, 65535]))
    elif kind == "empty":  # sections too short to be rANS strings (v3: empty, or not whole words)
        table = _table(b)
        sections = 2 * len(fmt.unpack(bytes(b)).tiles)
        i = table + 4 * rng.randrange(min(sections, 8))
        old_len = struct.unpack_from(">I", b, i)[0]
        new_len = rng.randrange(8)
        b[i:i + 4] = struct.pack(">I", new_len)
        if rng.random() < 0.5:  # and make the file consistent again: drop the lost bytes at the end
            del b[len(b) - 4 - max(0, old_len - new_len):len(b) - 4]
    elif kind == "damage":  # a valid container with a damaged payload, CRC recomputed
        c = fmt.unpack(bytes(b))
        t = rng.randrange(len(c.tiles))
        which = rng.randrange(2)
        s = bytearray(c.tiles[t][which])
        how = rng.choice(["zero", "ff", "tail", "byte"])
        if how == "zero":
            s[:] = bytes(len(s))
        elif how == "ff":
            s[:] = b"\xff" * len(s)
        elif how == "tail":
            for j in range(max(0, len(s) - 8), len(s)):
                s[j] ^= rng.randrange(1, 256)
        else:
            s[rng.randrange(len(s))] ^= rng.randrange(1, 256)
        tiles = list(c.tiles)
        tiles[t] = (bytes(s), tiles[t][1]) if which == 0 else (tiles[t][0], bytes(s))
        return kind, fmt.pack(dataclasses.replace(c, tiles=tuple(tiles))), True
    elif kind == "bomb":
        return kind, _bomb(fmt.unpack(bytes(b)), rng), True
    else:
        return kind, bytes(rng.randrange(256) for _ in range(rng.randrange(64))), False
    out = bytes(b)
    if rng.random() < 0.7:
        return kind, _fix_crc(out), True
    return kind, out, out == data


def check(data: bytes, max_pixels: int = MAX_PIXELS) -> str:
    """Decode one case; return the outcome, raise AssertionError on a bad one. The bounded reader
    (``files.read_file`` on a stream) reads the case first: it returns the file's bytes exactly, or
    refuses it in one line."""
    try:
        assert read_file(io.BytesIO(data), max_pixels=max_pixels) == data
        img = aecodec.decode(data, max_pixels=max_pixels)
    except (aecodec.FormatError, aecodec.ModelNotFound) as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, repr(msg)
        return type(exc).__name__
    c = fmt.unpack(data, max_pixels=max_pixels)
    assert img.size == (c.width, c.height), (img.size, c.width, c.height)
    assert img.mode == fmt.Layout.PIL_MODES[c.layout]
    return "image"


def run(cases: int, seed: int, log=print, hang: float | None = None) -> Counter:
    """Decode ``cases`` mutated files; count the outcomes by ``(kind, crc_valid, outcome)``.
    ``hang``: seconds after which a case is a hang (the process exits with every thread's stack)."""
    rng = random.Random(seed)
    pool = seeds()
    outcomes: Counter = Counter()
    t0 = time.monotonic()
    for i in range(cases):
        kind, data, crc_valid = mutate(rng.choice(pool), rng)
        if hang:
            faulthandler.dump_traceback_later(hang, exit=True)
        try:
            outcome = check(data, fmt.DEFAULT_MAX_PIXELS if kind in BOMB_KINDS else MAX_PIXELS)
        except Exception as exc:  # report with a reproducer
            raise AssertionError(f"case {i} ({kind}, seed {seed}) failed: {exc!r}; "
                                 f"data={data[:64].hex()}…") from exc
        finally:
            if hang:
                faulthandler.cancel_dump_traceback_later()
        outcomes[kind, crc_valid, outcome] += 1
        if log and (i + 1) % 10000 == 0:
            log(f"{i + 1} cases, {time.monotonic() - t0:.0f} s, peak RSS {peak_rss_mib():.0f} MiB")
    return outcomes


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux: ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bytes(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1:].upper() in units else int(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Fuzz the .aec decoder.")
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: tiny images, no contention)")
    ap.add_argument("--max-memory", metavar="SIZE", help="address-space cap (RLIMIT_AS), e.g. 4G")
    ap.add_argument("--hang", type=float, default=60.0, help="seconds after which one case counts as a hang")
    a = ap.parse_args(argv)
    if a.max_memory:
        cap = _bytes(a.max_memory)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import torch
    torch.set_num_threads(a.threads)
    t0 = time.monotonic()
    outcomes = run(a.cases, a.seed, hang=a.hang)
    totals, by_kind = Counter(), Counter()
    for (kind, _, outcome), n in outcomes.items():
        totals[outcome] += n
        by_kind[f"{kind}:{outcome}"] += n
    print(f"{a.cases} cases, seed {a.seed}, {time.monotonic() - t0:.0f} s, address space "
          f"{a.max_memory or 'unlimited'}, peak RSS {peak_rss_mib():.0f} MiB, 0 crashes, 0 hangs: {dict(totals)}")
    print("by kind:", dict(sorted(by_kind.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
