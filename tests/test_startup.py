"""Start-up: each command imports what it needs and nothing else (the CLI answers in about the
time of ``import torch`` plus the coding itself; benchmarks/speed.py measures it)."""

from __future__ import annotations

import json
import subprocess
import sys

import aecodec.samples

# pydantic: typer 0.29+ imports it to parse every command's options (pyproject pins typer below 0.29).
# PIL.TiffImagePlugin: one of the plugins Image.init() imports all of (45 ms), needed for PNG in or out.
HEAVY = ("torch", "scipy.stats._stats_py", "matplotlib", "torchvision", "aecodec.train", "benchmarks", "pydantic",
         "aecodec.batch", "PIL.TiffImagePlugin")


def _modules_after(*cli_args: str) -> dict:
    """Run the CLI in a fresh interpreter; which of HEAVY it imported, and its exit code."""
    code = ("import json, sys\n"
            "from aecodec.cli import main\n"
            f"rc = main({list(cli_args)!r})\n"
            f"print(json.dumps({{'rc': rc, **{{m: m in sys.modules for m in {HEAVY!r}}}}}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_encode_and_decode_import_torch_but_not_scipy_stats_plotting_training_torchvision_pydantic_or_ray_batches(
        tmp_path):
    aec, png = str(tmp_path / "s.aec"), str(tmp_path / "s.png")
    enc = _modules_after("encode", str(aecodec.samples.path()), "-o", aec, "-q", "50", "--quiet")
    dec = _modules_after("decode", aec, "-o", png, "--quiet")
    for seen in (enc, dec):
        assert seen.pop("rc") == 0
        assert seen == {"torch": True, **{m: False for m in HEAVY[1:]}}, seen


def test_info_and_version_do_not_import_torch(tmp_path):
    aec = tmp_path / "s.aec"
    aec.write_bytes(aecodec.encode(aecodec.samples.path(), 10))
    for args in (("info", str(aec)), ("info", "--json", str(aec)), ("--version",)):
        seen = _modules_after(*args)
        assert seen.pop("rc") == 0 and not any(seen.values()), (args, seen)


def test_scipy_stats_stand_in_is_the_real_module_on_first_use():
    """CompressAI's entropy models import scipy.stats at the top for norm.ppf at export; aecodec
    defers it (aecodec/_compressai.py). Used — also through a reference taken before — it is the real one."""
    code = ("import sys\n"
            "import aecodec._compressai as t\n"
            "t.compressai()\n"
            "assert 'scipy.stats._stats_py' not in sys.modules\n"
            "import scipy.stats as early\n"
            "from compressai.entropy_models import GaussianConditional\n"
            "q = GaussianConditional._standardized_quantile(0.025)\n"
            "import scipy.stats\n"
            "assert 'scipy.stats._stats_py' in sys.modules and hasattr(scipy.stats, 'ttest_ind')\n"
            "print(round(q, 6), round(early.norm.ppf(0.975), 6))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["-1.959964", "1.959964"]


def test_a_layer_built_without_init_is_an_ordinary_layer_that_spent_no_random_numbers():
    import torch
    import torch.nn as nn

    from aecodec.models.layers import make_layer

    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    conv = make_layer(nn.ConvTranspose2d, 8, 4, 5, stride=2, padding=2, output_padding=1, init=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # no random initialisation ran
    assert type(conv) is nn.ConvTranspose2d and "reset_parameters" not in vars(conv)
    assert conv.weight.shape == (8, 4, 5, 5) and conv.output_padding == (1, 1)
    conv.reset_parameters()  # the class's method again
    assert not torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(0)
    assert torch.equal(conv.weight, make_layer(nn.ConvTranspose2d, 8, 4, 5, stride=2, padding=2, output_padding=1).weight)


def test_a_loaded_checkpoint_has_every_weight_of_the_file_and_initialised_no_convolution(tmp_path, monkeypatch):
    import torch
    import torch.nn as nn

    from aecodec.models.checkpoint import load_checkpoint, save_checkpoint
    from aecodec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior

    model = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12))
    model.update()
    save_checkpoint(tmp_path / "m.pt", model, model_id="tiny")

    def initialised(self):
        raise AssertionError(f"{type(self).__name__} initialised while loading")

    for cls in (nn.Conv2d, nn.ConvTranspose2d):
        monkeypatch.setattr(cls, "reset_parameters", initialised)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
