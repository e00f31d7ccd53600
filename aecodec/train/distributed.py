"""Where training runs: the device, and the processes of a ``torchrun`` (DistributedDataParallel).

With one process every helper here is a no-op or a pass-through. With several, rank 0 decides
when to stop (:func:`rank0_says`), the quantiles — trained outside the forward pass — are kept
equal by hand (:func:`wrap_ddp`, :func:`average_grads`), and at the end the ranks prove that their
weights agree (:func:`check_ranks_agree`).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import torch

from ..models.checkpoint import fp32_state_dict, weights_hash
from ..models.hyperprior import MeanScaleHyperprior

__all__ = ["Dist", "init_distributed", "close_distributed", "seed_for", "average_grads",
           "rank0_says", "wrap_ddp", "check_ranks_agree", "barrier"]


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    group: object = None  # gloo group for control messages (no GPU sync)
    owner: bool = False  # we created the process group, so we destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group that torchrun describes in the environment (WORLD_SIZE, RANK, …)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owner = not dist.is_initialized()
    if owner:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    return Dist(rank=rank, world=world, group=group, owner=owner), device


def close_distributed(d: Dist) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if d.owner:
        import torch.distributed as dist

        dist.destroy_process_group()


def seed_for(seed: int, rank: int, step: int) -> int:
    """The seed of one rank from one step on (each rank, each --init-from chunk draws its own)."""
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63)


def average_grads(params: list[torch.Tensor], world: int) -> None:
    import torch.distributed as dist

    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def rank0_says(d: Dist, flag: bool) -> bool:
    """Rank 0's decision, on every rank (so that all ranks leave the loop at the same step)."""
    if d.world == 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([int(flag)])
    dist.broadcast(t, 0, group=d.group)
    return bool(t.item())


def wrap_ddp(model: MeanScaleHyperprior, device: torch.device):
    """``model`` in DistributedDataParallel. The quantiles are trained by the aux loss alone,
    outside the forward pass: DDP ignores them (its reducer would wait for their gradients
    forever); they start equal (broadcast from rank 0) and :func:`average_grads` keeps them so."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    quantiles = [(n, p) for n, p in model.named_parameters() if n.endswith(".quantiles")]
    for _, p in quantiles:
        dist.broadcast(p.data, 0)
    DDP._set_params_and_buffers_to_ignore_for_model(model, [n for n, _ in quantiles])
    # The buffers (CDF tables, bounds) never change in training: sync them once, at init.
    no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
               else {"broadcast_buffers": False})  # renamed in torch 2.13
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)


def check_ranks_agree(model: MeanScaleHyperprior, d: Dist, log) -> None:
    """Every rank hashes its weights; a run whose ranks differ fails."""
    import torch.distributed as dist

    digest = weights_hash(fp32_state_dict(model))
    hashes = [None] * d.world
    dist.all_gather_object(hashes, digest, group=d.group)
    if len(set(hashes)) != 1:
        raise RuntimeError(f"DDP ranks diverged: weights hashes {hashes}")
    log(f"ddp: all {d.world} processes hold weights {digest}")


def barrier(d: Dist) -> None:
    """Wait for every rank (on the control group); a no-op for one process."""
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier(group=d.group)
