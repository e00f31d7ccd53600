"""Checkpoint fuzz family: every mutation of a small valid checkpoint — truncated, wrong types, NaN and
infinity in each module, damaged CDF tables, missing or extra tensors, wrong shapes, a damaged config —
is refused at load with one ModelError line that names the checkpoint, never a traceback or a signal.

The mutated tensors get a recomputed weights hash (as a forged CRC in the decoder's fuzz): the checks
behind the hash must hold on their own. The same mutations at random: tests/fuzz_checkpoints.py.
"""

from __future__ import annotations

import copy
import io
import os
import subprocess
import sys

import pytest
import torch

from aecodec.errors import CheckpointError, ModelError
from aecodec.models import zoo
from aecodec.models.checkpoint import load_checkpoint, save_checkpoint, weights_hash
from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

EB, GC = "entropy_bottleneck", "gaussian_conditional"


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """``(path, payload)`` of a tiny valid checkpoint (N 8, M 12) with its CDF tables."""
    torch.manual_seed(0)
    model = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12))
    model.update()
    path = tmp_path_factory.mktemp("valid") / "tiny.pt"
    save_checkpoint(path, model, model_id="tiny")
    return path, torch.load(path, weights_only=True)


def forge(payload: dict, path, *, rehash: bool = True):
    """Write ``payload`` as a checkpoint, its weights hash recomputed (when its tensors allow)."""
    if rehash:
        try:
            payload["weights_hash"] = weights_hash(payload["state_dict"])
        except Exception:  # a state dict that cannot be hashed: the field checks refuse it first
            pass
    torch.save(payload, path)
    return path


def _sd(key, value):
    def mutate(c):
        c["state_dict"][key] = value(c["state_dict"][key]) if callable(value) else value
    return mutate


def _top(key, value):
    def mutate(c):
        if value is _DELETE:
            del c[key]
        else:
            c[key] = value
    return mutate


def _config(**fields):
    def mutate(c):
        c["config"] = {**c["config"], **fields}
    return mutate


def _poke(key, value, index=0):
    """One value of tensor ``key`` (flat index) set to ``value``."""
    def mutate(c):
        t = c["state_dict"][key].clone()
        t.view(-1)[index] = value
        c["state_dict"][key] = t
    return mutate


def _table(prefix, name, fn):
    def mutate(c):
        key = f"{prefix}.{name}"
        c["state_dict"][key] = fn(c["state_dict"][key].clone())
    return mutate


_DELETE = object()

# name → mutation of the payload (a deep copy of the valid one)
MUTATIONS = {
    # the top-level fields: missing, or of the wrong type or value
    **{f"missing {k}": _top(k, _DELETE) for k in ("format", "version", "model_id", "arch", "config", "state_dict",
                                                   "weights_hash")},
    **{f"{k} = {v!r}": _top(k, v) for k in ("format", "version", "model_id", "arch", "config", "state_dict",
                                            "weights_hash") for v in (None, 7, [1], 2.5)},
    **{f"{k} a tensor": _top(k, torch.ones(2)) for k in ("format", "version", "model_id", "arch", "config",
                                                          "state_dict", "weights_hash", "storage", "training")},
    "format = other": _top("format", "other-checkpoint"),
    "version = 2": _top("version", 2),
    "version = True": _top("version", True),
    "model id not kebab-case": _top("model_id", "Tiny Model"),
    "model id too long": _top("model_id", "a" * 65),
    "unknown arch": _top("arch", "no-such-architecture"),
    "weights hash too short": _top("weights_hash", "abc"),
    "weights hash not hex": _top("weights_hash", "z" * 16),
    "storage unknown": _top("storage", "fp8"),
    "training a list": _top("training", [1, 2]),
    "whole payload a list": lambda c: c.clear() or c.update({"format": "aecodec-checkpoint"}) or None,
    # the config
    "config N a string": _config(N="8"),
    "config N huge": _config(N=10**9),
    "config N zero": _config(N=0),
    "config N a bool": _config(N=True),
    "config M float": _config(M=12.0),
    "config unknown field": _config(bogus=1),
    "config lambdas empty": _config(lambdas=[]),
    "config lambdas NaN": _config(lambdas=[float("nan")] * 8),
    "config lambdas a number": _config(lambdas=3),
    "config scale_max inf": _config(scale_max=float("inf")),
    "config scale_min above scale_max": _config(scale_min=300.0),
    "config scale_levels huge": _config(scale_levels=10**7),
    "config fixed_point a list": _config(fixed_point=[16, 2.0]),
    "config fixed_point bits huge": _config(fixed_point={"w_bits": 10**6, "w_max": 2.0, "a_bits": 10, "a_max": 1024.0}),
    "config fixed_point w_max inf": _config(fixed_point={"w_bits": 16, "w_max": float("inf"), "a_bits": 10,
                                                         "a_max": 1024.0}),
    "config fixed_point grid not exact": _config(fixed_point={"w_bits": 30, "w_max": 2.0, "a_bits": 20,
                                                              "a_max": 1024.0}),
    "config aux_transform a string": _config(aux_transform="yes"),
    "config of another size": _config(N=16),
    # the state dict: names, types, dtypes, shapes
    "tensor missing": lambda c: c["state_dict"].pop("g_s.0.weight"),
    "tensor extra": _sd("g_a.99.weight", torch.zeros(1)),
    "tensor name an int": lambda c: c["state_dict"].update({7: torch.zeros(1)}),
    "tensor a list": _sd("g_a.0.weight", [1, 2]),
    "tensor an int": _sd("g_a.0.weight", 3),
    "tensor None": _sd("h_a.0.bias", None),
    "tensor a string": _sd("log_gain", "x"),
    "tensor of ints": _sd("g_s.0.weight", lambda t: t.long()),
    "tensor of bools": _sd("h_s.layers.0.weight", lambda t: t > 0),
    "tensor complex": _sd("g_a.0.bias", lambda t: t.to(torch.complex64)),
    "tensor sparse": _sd("g_a.0.bias", lambda t: t.to_sparse()),
    "CDF table of floats": _sd(f"{GC}._quantized_cdf", lambda t: t.float()),
    "CDF lengths of int64": _sd(f"{EB}._cdf_length", lambda t: t.long()),
    **{f"shape of {k}": _sd(k, lambda t: torch.zeros(t.shape[0] + 1, *t.shape[1:]))
       for k in ("g_a.0.weight", "h_a.0.weight", "h_s.layers.0.weight", "g_s.6.weight", "log_gain", f"{EB}.quantiles",
                 f"{GC}.scale_table", "g_a.1.gamma")},
    "shape of a scalar": _sd("g_a.0.bias", torch.tensor(1.0)),
    # NaN and infinity in each module's tensors
    **{f"{v} in {k}": _poke(k, float(v)) for k in (
        "g_a.0.weight", "g_a.1.beta", "g_a.1.gamma", "h_a.0.weight", "h_s.layers.0.weight", "h_s.layers.2.bias", "g_s.0.weight",
        "g_s.6.bias", "log_gain", "log_inv_gain", f"{EB}.quantiles", f"{EB}.matrices.0", f"{EB}.biases.4",
        f"{EB}.factors.0", f"{GC}.scale_table") for v in ("nan", "inf", "-inf")},
    # values the coder cannot use, and the architecture's constants
    "gain huge": _poke("log_gain", 50.0, 3),
    "inverse gain huge": _poke("log_inv_gain", -50.0),
    "quantiles huge": _poke(f"{EB}.quantiles", 1e9, 2),
    "scale table changed": _poke(f"{GC}.scale_table", 5.0, 10),
    "GDN pedestal changed": _poke("g_s.1.beta_reparam.pedestal", 1.0),
    "likelihood bound zero": _poke(f"{EB}.likelihood_lower_bound.bound", 0.0),
    # the CDF tables
    **{f"{p} tables zeroed": _table(p, "_quantized_cdf", torch.zeros_like) for p in (EB, GC)},
    **{f"{p} tables reversed": _table(p, "_quantized_cdf", lambda t: t.flip(1)) for p in (EB, GC)},
    **{f"{p} table rows shuffled within": _table(p, "_quantized_cdf", lambda t: t[:, torch.randperm(t.shape[1])])
       for p in (EB, GC)},
    **{f"{p} tables empty (training weights)": lambda c, p=p: [c["state_dict"].update(
        {f"{p}.{n}": torch.zeros(0, dtype=torch.int32)}) for n in ("_quantized_cdf", "_cdf_length", "_offset")]
       for p in (EB, GC)},
    **{f"{p} only the CDFs empty": _table(p, "_quantized_cdf", lambda t: t[:0]) for p in (EB, GC)},
    **{f"{p} a row missing": lambda c, p=p: [c["state_dict"].update(
        {f"{p}.{n}": c["state_dict"][f"{p}.{n}"][:-1]}) for n in ("_quantized_cdf", "_cdf_length", "_offset")]
       for p in (EB, GC)},
    **{f"{p} one symbol of zero frequency": _table(p, "_quantized_cdf", lambda t: t.index_put_(
        (torch.tensor([0]), torch.tensor([2])), t[0, 1:2].clone())) for p in (EB, GC)},
    **{f"{p} a value beyond 65536": _table(p, "_quantized_cdf", lambda t: t.index_put_(
        (torch.tensor([1]), torch.tensor([1])), torch.tensor([2**31 - 1], dtype=torch.int32))) for p in (EB, GC)},
    **{f"{p} length {v}": _table(p, "_cdf_length", lambda t, v=v: t.fill_(v)) for p in (EB, GC)
       for v in (0, 1, 2, -5, 10**6)},
    **{f"{p} length one more than the table": _table(p, "_cdf_length", lambda t: t.fill_(0) + 10**4) for p in (EB, GC)},
    **{f"{p} length one less": _table(p, "_cdf_length", lambda t: t - 1) for p in (EB, GC)},
    **{f"{p} offset {v}": _table(p, "_offset", lambda t, v=v: t.fill_(v)) for p in (EB, GC) for v in (1, -10**6, 2**31 - 1)},
    f"{GC} offset off centre": _table(GC, "_offset", lambda t: t + 1),
    f"{EB} tables 2-D lengths": _table(EB, "_cdf_length", lambda t: t[:, None]),
    f"{EB} tables 3-D": _table(EB, "_quantized_cdf", lambda t: t[None]),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_mutation_is_refused_in_one_line_that_names_the_checkpoint(valid, tmp_path, name):
    torch.manual_seed(1)
    payload = copy.deepcopy(valid[1])
    MUTATIONS[name](payload)
    path = forge(payload, tmp_path / "bad.pt", rehash="weights" not in name)
    with pytest.raises(ModelError) as caught:
        zoo.load(path)  # what encode --model and decode through AECODEC_MODEL_PATH use
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message


def test_the_valid_checkpoint_loads_and_its_mutations_refused_by_load_checkpoint_name_it_too(valid, tmp_path):
    path, payload = valid
    model, mid, digest = zoo.load(path)
    assert mid == "tiny" and digest == payload["weights_hash"]
    bad = forge({**copy.deepcopy(payload), "arch": None}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=f"^{bad}: architecture None is not a name$"):
        load_checkpoint(bad)


def test_training_weights_load_for_training_but_not_for_coding(valid, tmp_path):
    payload = copy.deepcopy(valid[1])
    MUTATIONS[f"{EB} tables empty (training weights)"](payload)
    MUTATIONS[f"{GC} tables empty (training weights)"](payload)
    path = forge(payload, tmp_path / "train.pt")
    load_checkpoint(path)  # --resume, --init-from and export rebuild the tables
    with pytest.raises(CheckpointError, match="no CDF tables: these are training weights; export them"):
        zoo.load(path)


def test_a_tensor_changed_without_its_hash_is_a_hash_mismatch(valid, tmp_path):
    payload = copy.deepcopy(valid[1])
    MUTATIONS["nan in g_s.0.weight"](payload)
    path = forge(payload, tmp_path / "bad.pt", rehash=False)
    with pytest.raises(CheckpointError, match="holds NaN"):  # the values are checked before the hash
        zoo.load(path)
    payload = copy.deepcopy(valid[1])
    _poke("g_s.0.weight", 0.5)(payload)
    with pytest.raises(CheckpointError, match="weights hash mismatch"):
        zoo.load(forge(payload, tmp_path / "bad2.pt", rehash=False))


@pytest.mark.parametrize("cut", [0, 1, 64, 0.5, -100, -1])
def test_a_truncated_checkpoint_is_refused(valid, tmp_path, cut):
    data = valid[0].read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else cut % len(data) if cut < 0 else cut
    path = tmp_path / "cut.pt"
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match=f"^{path}: not a readable checkpoint"):
        zoo.load(path)


def test_a_folder_or_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "dir.pt").mkdir()
    (tmp_path / "text.pt").write_text("hello\n")
    buf = io.BytesIO()
    torch.save({"weights": torch.zeros(2)}, buf)
    (tmp_path / "other.pt").write_bytes(buf.getvalue())
    for name, why in (("dir.pt", "cannot read it"), ("text.pt", "not a readable checkpoint"),
                      ("other.pt", "not an aecodec checkpoint")):
        with pytest.raises(CheckpointError, match=f"^{tmp_path / name}: {why}"):
            load_checkpoint(tmp_path / name)


# ----------------------------------------------------------------------------- through the command line
SUBPROCESS_CASES = ("gaussian_conditional tables zeroed", "nan in g_s.0.weight", "missing arch", "tensor a list",
                    "shape of g_a.0.weight", "model_id = 7")


def _run(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "aecodec", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def _one_error_line(proc, path):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode in (1, 2), (proc.returncode, err)  # an exit, not a signal (SIGFPE: -8)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aecodec: error: ") and str(path) in lines[0], err
    assert "Traceback" not in err + out


def test_the_command_line_refuses_damaged_checkpoints_in_one_line_and_writes_nothing(valid, tmp_path, photo):
    """encode --model with each of a handful of mutations (the zeroed tables killed the process with
    SIGFPE inside CompressAI's coder), run side by side; and a decode whose model id resolves, through
    AECODEC_MODEL_PATH, to a damaged checkpoint blames the checkpoint, not the file."""
    from aecodec.codec import api

    runs = []
    for i, name in enumerate(SUBPROCESS_CASES):
        payload = copy.deepcopy(valid[1])
        MUTATIONS[name](payload)
        bad = forge(payload, tmp_path / f"bad{i}.pt")
        out = tmp_path / f"out{i}.aec"
        runs.append((_run(["encode", str(photo), "--model", str(bad), "-o", str(out)]), bad, out))
    aec = tmp_path / "tiny.aec"
    aec.write_bytes(api.encode(photo, model=valid[0]))
    models = tmp_path / "models"
    models.mkdir()
    payload = copy.deepcopy(valid[1])
    MUTATIONS["nan in g_s.0.weight"](payload)
    forge(payload, models / "tiny.pt")
    runs.append((_run(["decode", str(aec), "-o", str(tmp_path / "back.png")], {"AECODEC_MODEL_PATH": str(models)}),
                 models / "tiny.pt", tmp_path / "back.png"))
    for proc, bad, out in runs:
        _one_error_line(proc, bad)
        assert not out.exists()


def test_a_short_random_run_of_the_fuzz_harness_ends_without_a_crash_or_traceback(tmp_path):
    from tests.fuzz_checkpoints import run

    outcomes = run(120, seed=7, folder=tmp_path, log=None)
    assert sum(outcomes.values()) == 120
    assert sum(n for (_, o), n in outcomes.items() if o == "CheckpointError") > 60  # most mutations are refused
