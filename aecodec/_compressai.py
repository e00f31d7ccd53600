"""Import the parts of CompressAI that aecodec uses, quickly and without torchvision.

``import compressai`` runs a package ``__init__`` that imports every CompressAI submodule:
datasets, point-cloud transforms (torch_geometric, torch._dynamo), torchvision … — seconds,
more than a whole encode. aecodec needs only the entropy models,
the GDN layer and the rANS coder, none of which import torchvision. So when CompressAI is not
imported yet, we register its package without running its ``__init__`` (its ``__path__`` is set,
so ``import compressai.<anything>`` still works), add the two entropy-coder registry functions
its entropy models call, and import just those submodules.

Those entropy models ``import scipy.stats`` at the top for one call, ``norm.ppf`` when the CDF
tables are computed (``update``, at export — never on the coding path, where the tables come
with the weights). scipy.stats is slow to import, so when nothing imported
it yet, a stand-in takes its place that imports the real module on first use
(:func:`_import_on_first_use`).

If another module already imported CompressAI normally, that module is used as it is. The host
application never sees a partial package: the first attribute the package lacks (``compressai.zoo``,
``__version__``, …) runs CompressAI's own ``__init__`` in it, so from then on it is the full package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

import torch

__all__ = ["torch", "compressai"]

_NEEDED = ("compressai.entropy_models", "compressai.layers", "compressai.ans")


def _register_package_without_init() -> None:
    spec = importlib.util.find_spec("compressai")
    if spec is None:
        raise ImportError("compressai is not installed")
    pkg = importlib.util.module_from_spec(spec)
    # What compressai/__init__.py defines and entropy_models.py imports from it.
    pkg._entropy_coder = "ans"
    pkg.available_entropy_coders = lambda: ["ans"]
    pkg.get_entropy_coder = lambda: "ans"

    def complete(name: str):
        """PEP 562: anything else makes this the full package (its ``__init__`` runs once)."""
        if name.startswith("__") and name not in ("__version__", "__all__"):
            raise AttributeError(name)  # probes such as __wrapped__ or __file__-likes: not a reason to load
        del pkg.__getattr__
        spec.loader.exec_module(pkg)
        return getattr(pkg, name)

    pkg.__getattr__ = complete
    sys.modules["compressai"] = pkg


def _import_on_first_use(name: str) -> None:
    """Register a stand-in for module ``name`` whose first attribute access imports the real one.

    ``import name`` then costs nothing; ``name.attr`` imports the module (which replaces the
    stand-in in ``sys.modules`` and on its parent package) and answers from it, and so does the
    stand-in itself from then on for code that kept a reference to it. (The standard library's
    ``LazyLoader`` does not help here: the ``import`` statement reads ``__spec__``, which loads it.)
    """
    if name in sys.modules:
        return
    parent, _, child = name.rpartition(".")
    spec = importlib.util.find_spec(name)  # imports the parent package (cheap for scipy)
    if spec is None:
        return  # let the real import report it
    stand_in = ModuleType(name)
    stand_in.__spec__ = spec

    def load(attr: str):
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        real = importlib.import_module(name)
        return getattr(real, attr)

    stand_in.__getattr__ = load
    sys.modules[name] = stand_in
    if parent:
        setattr(sys.modules[parent], child, stand_in)


def compressai() -> ModuleType:
    """Return the ``compressai`` package with entropy_models, layers and ans imported."""
    if "compressai" not in sys.modules:
        _register_package_without_init()
    if "compressai.entropy_models" not in sys.modules:
        _import_on_first_use("scipy.stats")
    for name in _NEEDED:
        importlib.import_module(name)
    return sys.modules["compressai"]
