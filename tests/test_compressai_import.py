"""aecodec._compressai: scipy.stats deferred until used; a host that imports compressai later gets all of it."""

from __future__ import annotations

import subprocess
import sys


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


def test_the_host_application_gets_the_whole_compressai_package():
    """aecodec imports only CompressAI's entropy coders (fast start-up); a host that imports
    compressai afterwards must get the full package, not a stub. (torchvision's CPU/CUDA op
    mismatch of this environment is worked around as ../shared/ENVIRONMENT.md measured.)"""
    code = """
import numpy as np, torch, aecodec
aecodec.decode(aecodec.encode(np.zeros((8, 8, 3), np.uint8)))
try:
    import torchvision  # noqa: F401
except RuntimeError:  # CUDA torchvision beside CPU torch: register the missing op schemas
    lib = torch.library.Library("torchvision", "FRAGMENT")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
import compressai
from compressai.zoo import image_models
print(compressai.__version__, len(image_models) > 0)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "True"
