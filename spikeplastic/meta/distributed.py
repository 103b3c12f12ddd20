"""Data-parallel meta-training across processes with ``torchrun`` (``torch.distributed``).

Launch (gloo on CPU, NCCL on GPU; one process per GPU)::

    torchrun --nproc_per_node 2 -m spikeplastic.cli train --task cue --model backpropamine --batch 30

``spikeplastic train`` detects ``torchrun`` (``WORLD_SIZE > 1``) by itself and calls
:func:`train_distributed`; the command-line entry point lives in :mod:`spikeplastic.cli` (this module,
below the CLI, does not import it: ``python -m spikeplastic.meta.distributed`` only points there).

Scheme (exactly equivalent to one process with the same total batch, up to float rounding):

- ``config.batch`` is the total batch; it must be divisible by the number of processes ``P``.
- Every process builds the same model (same seed; rank 0's parameters are also broadcast) and
  keeps the same task generator. Each outer step, every process draws the *full* batch of
  episodes from that generator and keeps its slice ``[rank*B/P, (rank+1)*B/P)`` (RL tasks: the
  environment runs the full batch, the process acts for its slice); so the slices partition the
  single-process batch exactly, element for element, including A2C action draws.
- Losses are batch means; gradients (and loss/metric, and a non-finite flag) are summed with one
  ``all_reduce`` and divided by ``P``: the full-batch mean gradient. Clipping, the NaN/inf skip
  and Adam then run identically on every process.
- Rank 0 alone writes ``metrics.jsonl``, checkpoints and the progress bar; on resume every
  process reads the checkpoint, so ``out`` must be on a filesystem all processes see.

Drawing the full batch on every process costs task sampling (cheap next to the model), not
model compute. Models that draw random numbers inside their forward pass (e.g. the ``rate``
spike encoder, ``snn-np``'s per-episode noise seeds) use the per-process global RNG, so they match
a single process only in distribution.
"""
from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch import Tensor

from ..protocol import EpisodeModel, RLTask, SupervisedTask
from .config import TrainConfig
from .devices import resolve_device
from .trainer import Trainer, TrainResult, World

__all__ = ["DistributedWorld", "is_torchrun", "train_distributed"]


class DistributedWorld(World):
    """The processes of the default ``torch.distributed`` process group."""

    def __init__(self) -> None:
        if not dist.is_initialized():
            raise RuntimeError("torch.distributed is not initialised; use train_distributed() under torchrun")
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()

    def all_reduce_sum_(self, t: Tensor) -> None:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)

    def broadcast_(self, t: Tensor) -> None:
        dist.broadcast(t, src=0)

    def barrier(self) -> None:
        dist.barrier()


def is_torchrun() -> bool:
    """True inside a multi-process ``torchrun`` launch (``WORLD_SIZE > 1`` and ``RANK`` set)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def train_distributed(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    backend: str | None = None,
    task: SupervisedTask | RLTask | None = None,
    model: EpisodeModel | None = None,
) -> TrainResult:
    """Train with every process of a ``torchrun`` launch (module docstring).

    ``backend``: ``"gloo"`` (default on CPU) or ``"nccl"`` (default on CUDA; each process uses
    GPU ``LOCAL_RANK``). Initialises the default process group if needed and destroys it after.
    ``resume``, ``overwrite``: as in :meth:`~spikeplastic.meta.trainer.Trainer.run`.
    """
    device = resolve_device(config.device)
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        config = config.replace(device=f"cuda:{local}")
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' or 'nccl', got {backend!r}")
    own = not dist.is_initialized()
    if own:
        dist.init_process_group(backend)
    try:
        return Trainer(config, task=task, model=model, world=DistributedWorld()).run(resume=resume, overwrite=overwrite)
    finally:
        if own:
            dist.destroy_process_group()


if __name__ == "__main__":  # the torchrun entry point is the CLI's (module docstring)
    print("spikeplastic.meta.distributed is not a command; launch with: "
          "torchrun --nproc_per_node N -m spikeplastic.cli train <train options>", file=sys.stderr)
    sys.exit(2)
