"""Benchmarks for aecodec.

The rate-distortion suite against classical codecs is `codecs` (a small `Codec` base class, one
subclass per format), `metrics` (PSNR, SSIM, MS-SSIM, BD-rate) and `rd` (the command line: parallel
runs, results.json, plots, BD-rate tables); run `python -m benchmarks.rd --help`.
"""
