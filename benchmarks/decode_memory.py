"""Peak decode memory against the bound docs/performance.md states, on the worst cases.

    python -m benchmarks.decode_memory --out benchmarks/results/decode-memory.json

Each case is one ``aecodec decode FILE -o OUT.png`` in a fresh process under an address-space cap
(RLIMIT_AS, default 4 GiB); its peak RSS comes from ``os.wait4``. Cases: valid files of 0.06 to 16
megapixels with the largest tile the format allows (2048: the worst a header can ask for) and
with the default tile, and hostile files — a 56-byte header claiming 4096² in one 4096 tile, one
claiming 8192² in 2048 tiles with junk strings, an all-empty payload. The bound is
``BASE + PER_PIXEL · pixels`` (:data:`BASE_MIB`, :data:`PER_PIXEL_BYTES`); the run fails (exit 1)
if a case exceeds it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

BASE_MIB = 1150  # interpreter, torch, the model and one piece of synthesis (SYNTH_PIECE² + margins)
PER_PIXEL_BYTES = 20  # ŷ (3 B), synthesised pixels (3 B), Pillow's copy and the PNG writer's buffers (measured: 16)


def bound_mib(pixels: int) -> float:
    """The stated peak decode memory for an image of ``pixels`` pixels, in MiB."""
    return BASE_MIB + PER_PIXEL_BYTES * pixels / 2**20


def _photo(h: int, w: int) -> np.ndarray:
    """A photo-like image of any size (smooth gradients, edges, mild noise)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(0)
    chans = [100 + 60 * np.sin(xx / (37 + 9 * c)) * np.cos(yy / (53 + 7 * c)) + 40 * (xx > w / 2) for c in range(3)]
    img = np.stack(chans, -1) + rng.normal(0, 3, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _craft(width: int, height: int, tile_units: int, sections: list[bytes]) -> bytes:
    from aecodec.codec import format as fmt
    from aecodec.models import zoo

    mid = b"mean-scale-vr-128"
    body = (struct.pack(">4sBBHIIH8sB", fmt.MAGIC, 1, fmt.Layout.RGB, 5000, width, height, tile_units,
                        bytes.fromhex(zoo.load()[2]), len(mid))
            + mid + struct.pack(f">{len(sections)}I", *map(len, sections)) + b"".join(sections))
    return body + struct.pack(">I", zlib.crc32(body))


def _decode_peak(path: Path, cap: int, threads: int) -> tuple[float, int, float]:
    """(peak RSS MiB, exit status, seconds) of one CLI decode in a fresh, capped process. The peak
    is the child's own VmHWM (ru_maxrss would carry over the parent's size from the fork)."""
    out = path.with_suffix(".png")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({0}, {0})); "
            "import torch; torch.set_num_threads({1}); from aecodec.cli import main; "
            "rc = main(['decode', {2!r}, '-o', {3!r}, '--force', '--quiet']); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print(hwm); sys.exit(rc)").format(cap, threads, str(path), str(out))
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    out.unlink(missing_ok=True)
    return int(proc.stdout.split()[-1]) / 1024, proc.returncode, time.monotonic() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-memory-gib", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="256x256,1024x1024,2048x2048,4096x4096",
                    help="valid images to encode and decode, WxH (comma-separated)")
    a = ap.parse_args(argv)
    import aecodec

    cap = int(a.max_memory_gib * 2**30)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for size in a.sizes.split(","):
            w, h = map(int, size.split("x"))
            img = _photo(h, w)
            for tile in sorted({2048, 1024}):
                if tile == 1024 and max(w, h) <= 1024:
                    continue  # one tile either way
                path = Path(tmp) / f"valid-{w}x{h}-t{tile}.aec"
                path.write_bytes(aecodec.encode(img, quality=75, tile=tile))
                files.append(("valid", f"{w}x{h}, tile {tile}", w * h, path))
        hostile = {"56-byte header: 4096² in one 4096 tile": (_craft(4096, 4096, 64, [b"", b""]), 4096 * 4096),
                   "8192² in 2048 tiles, 8-byte junk strings": (_craft(8192, 8192, 32, [bytes(range(8))] * 32), 8192**2),
                   "1024² with an empty payload": (_craft(1024, 1024, 16, [b"", b""]), 1024 * 1024)}
        for name, (data, pixels) in hostile.items():
            path = Path(tmp) / f"hostile-{len(files)}.aec"
            path.write_bytes(data)
            files.append(("hostile", name, pixels, path))
        for kind, name, pixels, path in files:
            peak, rc, secs = _decode_peak(path, cap, a.threads)
            limit = bound_mib(pixels) if kind == "valid" else bound_mib(0)  # hostile: refused at base cost
            ok = peak <= limit and (rc == 0) == (kind == "valid")
            cases.append({"kind": kind, "case": name, "pixels": pixels, "file_bytes": path.stat().st_size,
                          "exit": rc, "peak_rss_mib": round(peak, 1), "bound_mib": round(limit, 1),
                          "seconds": round(secs, 1), "ok": ok})
            print(f"{kind:8s} {name:45s} exit {rc}  peak {peak:7.1f} MiB  bound {limit:7.1f} MiB  "
                  f"{secs:5.1f} s  {'ok' if ok else 'OVER'}", flush=True)
    result = {"command": "python -m benchmarks.decode_memory " + " ".join(argv or sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {a.threads}",
              "date": time.strftime("%Y-%m-%d"), "address_space_cap_gib": a.max_memory_gib,
              "bound": f"{BASE_MIB} MiB + {PER_PIXEL_BYTES} B/pixel", "cases": cases}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(c["ok"] for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
