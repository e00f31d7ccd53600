"""The training loop, read top to bottom: :func:`train` sets up the processes and a :class:`~.run.Run`;
:func:`run_chunk` repeats ``batch → step → log → maybe evaluate → maybe save`` until the schedule
ends, the chunk's time is up or a signal arrives; :func:`finish` evaluates and saves once more."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path

import torch

from ..models.checkpoint import save_checkpoint
from .distributed import barrier, check_ranks_agree, close_distributed, init_distributed, pick_device, rank0_says
from .evaluate import evaluate
from .options import TrainOptions, check_options
from .run import Run, set_up
from .step import optimise

__all__ = ["train", "run_chunk", "should_stop", "take_step", "draw_levels", "show_progress", "evaluate_now", "save", "finish"]


def train(o: TrainOptions, log=print) -> Path:
    """Train one chunk as :class:`TrainOptions` say; returns the checkpoint's path."""
    check_options(o)
    d, device = init_distributed(pick_device(o.device))
    try:
        return run_chunk(set_up(o, d, device, log if d.main else (lambda *_: None)))
    finally:
        close_distributed(d)


def run_chunk(run: Run) -> Path:
    o = run.o
    if run.eval_images and (run.fresh or o.resume):
        evaluate_now(run)  # the baseline this chunk starts from
    run.loop_start, run.loop_step = time.monotonic(), run.step
    with _stop_on_signals() as stopped:
        while run.step < o.steps and not should_stop(run, stopped["signal"]):
            r, aux = take_step(run)
            show_progress(run, r, aux)
            if run.eval_images and o.eval_every and run.step % o.eval_every == 0:
                evaluate_now(run)
            if run.d.main and time.monotonic() - run.last_save > 60 * o.save_every_minutes:
                save(run)
                run.last_save = time.monotonic()
    return finish(run, stopped["signal"])


# ----------------------------------------------------------------------------- one iteration
def should_stop(run: Run, signum: int | None) -> bool:
    """Time is up (--max-minutes, stop_at) or a signal came: rank 0 decides for every rank."""
    o = run.o
    late = o.max_minutes is not None and time.monotonic() - run.start > 60 * o.max_minutes
    return rank0_says(run.d, late or signum is not None or (o.stop_at is not None and time.time() >= o.stop_at))


def take_step(run: Run) -> tuple[dict, torch.Tensor]:
    """Draw a batch of crops and gain levels and take one optimiser step at this step's LR."""
    o = run.o
    for g in run.opt.param_groups:
        g["lr"] = run.lr(run.step)
    x = run.sampler.sample(o.batch_size).to(run.device, non_blocking=True)  # (B, 3, crop, crop)
    x = x.contiguous(memory_format=torch.channels_last if o.channels_last else torch.contiguous_format)
    level = draw_levels(run.model.config.num_levels, o.batch_size, o.level_bias, run.device)
    r, aux = optimise(run.model, run.opt, run.aux_opt, x, level, distortion=o.distortion, clip=o.clip,
                      forward=run.forward, world=run.d.world)
    run.step += 1
    return r, aux


def draw_levels(levels: int, batch: int, bias: float, device: torch.device) -> torch.Tensor:
    """Each crop's gain level: uniform (``bias`` 0, the same random stream as always), else drawn
    with probability ∝ ``1 + bias·i/(L−1)`` — bias 2 draws the highest level 3× as often as the lowest."""
    if not bias or levels < 2:
        return torch.randint(0, levels, (batch,), device=device)
    p = 1 + bias * torch.arange(levels, device=device, dtype=torch.float32) / (levels - 1)
    return torch.multinomial(p, batch, replacement=True)


def show_progress(run: Run, r: dict, aux: torch.Tensor) -> None:
    """Update the running means, the bar and (every --log-every steps) write a ``step`` line."""
    # Running means stay on the device (float64, the same arithmetic as Python floats): no GPU
    # sync except when a line or the bar shows them.
    vals = torch.stack([r["loss"].detach(), r["bpp"], r["psnr"]]).double()
    run.ema = vals if run.ema is None else 0.98 * run.ema + 0.02 * vals
    step, o = run.step, run.o
    if run.bar is not None:
        run.bar.update(1)
        if step % 10 == 0:
            e = run.ema.tolist()
            run.bar.set_postfix_str(f"loss {e[0]:.3f} bpp {e[1]:.3f} psnr {e[2]:.2f}", refresh=False)
    if step % o.log_every == 0:
        e = run.ema.tolist()
        rate = (step - run.chunk_start_step) / (time.monotonic() - run.start)
        run.log_line(f"step {step} loss {e[0]:.3f} bpp {e[1]:.3f} psnr {e[2]:.2f} "
                     f"lr {run.lr(step):.2e} aux {aux.item():.1f} {rate:.2f} it/s "
                     f"{rate * o.batch_size * run.d.world:.1f} crops/s")


def evaluate_now(run: Run) -> None:
    """Code the evaluation images at the eval qualities; log each result and keep it in the record."""
    t, o = time.monotonic(), run.o
    res = evaluate(run.model, run.eval_images, o.eval_qualities, model_id=o.model_id, device=run.device)
    for r in res:
        run.log_line(f"eval step {run.step}: level {r['level']:.2f} (q {r['quality']:g}) bpp {r['bpp']:.4f} "
                     f"psnr {r['psnr']:.2f} ({len(run.eval_images)} images, {time.monotonic() - t:.1f} s)")
    run.record["eval"] = {"step": run.step, "dir": str(o.eval_dir), "images": len(run.eval_images), "results": res}


def save(run: Run) -> None:
    """Write the resumable checkpoint: weights, optimisers, step, RNG state and the training record
    with this chunk appended."""
    o, d, device, step = run.o, run.d, run.device, run.step
    elapsed = (time.monotonic() - run.start) / 60
    loop_s = time.monotonic() - run.loop_start
    chunk = {"from_step": run.chunk_start_step, "to_step": step, "minutes": round(elapsed, 2),
             "crops_per_s": round((step - run.loop_step) * o.batch_size * d.world / max(loop_s, 1e-9), 1),
             "device": str(device),
             "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
             "processes": d.world, "batch_size": o.batch_size, "crop": o.crop, "lr": o.lr,
             "distortion": o.distortion, "amp": o.amp, "data": [str(p) for p in o.data]}
    if o.level_bias:
        chunk["level_bias"] = o.level_bias
    if o.aux_transform:
        chunk["aux_transform"] = True
    if run.fresh:
        chunk["init_from"] = str(o.init_from)
    record = dict(run.record)
    record["chunks"] = run.record["chunks"] + [chunk]
    record["steps"] = step
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state()
    save_checkpoint(o.out, run.model, model_id=o.model_id, training=record,
                    optimizer=run.opt.state_dict(), aux_optimizer=run.aux_opt.state_dict(), step=step, rng=rng)


# ----------------------------------------------------------------------------- the end of a chunk
def finish(run: Run, signum: int | None) -> Path:
    """Close the bar; evaluate the final weights (unless stopped by a signal or just evaluated);
    check that the ranks agree; save."""
    if run.bar is not None:
        run.bar.close()
        run.bar = None
    if signum is not None:
        run.log(f"stopped by signal {signum} at step {run.step}")
    elif run.eval_images and run.record.get("eval", {}).get("step") != run.step:
        evaluate_now(run)
    if run.d.world > 1:
        check_ranks_agree(run.model, run.d, run.log)
    if run.d.main:
        save(run)
        run.log(f"saved {run.o.out} at step {run.step}")
    barrier(run.d)
    return run.o.out


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
