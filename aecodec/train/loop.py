"""The training loop, read top to bottom: :func:`train` sets up the processes and a :class:`~.chunk.Chunk`;
:func:`run_chunk` repeats ``batch → step → log → maybe evaluate → maybe save`` until the schedule
ends, the chunk's time is up or a signal arrives; :func:`finish` evaluates and saves once more."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import torch

from ..device import pick_device
from ..models.checkpoint import save_checkpoint
from .chunk import Chunk, set_up
from .distributed import barrier, check_ranks_agree, close_distributed, init_distributed, rank0_says
from .evaluate import evaluate
from .options import TrainOptions, check_options
from .step import optimise

__all__ = ["train", "run_chunk", "should_stop", "take_step", "draw_levels", "show_progress", "evaluate_now", "save", "finish"]


def train(o: TrainOptions, log=print) -> Path:
    """Train one chunk as :class:`TrainOptions` say; returns the checkpoint's path."""
    check_options(o)
    d, device = init_distributed(torch.device(pick_device(o.device)))
    try:
        return run_chunk(set_up(o, d, device, log if d.main else (lambda *_: None)))
    finally:
        close_distributed(d)


def run_chunk(chunk: Chunk) -> Path:
    o = chunk.o
    if chunk.eval_images and (chunk.fresh or o.resume):
        evaluate_now(chunk)  # the baseline this chunk starts from
    chunk.loop_start, chunk.loop_step = time.monotonic(), chunk.step
    with _stop_on_signals() as stopped:
        while chunk.step < o.steps and not should_stop(chunk, stopped["signal"]):
            r, aux = take_step(chunk)
            show_progress(chunk, r, aux)
            if chunk.eval_images and o.eval_every and chunk.step % o.eval_every == 0:
                evaluate_now(chunk)
            if chunk.d.main and time.monotonic() - chunk.last_save > 60 * o.save_every_minutes:
                save(chunk)
                chunk.last_save = time.monotonic()
    return finish(chunk, stopped["signal"])


# ----------------------------------------------------------------------------- one iteration
def should_stop(chunk: Chunk, signum: int | None) -> bool:
    """Time is up (--max-minutes, stop_at) or a signal came: rank 0 decides for every rank."""
    o = chunk.o
    late = o.max_minutes is not None and time.monotonic() - chunk.start > 60 * o.max_minutes
    return rank0_says(chunk.d, late or signum is not None or (o.stop_at is not None and time.time() >= o.stop_at))


def take_step(chunk: Chunk) -> tuple[dict, torch.Tensor]:
    """Draw a batch of crops and gain levels and take one optimiser step at this step's LR."""
    o = chunk.o
    for g in chunk.opt.param_groups:
        g["lr"] = chunk.lr(chunk.step)
    x = chunk.sampler.sample(o.batch_size).to(chunk.device, non_blocking=True)  # (B, 3, crop, crop)
    x = x.contiguous(memory_format=torch.channels_last if o.channels_last else torch.contiguous_format)
    level = draw_levels(chunk.model.config.num_levels, o.batch_size, o.level_bias, chunk.device)
    r, aux = optimise(chunk.model, chunk.opt, chunk.aux_opt, x, level, distortion=o.distortion, clip=o.clip,
                      forward=chunk.forward, world=chunk.d.world)
    chunk.step += 1
    return r, aux


def draw_levels(levels: int, batch: int, bias: float, device: torch.device) -> torch.Tensor:
    """Each crop's gain level: uniform (``bias`` 0, the same random stream as always), else drawn
    with probability ∝ ``1 + bias·i/(L−1)`` — bias 2 draws the highest level 3× as often as the lowest."""
    if not bias or levels < 2:
        return torch.randint(0, levels, (batch,), device=device)
    p = 1 + bias * torch.arange(levels, device=device, dtype=torch.float32) / (levels - 1)
    return torch.multinomial(p, batch, replacement=True)


def show_progress(chunk: Chunk, r: dict, aux: torch.Tensor) -> None:
    """Update the running means, the bar and (every --log-every steps) write a ``step`` line."""
    # Running means stay on the device (float64, the same arithmetic as Python floats): no GPU
    # sync except when a line or the bar shows them.
    vals = torch.stack([r["loss"].detach(), r["bpp"], r["psnr"]]).double()
    chunk.ema = vals if chunk.ema is None else 0.98 * chunk.ema + 0.02 * vals
    step, o = chunk.step, chunk.o
    if chunk.bar is not None:
        chunk.bar.update(1)
        if step % 10 == 0:
            e = chunk.ema.tolist()
            chunk.bar.set_postfix_str(f"loss {e[0]:.3f} bpp {e[1]:.3f} psnr {e[2]:.2f}", refresh=False)
    if step % o.log_every == 0:
        e = chunk.ema.tolist()
        rate = (step - chunk.chunk_start_step) / (time.monotonic() - chunk.start)
        chunk.log_line(f"step {step} loss {e[0]:.3f} bpp {e[1]:.3f} psnr {e[2]:.2f} "
                       f"lr {chunk.lr(step):.2e} aux {aux.item():.1f} {rate:.2f} it/s "
                       f"{rate * o.batch_size * chunk.d.world:.1f} crops/s")


def evaluate_now(chunk: Chunk) -> None:
    """Code the evaluation images at the eval qualities; log each result and keep it in the record."""
    t, o = time.monotonic(), chunk.o
    res = evaluate(chunk.model, chunk.eval_images, o.eval_qualities, model_id=o.model_id, device=chunk.device)
    for r in res:
        chunk.log_line(f"eval step {chunk.step}: level {r['level']:.2f} (q {r['quality']:g}) bpp {r['bpp']:.4f} "
                       f"psnr {r['psnr']:.2f} ({len(chunk.eval_images)} images, {time.monotonic() - t:.1f} s)")
    chunk.record["eval"] = {"step": chunk.step, "dir": str(o.eval_dir), "images": len(chunk.eval_images), "results": res}


def save(chunk: Chunk) -> None:
    """Write the resumable checkpoint: weights, optimisers, step, RNG state and the training record
    with this chunk appended."""
    o, d, device, step = chunk.o, chunk.d, chunk.device, chunk.step
    elapsed = (time.monotonic() - chunk.start) / 60
    loop_s = time.monotonic() - chunk.loop_start
    entry = {"from_step": chunk.chunk_start_step, "to_step": step, "minutes": round(elapsed, 2),
             "crops_per_s": round((step - chunk.loop_step) * o.batch_size * d.world / max(loop_s, 1e-9), 1),
             "device": str(device),
             "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
             "processes": d.world, "batch_size": o.batch_size, "crop": o.crop, "lr": o.lr,
             "distortion": o.distortion, "amp": o.amp, "data": [str(p) for p in o.data]}
    if o.level_bias:
        entry["level_bias"] = o.level_bias
    if o.aux_transform:
        entry["aux_transform"] = True
    if chunk.fresh:
        entry["init_from"] = str(o.init_from)
    record = dict(chunk.record)
    record["chunks"] = chunk.record["chunks"] + [entry]
    record["steps"] = step
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state()
    save_checkpoint(o.out, chunk.model, model_id=o.model_id, training=record,
                    optimizer=chunk.opt.state_dict(), aux_optimizer=chunk.aux_opt.state_dict(), step=step, rng=rng)


# ----------------------------------------------------------------------------- the end of a chunk
def finish(chunk: Chunk, signum: int | None) -> Path:
    """Close the bar; evaluate the final weights (unless stopped by a signal or just evaluated);
    check that the ranks agree; save."""
    if chunk.bar is not None:
        chunk.bar.close()
        chunk.bar = None
    if signum is not None:
        chunk.log(f"stopped by signal {signum} at step {chunk.step}")
    elif chunk.eval_images and chunk.record.get("eval", {}).get("step") != chunk.step:
        evaluate_now(chunk)
    if chunk.d.world > 1:
        check_ranks_agree(chunk.model, chunk.d, chunk.log)
    if chunk.d.main:
        save(chunk)
        chunk.log(f"saved {chunk.o.out} at step {chunk.step}")
    barrier(chunk.d)
    return chunk.o.out


@contextlib.contextmanager
def _stop_on_signals():
    """SIGINT (Ctrl-C) and SIGTERM end the chunk after the current step, which is then saved
    (yields ``{"signal": None | number}``). Only the main thread can take signals; elsewhere this
    changes nothing."""
    stopped = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def on_signal(signum, _frame):
        stopped["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
