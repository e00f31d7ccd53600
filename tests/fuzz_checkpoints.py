"""Fuzzing harness for checkpoint loading: random mutations of a small valid checkpoint.

The mutations (``KINDS``) of tests/models/test_checkpoint_fuzz.py, drawn at random and combined:
the file's bytes truncated or overwritten; a top-level field deleted or given a value of another
type; a config field changed; a tensor replaced by another type, cast, reshaped, dropped, added or
given NaN, infinity or a huge value; the CDF tables zeroed, shuffled, reversed, poked, their lengths
or offsets changed — most with a recomputed weights hash, so that they reach the checks behind it.

Each case is loaded as the codec loads a model (``zoo.load``). It must end in a ModelError of one
line that starts with the checkpoint's path, or load; a checkpoint that loads must then encode and
decode a small image, or refuse it with an AecodecError. Anything else is a *traceback* (the run
stops with a reproducer); a signal (the zeroed tables' SIGFPE inside CompressAI's coder) kills the
run, a hang dumps every thread's stack. ``--subprocess K`` also runs K cases through the command line
(``python -m aecodec encode img.png --model bad.pt -o out.aec``), where a signal is an exit status
of its own, and requires one ``aecodec: error:`` line naming the checkpoint and no output file.

    python -m tests.fuzz_checkpoints --cases 2000 --subprocess 50 --seed 1

``tests/models/test_checkpoint_fuzz.py`` runs a short, seeded version in the test suite.
"""

from __future__ import annotations

import argparse
import copy
import faulthandler
import math
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

import aecodec
from aecodec.errors import AecodecError, ModelError
from aecodec.models import zoo
from aecodec.models.checkpoint import save_checkpoint, weights_hash
from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

KINDS = ("truncate", "bytes", "field", "config", "tensor", "table", "several")
TABLES = ("entropy_bottleneck", "gaussian_conditional")
_VALUES = (None, 0, -1, 7, 10**12, 2.5, math.nan, math.inf, "", "x", "mean-scale-hyperprior-vr", [], [1, 2],
           {}, {"a": 1}, True, b"\x00", (1,))


def valid_checkpoint(folder: Path) -> tuple[Path, dict]:
    """A tiny valid checkpoint (N 8, M 12, CDF tables computed) and its payload."""
    torch.manual_seed(0)
    model = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12))
    model.update()
    path = folder / "valid.pt"
    save_checkpoint(path, model, model_id="tiny")
    return path, torch.load(path, weights_only=True)


def _value(rng: random.Random):
    v = rng.choice(_VALUES + ("tensor",))
    return torch.randn(rng.randrange(1, 4)) if v == "tensor" else copy.copy(v)


def _tensor_mutation(t: torch.Tensor, rng: random.Random):
    """Another value for one tensor of the state dict."""
    how = rng.choice(("value", "type", "cast", "reshape", "poke", "poke", "poke", "zero", "sparse", "empty"))
    if how == "value":
        return _value(rng)
    if how == "type":
        return rng.choice((t.tolist() if t.numel() < 64 else [0.0], 3, None, "tensor", np.zeros(2)))
    if how == "cast":
        return t.to(rng.choice((torch.int64, torch.int32, torch.float16, torch.float64, torch.bool, torch.uint8,
                                torch.complex64, torch.bfloat16)))
    if how == "reshape":
        shape = list(t.shape) or [1]
        i = rng.randrange(len(shape))
        shape[i] = max(0, shape[i] + rng.choice((-1, 1, 5)))
        return torch.zeros(rng.choice((shape, shape + [1], shape[:-1])), dtype=t.dtype)
    if how == "sparse":
        return t.to_sparse() if t.dim() else t
    if how == "empty":
        return t.new_empty(0)
    t = t.clone()
    if t.numel() == 0:
        return t
    if how == "zero":
        return t.zero_()
    value = rng.choice((math.nan, math.inf, -math.inf, 1e30, -1e30, 0.0, 65504.0, 2.0**31 - 1, -2.0**31,
                        rng.uniform(-100, 100)))
    if not t.is_floating_point():
        value = int(value) if math.isfinite(value) and abs(value) < 2**31 else rng.choice((0, -1, 2**31 - 1, 70000))
    t.view(-1)[rng.randrange(t.numel())] = value
    return t


def _table_mutation(sd: dict, rng: random.Random) -> None:
    prefix = rng.choice(TABLES)
    cdf, length, offset = (f"{prefix}.{n}" for n in ("_quantized_cdf", "_cdf_length", "_offset"))
    how = rng.choice(("zero", "shuffle", "reverse", "poke", "length", "offset", "row", "empty", "swap"))
    c = sd[cdf].clone()
    if how == "zero":
        sd[cdf] = torch.zeros_like(c)
    elif how == "shuffle":
        sd[cdf] = c[:, torch.randperm(c.shape[1])] if rng.random() < 0.5 else c[torch.randperm(c.shape[0])]
    elif how == "reverse":
        sd[cdf] = c.flip(1)
    elif how == "poke":
        c[rng.randrange(c.shape[0]), rng.randrange(c.shape[1])] = rng.choice((0, -1, 65536, 65535, 1, 2**31 - 1,
                                                                             rng.randrange(65537)))
        sd[cdf] = c
    elif how == "length":
        n = sd[length].clone()
        n[rng.randrange(n.numel())] = rng.choice((0, 1, 2, 3, -1, c.shape[1], c.shape[1] + 1, 2**31 - 1))
        sd[length] = n
    elif how == "offset":
        o = sd[offset].clone()
        o[rng.randrange(o.numel())] += rng.choice((1, -1, 2**20, -(2**30)))
        sd[offset] = o
    elif how == "row":
        for key in rng.sample((cdf, length, offset), rng.randrange(1, 4)):
            sd[key] = sd[key][:-1]
    elif how == "empty":
        for key in rng.sample((cdf, length, offset), rng.randrange(1, 4)):
            sd[key] = sd[key][:0]
    else:  # the two entropy models' tables swapped
        other = TABLES[1 - TABLES.index(prefix)]
        for n in ("_quantized_cdf", "_cdf_length", "_offset"):
            sd[f"{prefix}.{n}"], sd[f"{other}.{n}"] = sd[f"{other}.{n}"], sd[f"{prefix}.{n}"]


def mutate_payload(payload: dict, rng: random.Random, kind: str) -> None:
    """Apply one mutation of ``kind`` (not ``truncate``/``bytes``: those act on the file) in place."""
    sd = payload["state_dict"]
    if kind == "field":
        key = rng.choice(("format", "version", "model_id", "arch", "config", "state_dict", "weights_hash", "storage",
                          "training", "step", "extra"))
        if rng.random() < 0.3:
            payload.pop(key, None)
        else:
            payload[key] = _value(rng)
    elif kind == "config":
        cfg = payload["config"] = dict(payload["config"])
        key = rng.choice(list(cfg) + ["aux_transform", "bogus"])
        if rng.random() < 0.2:
            cfg.pop(key, None)
        elif key == "fixed_point" and rng.random() < 0.7:
            fp = cfg["fixed_point"] = dict(cfg["fixed_point"])
            fp[rng.choice(list(fp))] = rng.choice((_value(rng), 0, 53, 60, 1e300, -2.0, 2**40))
        else:
            cfg[key] = rng.choice((_value(rng), 0, 1, 16, 513, 10**9, -3, 1e-9, 5000.0, [1e-3] * 300))
    elif kind == "tensor":
        key = rng.choice(sorted(sd))
        r = rng.random()
        if r < 0.1:
            del sd[key]
        elif r < 0.15:
            sd[rng.choice(("g_a.99.weight", "extra", key + ".x"))] = torch.zeros(2)
        elif r < 0.18:
            sd[rng.choice((1, None, (1, 2)))] = torch.zeros(1)
        else:
            sd[key] = _tensor_mutation(sd[key], rng)
    elif kind == "table":
        _table_mutation(sd, rng)
    else:
        raise ValueError(kind)


def make_case(valid: tuple[Path, dict], rng: random.Random, path: Path) -> str:
    """Write one mutated checkpoint to ``path``; returns its kind."""
    kind = rng.choice(KINDS)
    if kind in ("truncate", "bytes"):
        data = bytearray(valid[0].read_bytes())
        if kind == "truncate":
            data = data[:rng.randrange(len(data))]
        else:
            for _ in range(rng.choice((1, 1, 4, 64))):
                data[rng.randrange(len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data))
        return kind
    payload = copy.deepcopy(valid[1])
    for k in ([rng.choice(KINDS[2:-1]) for _ in range(rng.randrange(2, 5))] if kind == "several" else [kind]):
        try:
            mutate_payload(payload, rng, k)
        except (KeyError, TypeError, AttributeError, IndexError, ValueError, RuntimeError):
            pass  # an earlier mutation left nothing this one applies to (a field gone, a tensor now a list)
    if rng.random() < 0.8 and isinstance(payload.get("state_dict"), dict):
        try:
            payload["weights_hash"] = weights_hash(payload["state_dict"])
        except Exception:  # not hashable (a non-tensor inside): the field checks refuse it first
            pass
    torch.save(payload, path)
    return kind


def check(path: Path, image: np.ndarray) -> str:
    """Load one case as the codec does; return the outcome, raise AssertionError on a bad one."""
    try:
        zoo.load(path)
    except ModelError as exc:
        msg = str(exc)
        assert msg.startswith(f"{path}: ") and "\n" not in msg, repr(msg)
        return type(exc).__name__
    try:  # it loaded: it must code, or refuse to in one line
        data = aecodec.encode(image, quality=50, model=path)
        out = aecodec.decode(data, model=path)
        assert out.size == (image.shape[1], image.shape[0])
        return "loaded, coded"
    except AecodecError as exc:
        assert "\n" not in str(exc), repr(str(exc))
        check.last_error = str(exc)
        return f"loaded, {type(exc).__name__} when coding"


def run(cases: int, seed: int, folder: Path, log=print, hang: float | None = None, keep: bool = False) -> Counter:
    """Load ``cases`` mutated checkpoints in this process; count the outcomes by ``(kind, outcome)``.
    ``keep``: leave each case's file in ``folder`` (to reproduce one)."""
    from tests.helpers import smooth_image

    rng = random.Random(seed)
    torch.manual_seed(seed)
    valid = valid_checkpoint(folder)
    image = smooth_image(24, 32)
    outcomes: Counter = Counter()
    t0 = time.monotonic()
    for i in range(cases):
        path = folder / f"case{i}.pt"
        kind = make_case(valid, rng, path)
        if hang:
            faulthandler.dump_traceback_later(hang, exit=True)
        try:
            outcome = check(path, image)
        except Exception as exc:  # a traceback: report with a reproducer
            raise AssertionError(f"case {i} ({kind}, seed {seed}) failed: {exc!r}; "
                                 f"rerun with --cases {i + 1} --seed {seed} --keep") from exc
        finally:
            if hang:
                faulthandler.cancel_dump_traceback_later()
        outcomes[kind, outcome] += 1
        if log and outcome.endswith("when coding"):
            log(f"case {i} ({kind}): {outcome}: {check.last_error}")
        if not keep:
            path.unlink()
        if log and (i + 1) % 500 == 0:
            log(f"{i + 1} cases, {time.monotonic() - t0:.0f} s")
    return outcomes


def run_subprocesses(cases: int, seed: int, folder: Path, jobs: int = 2, log=print) -> Counter:
    """``cases`` mutated checkpoints through ``python -m aecodec encode --model``, ``jobs`` at a time."""
    from PIL import Image

    from tests.helpers import smooth_image

    rng = random.Random(seed + 1_000_003)
    valid = valid_checkpoint(folder)
    image = folder / "img.png"
    Image.fromarray(smooth_image(24, 32)).save(image)
    outcomes: Counter = Counter()
    pending = []
    for i in range(cases):
        path = folder / f"sub{i}.pt"
        kind = make_case(valid, rng, path)
        out = folder / f"sub{i}.aec"
        proc = subprocess.Popen([sys.executable, "-m", "aecodec", "encode", str(image), "--model", str(path),
                                 "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pending.append((i, kind, path, out, proc))
        while len(pending) >= jobs or (i == cases - 1 and pending):
            j, kind, path, out, proc = pending.pop(0)
            _, err = proc.communicate(timeout=600)
            rc = proc.returncode
            lines = err.splitlines()
            if rc < 0 or rc > 128:
                outcome = f"CRASH (signal {-rc if rc < 0 else rc - 128})"
            elif "Traceback" in err:
                outcome = "TRACEBACK"
            elif rc == 0:
                outcome = "coded"
            elif (len(lines) == 1 and lines[0].startswith("aecodec: error: ") and str(path) in lines[0]
                  and not out.exists()):
                outcome = f"one line, exit {rc}"
            else:
                outcome = "BAD MESSAGE"
            if outcome.isupper() or outcome.startswith("CRASH"):
                log(f"subprocess case {j} ({kind}): {outcome}: exit {rc}: {err[-400:]}")
            outcomes[kind, outcome] += 1
    return outcomes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Fuzz checkpoint loading.")
    ap.add_argument("--cases", type=int, default=2000, help="in-process cases")
    ap.add_argument("--subprocess", type=int, default=0, help="cases through the command line")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="command lines at a time")
    ap.add_argument("--hang", type=float, default=120.0, help="seconds after which one case counts as a hang")
    ap.add_argument("--keep", metavar="DIR", nargs="?", const=".", help="write the cases there and keep them")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.keep) if a.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        outcomes = run(a.cases, a.seed, folder, hang=a.hang, keep=bool(a.keep))
        totals = Counter()
        for (_, outcome), n in outcomes.items():
            totals[outcome] += n
        print(f"{a.cases} in-process cases, seed {a.seed}, {time.monotonic() - t0:.0f} s, 0 crashes, "
              f"0 tracebacks: {dict(totals)}")
        print("by kind:", {f"{k}:{o}": n for (k, o), n in sorted(outcomes.items())})
        if a.subprocess:
            t0 = time.monotonic()
            sub = run_subprocesses(a.subprocess, a.seed, folder, a.jobs)
            totals = Counter()
            for (_, outcome), n in sub.items():
                totals[outcome] += n
            bad = sum(n for o, n in totals.items() if o.isupper() or o.startswith("CRASH"))
            print(f"{a.subprocess} command-line cases, {time.monotonic() - t0:.0f} s, {bad} crashes, tracebacks "
                  f"or bad messages: {dict(totals)}")
            if bad:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
