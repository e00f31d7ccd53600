"""Encoder-side search (``--effort``): refine each tile's latents against the fixed decoder.

``ŷ = round(g_a(x)·gain)`` and ``z = h_a(y)`` are one amortised guess each. Efforts above 1 treat
the tile's latent y and hyper-latent z as free variables and minimise the coder's own objective
``R + λ·D`` through the fixed decoder — h_s, the entropy models and g_s — with Adam (iterative
inference: Yang, Bamler, Mandt, "Improving Inference for Neural Image Compression", NeurIPS
2020), in two stages: first z alone for the rates (y as analysed; cheap, no synthesis — h_a's
guess is easily bettered), then y and z together with rounding relaxed by stochastic Gumbel
annealing (SGA): each value a soft, randomly perturbed mix of its floor and ceiling that hardens
as the temperature falls, so the optimiser sees the discretisation it will meet. The result is
quantised and coded by the normal coder: an ordinary ``.aec`` file that every decoder reads.

λ is the trained λ of the quality's gain level, interpolated log-linearly between levels as the
gains are. D is the MSE of the pixels the decoder will output — real pixels only (not the
stride padding), luma for gray images. A tile is refined in its context: the pixels within
:data:`~aecodec.codec.geometry.MARGIN` around it are synthesised from the latents around them
(tiles already refined, the others' analysis), so tiles meet without seams.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np

from ..errors import CodecError
from .geometry import MARGIN, pad_to_stride, tile_rects
from .pipeline import to_input
from .protocol import CodingModel, SearchModel

__all__ = ["EFFORTS", "DEFAULT_EFFORT", "ITERATIONS", "Z_ITERATIONS", "check_effort", "rd_lambda", "refine_tiles"]

EFFORTS = range(1, 10)
DEFAULT_EFFORT = 1
# Per tile at each effort (1: the plain encoder): Adam iterations on the hyper-latent z alone (the
# rates only, no synthesis: cheap), then on y and z together through g_s (each a forward and
# backward pass of g_s: the cost of the search). The ladder is set so that effort 9 stays within
# about a minute for a Kodak image on 2 CPU cores (benchmarks/results/effort-ladder: the cost and
# the gain of every level).
Z_ITERATIONS = {1: 0, 2: 30, 3: 30, 4: 30, 5: 30, 6: 30, 7: 30, 8: 30, 9: 30}
ITERATIONS = {1: 0, 2: 0, 3: 3, 4: 6, 5: 10, 6: 15, 7: 22, 8: 32, 9: 44}
Z_LEARNING_RATE = 0.05  # Adam on z alone (units of the quantisation step)
LEARNING_RATE = 0.02  # Adam on y and z, decayed linearly …
LR_DECAY = 0.9  # … by this fraction over the iterations
BETA1 = 0.5  # Adam's momentum: short memory, the SGA samples change as τ falls
TAU_START = 0.5  # SGA temperature, annealed linearly to TAU_END over the iterations
TAU_END = 0.01
LUMA = (0.299, 0.587, 0.114)  # Pillow's RGB → L, what the decoder applies to gray layouts


def check_effort(effort) -> int:
    """The effort as an int 1…9, or :class:`CodecError`; above 1 the search runs on the torch model,
    so without the ``[train]`` extra that is one line naming it (:func:`~aecodec.models.runtime.require_torch`)."""
    if isinstance(effort, bool) or not isinstance(effort, (int, np.integer)) or effort not in EFFORTS:
        raise CodecError(f"effort must be an integer from 1 to 9, got {effort!r}")
    if effort > 1:
        from ..models.runtime import require_torch

        require_torch(f"effort {effort} (the encoder search, which differentiates through the model)")
    return int(effort)


def rd_lambda(lambdas: tuple[float, ...], level: float) -> float:
    """λ at a continuous gain level: the trained λs interpolated log-linearly, as the gains are."""
    if len(lambdas) == 1:
        return float(lambdas[0])
    lo = min(int(math.floor(level)), len(lambdas) - 2)
    t = level - lo
    return math.exp((1 - t) * math.log(lambdas[lo]) + t * math.log(lambdas[lo + 1]))


def _sga(v, tau: float, gen):
    """Stochastic Gumbel annealing of ``v`` to its floor or ceiling (Yang et al. 2020, eq. 6):
    a Gumbel-softmax sample between the two, each weighted by −atanh(distance)/τ."""
    import torch

    f = torch.floor(v)
    d = v - f
    logits = torch.stack([-torch.atanh(d.clamp(0, 1 - 1e-5)), -torch.atanh((1 - d).clamp(0, 1 - 1e-5))], -1) / tau
    gumbel = -torch.log(torch.empty_like(logits).exponential_(generator=gen).clamp_min(1e-20))
    return f + torch.softmax((logits + gumbel) / tau, -1)[..., 1]


def _noise(v, gen):
    import torch

    return v + torch.rand(v.shape, generator=gen, device=v.device, dtype=v.dtype) - 0.5


class _Tile:
    """One tile's problem: its pixels in context, what is fixed around its latent, and the loss."""

    def __init__(self, net: SearchModel, synthesis, x, valid, context, rect: tuple, crop: tuple, tile_pixels: float,
                 level: float, gray: bool):
        import torch

        self.net, self.synthesis, self.x, self.valid, self.gray = net, synthesis, x, valid, gray
        # the window's latents (fixed), the tile's latents in it, the scored pixels in its synthesis
        self.context, self.rect, self.crop = context, rect, crop
        self.inv_gain = net.gains(torch.tensor([level], device=x.device))[1].detach()
        self.lam = rd_lambda(net.config.lambdas, level)
        self.pixels = max(1.0, tile_pixels)
        self.medians = net.z_medians()  # z's quantisation offsets

    def rate_loss(self, y, z, gen):
        """The z stage's objective: the rates (per pixel of the tile) of ``y`` as it is and ``z``,
        both with uniform noise for rounding — y's rate depends on z through h_s; no synthesis."""
        z_bits, scales, means = self.net.hyper_rate(_noise(z, gen))
        return (self.net.y_bits(_noise(y, gen), scales, means) + z_bits) / self.pixels

    def loss(self, y, z, tau: float, gen):
        """``R + λ·D`` (per pixel of the tile) of one SGA sample of ``(y, z)`` at temperature τ."""
        z_t = _sga(z - self.medians, tau, gen) + self.medians
        z_bits, scales, means = self.net.hyper_rate(z_t)
        y_t = _sga(y - means, tau, gen) + means
        return (self.net.y_bits(y_t, scales, means) + z_bits + self.lam * 255**2 * self._sse(y_t)) / self.pixels

    def _sse(self, y_synth):
        """Squared error of the window's scored pixels, channels averaged (D·pixels)."""
        window = self.context.clone()
        a, b, c, d = self.rect
        window[..., a:b, c:d] = y_synth
        a, b, c, d = self.crop
        x_hat = self.synthesis(window * self.inv_gain)[..., a:b, c:d]
        if self.gray:
            x_hat = sum(w * x_hat[:, i] for i, w in enumerate(LUMA))[:, None]
        return ((x_hat - self.x).square() * self.valid).sum() / x_hat.shape[1]  # per pixel, as the MSE is

    def quantise(self, y, z):
        """``(cost, ŷ)``: the coded latents ẑ = round(z) and ŷ = μ_exact(ẑ) + round(y − μ(ẑ)) — the
        values the decoder will reconstruct (``compress_latents`` codes ``round(ŷ − μ_exact)``) — and
        their ``R + λ·D`` by the model's likelihoods: what a refinement must beat to be used."""
        import torch

        with torch.no_grad():
            z_hat = torch.round(z - self.medians) + self.medians
            z_bits, scales, means = self.net.hyper_rate(z_hat)
            y_hat = self.net.entropy_parameters(z_hat)[1] + torch.round(y - means)
            cost = self.net.y_bits(y_hat, scales, means) + z_bits + self.lam * 255**2 * self._sse(y_hat)
            return float(cost), y_hat


def refine_tiles(net: CodingModel, rgb: np.ndarray, latents: list, level: float, tile: int, effort: int, *, gray: bool = False,
                 seed: int = 0, on_iteration: Callable[[], None] | None = None) -> Iterator[tuple]:
    """``(y, z)`` of each tile, raster order, refined at ``effort`` for :meth:`compress_latents`.

    ``latents`` are the tiles' analyses before the gain (:func:`~aecodec.codec.pipeline.analyze_tiles`);
    ``rgb`` the image's pixels (unpadded). ``on_iteration()`` is called after each Adam step.
    Seeded: the same input gives the same result on the same machine.
    """
    import torch

    net = net.torch_model()  # the search needs gradients: it runs on the torch model
    dev = net.device
    latents = [torch.from_numpy(y).to(dev) for y in latents]
    s, ls = net.config.stride, net.config.stride // 4
    h, w = rgb.shape[:2]
    src = pad_to_stride(rgb, s)
    hp, wp = src.shape[:2]
    synthesis = net.search_synthesis()
    with torch.no_grad():
        gain, _ = net.gains(torch.tensor([level], device=dev))
        y_all = torch.empty(1, net.config.M, hp // ls, wp // ls, device=dev)  # refined ŷ, or g_a·gain ahead
        for ((y0, y1, x0, x1), _), y in zip(tile_rects(hp, wp, tile), latents):
            y_all[..., y0 // ls:y1 // ls, x0 // ls:x1 // ls] = y * gain
    for i, ((y0, y1, x0, x1), (py0, py1, px0, px1)) in enumerate(tile_rects(hp, wp, tile)):
        # the window: the tile's pixels and MARGIN around them, from the latents MARGIN further out
        wy0, wy1, wx0, wx1 = max(0, py0 - MARGIN), min(hp, py1 + MARGIN), max(0, px0 - MARGIN), min(wp, px1 + MARGIN)
        x = torch.from_numpy(to_input(src[py0:py1, px0:px1])).to(dev)
        if gray:
            x = x[:, :1]
        yy, xx = np.arange(py0, py1)[:, None], np.arange(px0, px1)[None, :]
        valid = torch.from_numpy(((yy < h) & (xx < w)).astype(np.float32)).to(dev)[None, None]
        with torch.no_grad():
            problem = _Tile(net, synthesis, x, valid, y_all[..., wy0 // ls:wy1 // ls, wx0 // ls:wx1 // ls].clone(),
                            ((y0 - wy0) // ls, (y1 - wy0) // ls, (x0 - wx0) // ls, (x1 - wx0) // ls),
                            (py0 - wy0, py1 - wy0, px0 - wx0, px1 - wx0),
                            float(max(0, min(y1, h) - y0) * max(0, min(x1, w) - x0)), level, gray)
            y_plain = y_all[..., y0 // ls:y1 // ls, x0 // ls:x1 // ls].clone()
            z_plain = net.hyper_analysis(y_plain)
            y, z = y_plain.clone(), z_plain.clone()
        gen = torch.Generator(device=dev).manual_seed(seed + i)
        # gradients for y and z only: the model's parameters are shared and stay untouched
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=Z_LEARNING_RATE)
        for _ in range(Z_ITERATIONS[effort]):
            z.grad, = torch.autograd.grad(problem.rate_loss(y_plain, z, gen), [z])
            opt.step()
            if on_iteration is not None:
                on_iteration()
        y.requires_grad_(True)
        opt = torch.optim.Adam([y, z], lr=LEARNING_RATE, betas=(BETA1, 0.999))
        iterations = ITERATIONS[effort]
        for it in range(iterations):
            frac = it / max(1, iterations - 1)
            for group in opt.param_groups:
                group["lr"] = LEARNING_RATE * (1 - LR_DECAY * frac)
            y.grad, z.grad = torch.autograd.grad(problem.loss(y, z, TAU_START + (TAU_END - TAU_START) * frac, gen),
                                                 [y, z])
            opt.step()
            if on_iteration is not None:
                on_iteration()
        cost, y_hat = problem.quantise(y.detach(), z.detach())
        plain_cost, plain_y_hat = problem.quantise(y_plain, z_plain)
        if cost < plain_cost:
            y_all[..., y0 // ls:y1 // ls, x0 // ls:x1 // ls] = y_hat
            yield y_hat.cpu().numpy(), z.detach().cpu().numpy()
        else:  # the search did not pay off here: the plain encoder's latents, byte for byte
            y_all[..., y0 // ls:y1 // ls, x0 // ls:x1 // ls] = plain_y_hat
            yield y_plain.cpu().numpy(), None
