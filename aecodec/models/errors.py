"""The models' errors, importable without torch (the command line's error handling needs them
before it knows whether a command will load a model)."""

from __future__ import annotations

__all__ = ["CheckpointError", "ModelNotFound"]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (wrong format, corrupt, hash mismatch)."""


class ModelNotFound(LookupError):
    """No installed checkpoint has the id (and hash) that a file asks for."""
