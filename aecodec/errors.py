"""Every error aecodec raises on purpose, in one tree (standard library only: the command line
catches the base class before it knows whether a command will import torch)::

    AecodecError                    anything aecodec refuses; the message is one line
    ├── CodecError                  bad input to the codec: an unreadable image, a bad option
    │   └── BatchError              a batch job that cannot run (no Ray, a pool too large, …)
    │       └── JobFailed           a batch job whose cluster failed partway (exit 1, not 2)
    ├── FormatError                 bytes that are not a valid .aec file (format.py says why)
    ├── ModelError                  weights that cannot be used
    │   ├── CheckpointError         a checkpoint file: wrong format, corrupt, hash mismatch
    │   └── ModelNotFound           no installed weights have the id (and hash) a file names
    └── TrainError                  options or data that training cannot use

Each class also derives from the built-in exception callers would reach for (``ValueError``, and
``LookupError`` for :class:`ModelNotFound`), so code written against those keeps working.
"""

from __future__ import annotations

__all__ = ["AecodecError", "CodecError", "BatchError", "JobFailed", "FormatError", "ModelError", "CheckpointError",
           "ModelNotFound", "TrainError", "brief", "one_line"]


class AecodecError(Exception):
    """The base of every error aecodec raises on purpose; its message is one line."""


class CodecError(AecodecError, ValueError):
    """Bad input to the codec (unreadable image, bad option)."""


class BatchError(CodecError):
    """A batch job that cannot run (no Ray, not enough CPUs or GPUs for the pool asked for, …)."""


class JobFailed(BatchError):
    """A batch job that started and then could not go on: its cluster failed (a node or worker died,
    an object was lost, the connection to the cluster went). The message says what failed and where
    and where the manifest of the images that finished is; the command exits 1, not the 2 of a job
    that cannot start."""


class FormatError(AecodecError, ValueError):
    """The bytes are not a valid .aec file; the message says why."""


class ModelError(AecodecError):
    """Weights that cannot be found or used."""


class CheckpointError(ModelError, ValueError):
    """A checkpoint file that cannot be used (wrong format, corrupt, hash mismatch)."""


class ModelNotFound(ModelError, LookupError):
    """No installed checkpoint has the id (and hash) that a file asks for."""


class TrainError(AecodecError, ValueError):
    """Options or data that training cannot use."""


def brief(value) -> str:
    """A value as a message shows it: its repr, cut to 40 characters (a hostile file's field may
    hold anything, of any length)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__
