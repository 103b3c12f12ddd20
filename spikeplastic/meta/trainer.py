"""Episode-based meta-trainer: the outer loop (Adam over every learnable parameter of the model).

Inner plasticity happens inside each episode: it is just the model's forward pass (the plastic
weights live in the model's per-episode state). One *outer step* ("episode" in the logs, as in
Miconi et al.) = sample a batch of episodes, run them, one optimiser step::

    cfg = TrainConfig(task="pattern", model="rate-hebb", episodes=500, out="runs/p")
    result = train(cfg)                       # metrics.jsonl + checkpoint.pt in runs/p
    result = train(cfg.replace(episodes=1000), resume=True)   # continues exactly

Determinism: ``torch.manual_seed(seed)`` before the task and the model are built; task episodes
come from ``torch.Generator().manual_seed(seed)``; A2C actions from a second generator. All of
them, plus Python's and NumPy's, are stored in each checkpoint, so ``N`` episodes + resume ``N``
gives the same parameters as ``2N`` episodes in one go (on the same machine and thread count).

Memory: ``config.lean`` (default ``"auto"``) is set on the model, so supervised episodes of models
with a memory-lean whole-episode op (``snn-stdp``, ``snn-static``, ``rate-hebb``) backpropagate
through :mod:`spikeplastic.lean` instead of the per-step autograd graph; ``lean="off"`` restores
the step loop (:class:`~.config.TrainConfig`).

Robustness: a NaN/inf loss or gradient norm skips the optimiser step (logged as ``skipped``,
with a warning); training goes on. A run whose every step was skipped raises
:class:`TrainingError` at the end (it did not train). A parameter that becomes NaN/inf after an
optimiser step stops training at once with :class:`TrainingError` naming it; the last
checkpoint written before (all of whose parameters were finite) is kept.

Output folder: a fresh run (``resume=False``) refuses a folder that already holds a run
(``checkpoint.pt`` or ``metrics.jsonl``) unless ``overwrite=True`` (``FileExistsError``, before
anything is written).
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..baselines import count_parameters
from ..protocol import EpisodeModel, RLTask, SupervisedTask, check_lean
from .build import build_model, build_task
from .checkpoint import CHECKPOINT_NAME, capture_rng, ir_payload, load_checkpoint, restore_rng, save_checkpoint
from .config import TrainConfig
from .devices import resolve_device
from .episodes import EpisodeResult, a2c_episode, supervised_episode
from .metrics import METRICS_NAME, MetricsLog

__all__ = ["Trainer", "TrainResult", "TrainingError", "World", "train", "build_task", "build_model", "count_parameters",
           "apply_lean", "holds_run", "progress_enabled"]

log = logging.getLogger("spikeplastic.meta")

ACTION_SEED_OFFSET = 1_000_003
#: an outer step whose gradient norm (before clipping) exceeds this also logs ``grad_top``: the
#: parameter with the largest gradient and its share of the squared norm (where spikes come from)
GRAD_TOP_ABOVE = 1e3
EVAL_SEED_OFFSET = 2_000_003
#: Fields that must be equal between a checkpoint and the config that resumes it.
RESUME_FIELDS = ("task", "model", "batch", "lr", "lr_decay", "lr_decay_every", "weight_decay", "clip", "seed", "value_coef", "entropy_coef",
                 "entropy_kind", "adam_eps", "task_kwargs", "model_kwargs", "outer", "es_population", "es_sigma",
                 "es_params")
#: values of fields added after the first checkpoints were written (an old checkpoint trained with these)
_RESUME_FIELD_DEFAULTS = {"entropy_kind": "shannon", "adam_eps": 1e-8, "lr_decay": 1.0, "lr_decay_every": 0,
                          "outer": "bptt", "es_population": 32, "es_sigma": 0.02, "es_params": "all"}


class TrainingError(RuntimeError):
    """Training stopped or produced nothing: every optimiser step was skipped as non-finite, or a
    parameter became NaN/inf (``parameter`` names it). ``checkpoint``: the last good checkpoint
    kept on disk (``None`` when none was written)."""

    def __init__(self, message: str, *, parameter: str | None = None, checkpoint: Path | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.checkpoint = checkpoint


def holds_run(folder: str | os.PathLike[str]) -> list[str]:
    """The run files (``checkpoint.pt``, ``metrics.jsonl``) that ``folder`` already holds."""
    p = Path(folder)
    return [n for n in (CHECKPOINT_NAME, METRICS_NAME) if (p / n).exists()]


class World:
    """The processes training together; this base class is a single process (rank 0 of 1).

    :mod:`spikeplastic.meta.distributed` provides the ``torch.distributed`` version.
    """

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum_(self, t: Tensor) -> None:
        """Sum ``t`` over all processes, in place (no-op here)."""

    def broadcast_(self, t: Tensor) -> None:
        """Overwrite ``t`` with rank 0's value, in place (no-op here)."""

    def barrier(self) -> None:
        """Wait for every process (no-op here)."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained model. history: metric records (those written to ``metrics.jsonl``).
        episodes: outer steps completed. final_metric: mean train metric of the last (up to) 10
        logged steps. seconds: wall time of this call. out: output folder (or None).
        n_params: trainable scalars. skipped: optimiser steps skipped in this call.
    """

    model: EpisodeModel
    history: list[dict[str, Any]]
    episodes: int
    final_metric: float
    seconds: float
    out: Path | None
    n_params: int
    skipped: int = 0


def apply_lean(model: EpisodeModel, task: SupervisedTask | RLTask, mode: str) -> None:
    """Set ``model.lean = mode`` (``TrainConfig.lean``), checking ``"on"`` first.

    Raises:
        ValueError: ``mode`` not one of ``"auto"``, ``"on"``, ``"off"``; or ``"on"`` with an RL
            task (A2C steps one observation at a time: there is no whole-sequence forward) or with a
            model without a lean op (the message says why).
    """
    check_lean(mode)
    if mode == "on":
        if isinstance(task, RLTask):
            raise ValueError(f"lean='on' but task {getattr(task, 'name', type(task).__name__)!r} is an RL task: "
                             "A2C steps the model one observation at a time, so there is no whole-episode "
                             "forward to run the lean way (use lean='auto' or 'off')")
        reason = model.lean_unsupported()
        if reason is not None:
            raise ValueError(f"lean='on' but {type(model).__name__} cannot use the lean path: {reason} "
                             "(use lean='auto' or 'off')")
    model.lean = mode


def progress_enabled(flag: bool) -> bool:
    """Whether to show a progress bar: ``flag``, stderr a TTY and ``$CI`` unset."""
    return flag and sys.stderr.isatty() and not os.environ.get("CI")


class Trainer:
    """Outer-loop optimiser for one model on one task (see the module docstring).

    Args:
        config: the run's :class:`TrainConfig`.
        task, model: objects to use instead of building them from ``config.task``/``config.model``
            (then the ids are only labels; pass the same objects again to resume). Without them the
            ids are resolved by :func:`~spikeplastic.meta.build.build_task` and
            :func:`~spikeplastic.meta.build.build_model` (after ``torch.manual_seed(config.seed)``).
        world: the processes training together (default: this one only).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        task: SupervisedTask | RLTask | None = None,
        model: EpisodeModel | None = None,
        world: World | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = config
        if config.out is not None and Path(config.out).exists() and not Path(config.out).is_dir():
            raise ValueError(f"out: expected a folder (existing or to be created), got the file {config.out!r}")
        self.world = world or World()
        if config.outer == "es":
            if config.es_population % self.world.size:
                raise ValueError(f"es_population={config.es_population} must be divisible by the number of processes "
                                 f"({self.world.size}): each process evaluates an equal share of the members")
        elif config.batch % self.world.size:
            raise ValueError(f"batch={config.batch} must be divisible by the number of processes ({self.world.size})")
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.task = build_task(config) if task is None else task
        if not isinstance(self.task, (SupervisedTask, RLTask)):
            raise TypeError(f"task must be a SupervisedTask or RLTask, got {type(self.task).__name__}")
        self.model = build_model(config, self.task) if model is None else model
        if not isinstance(self.model, EpisodeModel):
            raise TypeError(f"model must be an EpisodeModel, got {type(self.model).__name__}")
        if config.outer == "eprop":  # before anything is trained or written
            from .eprop import check_eprop

            check_eprop(self.model, self.task, config.model if model is None else None)
        apply_lean(self.model, self.task, config.lean)
        self.model.to(self.device)
        if config.outer == "es":
            from .es import select_parameters

            named = select_parameters(self.model, config.es_params)
        else:
            named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.param_names = [n for n, _ in named]
        if not self.params:
            raise ValueError(f"model {config.model!r} has no trainable parameters")
        for p in self.params:  # identical start on every process
            self.world.broadcast_(p.data)
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr, weight_decay=config.weight_decay,
                                          eps=config.adam_eps)
        self.task_gen = torch.Generator().manual_seed(config.seed)
        self.action_gen = torch.Generator().manual_seed(config.seed + ACTION_SEED_OFFSET)
        self.episode = 0
        self.out = None if config.out is None else Path(config.out)
        self.log = MetricsLog(None)
        self._saved: tuple[Path, int] | None = None  # the last checkpoint written: (path, episode)
        self._names = {p: n for n, p in self.model.named_parameters()}
        bad = self._nonfinite()
        if bad is not None:
            raise ValueError(f"model parameter {bad!r}: expected finite initial values, got NaN or inf")

    def _nonfinite(self) -> str | None:
        """Name of the first trainable parameter holding a NaN/inf (``None`` when all are finite)."""
        ok = torch.stack([torch.isfinite(p.detach()).all() for p in self.params])
        if bool(ok.all()):  # one device sync per step
            return None
        return next(self._names.get(p, "?") for p, good in zip(self.params, ok.tolist()) if not good)

    # ---- one outer step ------------------------------------------------------------------
    @property
    def _part(self) -> slice | None:
        if self.world.size == 1:
            return None
        b = self.config.batch // self.world.size
        return slice(self.world.rank * b, (self.world.rank + 1) * b)

    def _run_batch(self, batch: int, gen: torch.Generator, action_gen: torch.Generator, part: slice | None,
                   *, sample_kwargs: dict[str, Any] | None = None) -> EpisodeResult:
        if isinstance(self.task, RLTask):
            return a2c_episode(self.model, self.task, batch, gen, action_gen, self.device, part,
                               value_coef=self.config.value_coef, entropy_coef=self.config.entropy_coef,
                               entropy_kind=self.config.entropy_kind)
        return supervised_episode(self.model, self.task, batch, gen, self.device, part, sample_kwargs=sample_kwargs)

    def _split_kwargs(self, split: str) -> dict[str, Any] | None:
        """``{"split": split}`` for a task with data splits (``SupervisedTask.data_splits``), else ``None``."""
        if isinstance(self.task, SupervisedTask) and split in self.task.data_splits:
            return {"split": split}
        return None

    def step(self) -> dict[str, Any]:
        """One outer step; returns its metric record (also written to the log when due).

        A task with data splits is sampled on ``split="train"`` whatever its config's default split.
        With ``outer="es"`` the step is :func:`spikeplastic.meta.es.es_step` (no backward pass); with
        ``outer="eprop"`` the gradients come from :func:`spikeplastic.meta.eprop.eprop_episode` (no backward
        pass through time), and the rest (all-reduce, clipping, Adam) is BPTT's."""
        cfg = self.config
        if cfg.outer == "es":
            from .es import es_step

            return es_step(self)
        t0 = time.perf_counter()
        self.model.train()
        if cfg.outer == "eprop":
            from .eprop import eprop_episode

            res, grads = eprop_episode(self)
            loss_ok = bool(torch.isfinite(res.loss.detach()))
            if loss_ok:
                for n, p in zip(self.param_names, self.params):
                    p.grad = grads[n].detach().clone() if n in grads else None
        else:
            res = self._run_batch(cfg.batch, self.task_gen, self.action_gen, self._part,
                                  sample_kwargs=self._split_kwargs("train"))
            loss_ok = bool(torch.isfinite(res.loss.detach()))
            if loss_ok:
                res.loss.backward()
        # absent gradients count as zeros, so that every process reduces the same layout and Adam
        # treats all parameters alike whatever the world size
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        stats = [float(res.loss.detach()) if loss_ok else 0.0, res.metric, 0.0 if loss_ok else 1.0]
        if self.world.size > 1:
            # one all-reduce of [loss, metric, bad-loss flag, grads...], then the mean over processes
            ref = self.params[0]
            flat = torch.cat([torch.tensor(stats, dtype=ref.dtype, device=ref.device)]
                             + [p.grad.reshape(-1) for p in self.params])
            self.world.all_reduce_sum_(flat)
            flat /= self.world.size
            stats = [float(v) for v in flat[:3]]
            off = 3
            for p in self.params:
                p.grad = flat[off:off + p.numel()].view_as(p).clone()
                off += p.numel()
        loss_v, metric_v, bad = stats
        if bad > 0:
            loss_v = float("nan")
        norm = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.clip if cfg.clip is not None else math.inf))
        skipped = bad > 0 or not math.isfinite(norm)
        if skipped:
            log.warning("episode %d: non-finite %s; optimiser step skipped",
                        self.episode + 1, "loss" if bad > 0 else "gradient")
        else:
            if cfg.lr_decay_every:
                lr = cfg.lr_at(self.episode)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
            self.optimizer.step()
        top = None
        if math.isfinite(norm) and norm > GRAD_TOP_ABOVE:
            top = self._grad_top()  # before zero_grad; shares are unchanged by the clip's scaling
        self.optimizer.zero_grad(set_to_none=True)
        self.episode += 1
        rec: dict[str, Any] = {
            "phase": "train", "episode": self.episode, "loss": loss_v, "metric": metric_v,
            "seconds": time.perf_counter() - t0, "skipped": skipped, "grad_norm": norm,
        }
        if top is not None:
            rec["grad_top"] = top
        if cfg.outer == "eprop":
            rec["outer"] = "eprop"
        if cfg.lr_decay_every:
            rec["lr"] = cfg.lr_at(self.episode - 1)
        bad = self._nonfinite()  # also after a skipped step: a model may have written into a parameter
        if bad is not None:
            rec["nonfinite_parameter"] = bad
        return rec

    def _grad_top(self) -> list[Any]:
        """``[name, share]``: the parameter holding the largest part of the squared gradient norm."""
        sq = [float(p.grad.detach().double().pow(2).sum()) if p.grad is not None else 0.0 for p in self.params]
        total = sum(sq)
        i = max(range(len(sq)), key=sq.__getitem__)
        return [self.param_names[i], sq[i] / total if total > 0 else 0.0]

    @torch.no_grad()
    def evaluate(self, batch: int | None = None) -> dict[str, Any]:
        """Loss and metric on ``batch`` (default ``eval_batch``) episodes drawn from fixed
        generators (the same episodes at every evaluation; the training RNG streams are untouched).
        Tasks with data splits are evaluated on ``split="test"``. This is the periodic monitor
        (``eval_every``); the held-out evaluation of a finished run is :func:`spikeplastic.meta.evaluate`."""
        b = self.config.eval_batch if batch is None else batch
        t0 = time.perf_counter()
        seed = self.config.seed + EVAL_SEED_OFFSET
        kw = self._split_kwargs("test")
        was_training = self.model.training
        self.model.eval()
        with torch.random.fork_rng(devices=[self.device.index or 0] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            res = self._run_batch(b, torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1),
                                  None, sample_kwargs=kw)
        self.model.train(was_training)
        return {"phase": "eval", "episode": self.episode, "loss": float(res.loss), "metric": res.metric,
                "seconds": time.perf_counter() - t0, "skipped": False}

    # ---- checkpoints ---------------------------------------------------------------------
    def _ir_meta(self) -> dict[str, Any]:
        from ..models import SpikingModel

        meta: dict[str, Any] = {"model": self.config.model, "task": self.config.task, "episode": self.episode}
        if isinstance(self.model, SpikingModel):
            meta.update(self.model.export_meta())
        return meta

    def _data_splits(self) -> dict[str, list[str]] | None:
        """The items of each data split the run trained beside (``None``: the task has none), kept in
        the checkpoint so that a held-out evaluation can check it rebuilds the same split."""
        if not isinstance(self.task, SupervisedTask) or not self.task.data_splits:
            return None
        return {s: list(self.task.split_items(s)) for s in self.task.data_splits}

    def checkpoint_payload(self) -> dict[str, Any]:
        from .._version import __version__

        return {
            "episode": self.episode,
            "config": self.config.to_dict(),
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "rng": capture_rng({"task": self.task_gen, "action": self.action_gen}),
            "history": list(self.log.records),
            "n_params": count_parameters(self.model),
            "ir": ir_payload(self.model, self._ir_meta()),
            "data_splits": self._data_splits(),
            "versions": {"spikeplastic": str(__version__), "torch": str(torch.__version__)},
        }

    def save(self) -> Path | None:
        """Write ``out/checkpoint.pt`` (main process only)."""
        if self.out is None or not self.world.is_main:
            return None
        path = save_checkpoint(self.out / CHECKPOINT_NAME, self.checkpoint_payload())
        self._saved = (path, self.episode)
        return path

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore model, optimiser, RNG states, episode count and history from a checkpoint."""
        ck = load_checkpoint(path, map_location=self.device)
        saved = ck["config"]
        mine = self.config.to_dict()
        saved = {**_RESUME_FIELD_DEFAULTS, **saved}
        diff = [k for k in RESUME_FIELDS if saved.get(k) != mine.get(k)]
        if diff:
            detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {mine.get(k)!r}" for k in diff)
            raise ValueError(f"cannot resume: the config differs from the checkpoint's in {detail}")
        self.model.load_state_dict(ck["model_state"])
        self.optimizer.load_state_dict(ck["optimizer_state"])
        restore_rng(ck["rng"], {"task": self.task_gen, "action": self.action_gen})
        self.episode = int(ck["episode"])
        self.log = MetricsLog(None, history=ck["history"])
        self._saved = (Path(path), self.episode)

    def _stop_nonfinite(self, name: str, episode: int) -> None:
        kept = (f"the last good checkpoint {str(self._saved[0])!r} (episode {self._saved[1]}) is kept"
                if self._saved is not None else "no checkpoint had been written yet")
        raise TrainingError(
            f"parameter {name!r} became NaN/inf at episode {episode}; training stopped and "
            f"{kept}. Lower lr (now {self.config.lr:g}) or clip the gradient norm (clip, now {self.config.clip})",
            parameter=name, checkpoint=None if self._saved is None else self._saved[0])

    # ---- the loop -------------------------------------------------------------------------
    def run(self, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
        """Train until ``config.episodes`` outer steps are done (continuing a checkpoint with ``resume``).

        ``overwrite``: start afresh in a folder that already holds a run, replacing it.

        Raises:
            FileExistsError: ``config.out`` already holds a run and neither ``resume`` nor
                ``overwrite`` is set (checked before anything is written).
            FileNotFoundError: ``resume=True`` without ``out/checkpoint.pt``.
            ValueError: ``resume=True`` with a config that differs from the checkpoint's, or with
                ``overwrite=True``. CheckpointError: the checkpoint to resume cannot be read.
            TrainingError: every optimiser step was skipped, or a parameter became NaN/inf.
        """
        cfg = self.config
        t_start = time.perf_counter()
        if resume and overwrite:
            raise ValueError("resume=True and overwrite=True contradict each other: choose one")
        main = self.world.is_main
        if self.out is not None and main and not resume:
            existing = holds_run(self.out)
            if existing and not overwrite:
                raise FileExistsError(
                    f"out: {str(self.out)!r} already holds a run ({', '.join(existing)}); pass resume=True to "
                    "continue it or overwrite=True to replace it (CLI: --resume / --overwrite), "
                    "or choose another folder")
            if existing:  # overwrite: no stale checkpoint may outlive the metrics rewritten below
                (self.out / CHECKPOINT_NAME).unlink(missing_ok=True)
        if resume:
            if self.out is None:
                raise ValueError("resume=True needs config.out (the folder holding checkpoint.pt)")
            self.load(self.out / CHECKPOINT_NAME)
        self.log = MetricsLog(self.out / METRICS_NAME if (self.out is not None and main) else None,
                              history=self.log.records)
        from tqdm import tqdm

        bar = tqdm(total=cfg.episodes, initial=self.episode, disable=not (main and progress_enabled(cfg.progress)),
                   desc=f"{cfg.model} on {cfg.task}", dynamic_ncols=True, leave=True)
        skipped = steps = 0
        ema_loss = ema_metric = None
        try:
            while self.episode < cfg.episodes:
                rec = self.step()
                steps += 1
                skipped += int(rec["skipped"])
                bad = rec.get("nonfinite_parameter")
                if main and (self.episode % cfg.log_every == 0 or rec["skipped"] or bad
                             or self.episode == cfg.episodes):
                    self.log.write(rec)
                if bad is not None:
                    self._stop_nonfinite(bad, rec["episode"])
                if math.isfinite(rec["loss"]):
                    ema_loss = rec["loss"] if ema_loss is None else 0.9 * ema_loss + 0.1 * rec["loss"]
                ema_metric = rec["metric"] if ema_metric is None else 0.9 * ema_metric + 0.1 * rec["metric"]
                if cfg.eval_every and self.episode % cfg.eval_every == 0 and main:
                    ev = self.evaluate()
                    self.log.write(ev)
                if cfg.checkpoint_every and self.episode % cfg.checkpoint_every == 0:
                    self.save()
                bar.update(1)
                bar.set_postfix(loss=f"{ema_loss:.4g}" if ema_loss is not None else "nan", metric=f"{ema_metric:.4g}")
        finally:
            bar.close()
        self.save()
        self.world.barrier()
        if steps and skipped == steps:
            where = f"; see {self.out / METRICS_NAME}" if self.out is not None else ""
            raise TrainingError(
                f"every one of the {steps} optimiser steps of this run was skipped because the loss or the gradient "
                f"was NaN/inf: the model did not train{where}. Check the task's inputs and the model's settings, "
                f"or lower lr (now {cfg.lr:g})", checkpoint=None if self._saved is None else self._saved[0])
        train_recs = [r for r in self.log.records if r.get("phase") == "train"]
        tail = [r["metric"] for r in train_recs[-10:]]
        final = sum(tail) / len(tail) if tail else float("nan")
        return TrainResult(
            model=self.model, history=list(self.log.records), episodes=self.episode, final_metric=final,
            seconds=time.perf_counter() - t_start, out=self.out, n_params=count_parameters(self.model),
            skipped=skipped,
        )


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    task: SupervisedTask | RLTask | None = None,
    model: EpisodeModel | None = None,
) -> TrainResult:
    """Meta-train ``config.model`` on ``config.task`` in this process (see :class:`Trainer` and
    :meth:`Trainer.run` for ``resume``/``overwrite`` and the errors)."""
    return Trainer(config, task=task, model=model).run(resume=resume, overwrite=overwrite)


def config_from_checkpoint(ck: Mapping[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` stored in a loaded checkpoint."""
    return TrainConfig.from_dict(ck["config"])
