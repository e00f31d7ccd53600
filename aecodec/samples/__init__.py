"""Sample images shipped inside the package, so the codec can be tried with nothing but an install.

    >>> import aecodec.samples
    >>> aecodec.samples.path()                  # .../aecodec/samples/coffee.png (600×400 RGB PNG)

Source, author and licence of each image: README.md beside this file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

NAMES = ("coffee.png",)


def path(name: str = "coffee.png") -> Path:
    """The file system path of the sample image ``name`` (one of :data:`NAMES`)."""
    if name not in NAMES:
        raise ValueError(f"no sample {name!r}; the samples are {', '.join(NAMES)}")
    return Path(str(resources.files(__name__).joinpath(name)))
