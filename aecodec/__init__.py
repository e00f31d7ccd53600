"""aecodec — a learned image codec."""
__version__ = "0.1.0"
