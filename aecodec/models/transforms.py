"""The transforms g_a, h_a and g_s run by onnxruntime, from a runtime bundle's ONNX graphs
(:mod:`aecodec.models.bundle`, written by :mod:`aecodec.models.onnx_export`): no PyTorch.

A session is made for a graph the first time it is used (a decoder needs g_s only, and a session
costs tens of milliseconds to make), and onnxruntime is imported then too, so importing this
module is cheap. A graph that onnxruntime refuses or that fails to run, or an output of the wrong
shape, is a :class:`~aecodec.errors.CheckpointError` naming the bundle.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import CheckpointError, one_line

__all__ = ["OnnxTransforms", "CPU", "CUDA"]

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
# graph → how its output's height and width follow from its input's (×16 up, or ÷ down)
_SCALE = {"g_a": (1, 16), "h_a": (1, 4), "g_s": (16, 1)}


class OnnxTransforms:
    """g_a, h_a and g_s of a model as onnxruntime sessions: numpy float32 in and out, NCHW,
    batch 1 (the interface of :class:`~aecodec.models.runtime.TorchTransforms`).

    ``graphs``: the ONNX bytes of ``"g_a"``, ``"h_a"`` and ``"g_s"``; ``source``: the file they
    came from, which messages name; ``threads``: onnxruntime's intra-op threads (None: its default,
    one per physical core); ``providers``: execution providers in order of preference — those this
    onnxruntime lacks are skipped, and the CPU's always comes last (default: the CPU's alone)."""

    def __init__(self, graphs: dict[str, bytes], *, source: str, threads: int | None = None, providers=None):
        self.graphs, self.source, self.threads = dict(graphs), source, threads
        self.providers = list(providers or [CPU])
        self._sessions: dict = {}
        self._lock = threading.Lock()

    def analysis(self, x: np.ndarray) -> np.ndarray:
        """y before the gain, ``(1, M, H/16, W/16)``, of an image ``(1, 3, H, W)`` in [0, 1]."""
        return self._run("g_a", x)

    def hyper_analysis(self, y: np.ndarray) -> np.ndarray:
        """z ``(1, N, h/4, w/4)`` of a gained latent ``(1, M, h, w)``."""
        return self._run("h_a", y)

    def synthesis(self, y: np.ndarray) -> np.ndarray:
        """x̂ ``(1, 3, 16h, 16w)``, unclamped, of a latent after the inverse gain ``(1, M, h, w)``."""
        return self._run("g_s", y)

    def session(self, name: str):
        """The onnxruntime session of graph ``name``, made on first use."""
        with self._lock:
            if name not in self._sessions:
                self._sessions[name] = self._make_session(name)
            return self._sessions[name]

    def _make_session(self, name: str):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: its warnings are not the user's business
        if self.threads is not None:
            opts.intra_op_num_threads = self.threads
        # Idle pool threads sleep instead of spinning: between transforms this process codes entropy in
        # numpy, which spinning threads would slow down. Measured on 2 cores: as fast alone, faster when
        # other processes share the cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No memory pattern: with one, the second run of a graph (a second piece, file or image) allocates the
        # planned block while the arena still holds the first run's buffers, and a process decoding Kodak
        # images grows from 360 to 530 MB (encoding: 330 to 480 MB); without, it stays at the first run's
        # peak, a few percent slower (g_s, 2 cores: 178 against 168 ms; g_a the same). The arena stays: without
        # it each run maps its buffers afresh, 25 % slower for no lower peak.
        opts.enable_mem_pattern = False
        available = ort.get_available_providers()
        providers = [p for p in self.providers if p in available and p != CPU] + [CPU]
        try:
            return ort.InferenceSession(self.graphs[name], opts, providers=providers)
        except Exception as exc:  # onnxruntime's errors (invalid protobuf, graph, model) share no base class
            raise CheckpointError(f"{self.source}: onnxruntime cannot load graph {name}: {one_line(exc)}") from None

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        sess = self.session(name)
        x = np.ascontiguousarray(x, np.float32)
        try:
            out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        except Exception as exc:  # a graph that loads but cannot run on a well-formed input
            raise CheckpointError(f"{self.source}: graph {name} failed: {one_line(exc)}") from None
        up, down = _SCALE[name]
        h, w = x.shape[2] * up // down, x.shape[3] * up // down
        if (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.ndim != 4
                or out.shape[0] != 1 or out.shape[2:] != (h, w) or (name == "g_s" and out.shape[1] != 3)):
            raise CheckpointError(f"{self.source}: graph {name} gave {getattr(out, 'shape', type(out).__name__)}, "
                                  f"not (1, {3 if name == 'g_s' else 'C'}, {h}, {w}) float32")
        return out
