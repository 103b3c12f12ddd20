r"""Held-out evaluation of a trained run: its network on episodes it never trained on.

::

    from spikeplastic.meta import evaluate
    res = evaluate("runs/p50", episodes=1000)     # a run folder or its checkpoint.pt
    print(res.line())                              # metric ± 95% CI, n, split
    res.write("runs/p50/held_out.json")

CLI: ``spikeplastic evaluate RUN --episodes 1000``. :func:`~spikeplastic.meta.compare.compare`
evaluates every run's final checkpoint this way (:func:`evaluate_cached`).

What is held out:

- *data*, for tasks with data splits (``SupervisedTask.data_splits``): episodes come from
  ``split`` (default ``"test"``), classes or images disjoint from the ``"train"`` split that
  training samples. ``oneshot``: test classes drawn at random by the run's seed
  (``class_split="random"``, the paper's) or alphabet-disjoint (``"alphabet"``); ``images``: the
  test images (built-in: camera, coffee, gravel; CIFAR-10: ``data_batch_5``). The checkpoint records
  the run's splits: a task rebuilt with other splits is an error, a checkpoint written before the
  record existed a warning (``EvalResult.split_checked`` False).
- *episodes*, for every task (the only thing held out for ``pattern``, ``maze``, ``cue``, whose
  episodes all draw new random data): with ``s = seed + 3_000_017`` (:data:`HELD_OUT_SEED_OFFSET`,
  ``seed`` the run's), the task generator is seeded ``s``, the action generator ``s + 1``, and
  ``torch.manual_seed(s)`` (in a forked RNG state: the caller's is untouched) drives stochastic
  models. Training uses ``seed`` and ``seed + 1_000_003``, its periodic evaluation
  ``seed + 2_000_003`` and ``+1``.

The model runs in eval mode under ``torch.no_grad``, ``batch`` episodes at a time (the last batch
smaller; the episodes depend on the seed and on ``batch``, both recorded). Supervised tasks: an
episode's metric is the task's ``metric`` on that episode alone. RL tasks: actions are *sampled*
from the policy's softmax, as in training (the papers report the sampled policy's reward), and an
episode's metric is its total reward.

95% confidence intervals, ``z = 1.959964`` (:data:`Z975`):

- binary metrics (``metric_is_binary``: oneshot's query accuracy, one query per episode): the
  Wilson score interval on ``k`` correct answers of ``n``, ``p = k / n``,
  ``(p + z²/2n) / (1 + z²/n) ± z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)`` (:func:`wilson_interval`);
- other metrics: ``mean ± z · s / sqrt(n)``, ``s`` the sample standard deviation (``ddof=1``) of the
  per-episode values (normal approximation, :func:`normal_interval`; NaN for ``n = 1``).

Across runs, ``compare`` reports the mean ± ``t_{0.975, K-1} · s / sqrt(K)`` of the ``K`` runs'
held-out means (Student t, :func:`~spikeplastic.meta.compare.t_interval`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from ..protocol import Episode, EpisodeModel, RLTask, SupervisedTask
from .build import build_model, build_task
from .checkpoint import CHECKPOINT_NAME, load_checkpoint
from .config import TrainConfig
from .devices import resolve_device
from .episodes import a2c_episode, slice_episode

__all__ = [
    "EvalResult",
    "evaluate",
    "evaluate_cached",
    "EvalSetup",
    "prepare_evaluation",
    "held_out_episodes",
    "read_result",
    "wilson_interval",
    "normal_interval",
    "held_out_seed",
    "state_digest",
    "HELD_OUT_SEED_OFFSET",
    "HELD_OUT_NAME",
    "DEFAULT_EVAL_BATCH",
    "Z975",
]

#: the held-out seed stream of a run with seed ``seed`` is ``seed + HELD_OUT_SEED_OFFSET`` (module docstring)
HELD_OUT_SEED_OFFSET = 3_000_017
#: the two-sided 95% standard-normal quantile
Z975 = 1.959963984540054
#: the file, in a run folder, that ``spikeplastic evaluate`` and ``compare`` write
HELD_OUT_NAME = "held_out.json"
#: episodes per batch when ``batch`` is not given
DEFAULT_EVAL_BATCH = 32
FORMAT = "spikeplastic-held-out"
#: 2: the images metric became relative to the whole image's energy (tasks/images.py); a cached
#: evaluation of another version is made again; 3: images evaluations carry the no-memory references
#: (``ImageTask.reference_errors``)
VERSION = 3
SPLITS = ("train", "test")


def held_out_seed(run_seed: int) -> int:
    """The held-out stream's seed of a run seeded ``run_seed``: ``run_seed + HELD_OUT_SEED_OFFSET``."""
    return run_seed + HELD_OUT_SEED_OFFSET


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def wilson_interval(k: int, n: int, z: float = Z975) -> tuple[float, float]:
    """The Wilson score interval ``(low, high)`` of a binomial proportion, ``k`` successes of ``n``.

    With ``p = k/n``: ``(p + z²/2n) / (1 + z²/n) ± z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)``.
    Unlike the Wald interval ``p ± z sqrt(p(1-p)/n)`` it stays inside ``[0, 1]`` and is not empty at
    ``k = 0`` or ``k = n``. Example: ``wilson_interval(8, 10)`` -> ``(0.4902, 0.9433)``.
    """
    n = _count("n", n, 1)
    k = _count("k", k, 0)
    if k > n:
        raise ValueError(f"k: expected at most n = {n} successes, got {k}")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def normal_interval(values: Sequence[float], z: float = Z975) -> tuple[float, float]:
    """``(mean, half)``: the mean and ``z · s / sqrt(n)``, ``s`` the sample standard deviation
    (``ddof=1``); the half-width is NaN for one value."""
    x = torch.as_tensor(list(values), dtype=torch.float64)
    if x.numel() == 0:
        raise ValueError("values: expected at least one value")
    mean = float(x.mean())
    if x.numel() == 1:
        return mean, float("nan")
    return mean, z * float(x.std(unbiased=True)) / math.sqrt(x.numel())


def state_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 of a ``state_dict`` (names, dtypes, shapes and bytes of its tensors, sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(state):
        v = state[name]
        h.update(name.encode())
        if isinstance(v, Tensor):
            t = v.detach().cpu().contiguous().reshape(-1)
            h.update(f"{t.dtype}{tuple(v.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(v).encode())
    return h.hexdigest()


@dataclass(frozen=True, kw_only=True)
class EvalResult:
    """A held-out evaluation (:func:`evaluate`); :meth:`to_dict` / :meth:`write` give its JSON.

    Attributes:
        mean: the held-out metric, the mean of ``values``. ci_low, ci_high: its 95% confidence
            interval; ci_method: ``"wilson"`` (binary metric: binomial) or ``"normal"`` (module docstring).
        values: each episode's metric, in order. correct: correct answers (binary metrics), else ``None``.
        n: episodes. split: ``"test"`` or ``"train"``. data: what the split holds, one line.
        seed: the seed of the held-out stream. batch: episodes per batch.
        task, model: the run's ids. run_seed: the run's seed. checkpoint: the file evaluated.
        checkpoint_episode: outer steps the checkpoint's network was trained for.
        higher_is_better: the task's direction. actions: ``"sampled"`` (RL tasks) or ``None``.
        split_checked: ``True`` the checkpoint's record of its data splits matches the rebuilt task;
            ``False`` the checkpoint predates the record (unchecked); ``None`` no data splits.
        untrained: the network evaluated is the run's initial one (trained weights not loaded).
        model_sha256: :func:`state_digest` of the evaluated parameters. seconds: wall time.
        references: the task's no-learning reference strategies on the same episodes
            (``task.reference_errors``, e.g. the pattern tasks'), or ``None`` where it has none.
    """

    task: str
    model: str
    run_seed: int
    checkpoint: str
    checkpoint_episode: int
    split: str
    data: str
    n: int
    seed: int
    batch: int
    mean: float
    ci_low: float
    ci_high: float
    ci_method: Literal["wilson", "normal"]
    values: tuple[float, ...]
    correct: int | None
    higher_is_better: bool
    actions: str | None
    split_checked: bool | None
    untrained: bool
    model_sha256: str
    seconds: float
    references: dict[str, float] | None = None

    @property
    def half_width(self) -> float:
        """``(ci_high - ci_low) / 2`` (the ``±`` shown; the Wilson interval is not centred on ``mean``)."""
        return (self.ci_high - self.ci_low) / 2

    def line(self) -> str:
        """One line: metric ± CI, the CI's method, n, split."""
        how = (f"Wilson binomial, {self.correct}/{self.n} correct" if self.ci_method == "wilson"
               else "mean ± 1.96 SE")
        what = "untrained network" if self.untrained else f"checkpoint episode {self.checkpoint_episode}"
        acts = ", actions sampled" if self.actions else ""
        refs = ("; references on the same episodes: " + ", ".join(f"{k} {v:.4g}" for k, v in self.references.items())
                if self.references else "")
        return (f"{self.task} / {self.model} ({what}): held-out metric {self.mean:.4g} ± {self.half_width:.2g} "
                f"(95% CI [{self.ci_low:.4g}, {self.ci_high:.4g}], {how}), n = {self.n} episodes{acts}, "
                f"split {self.split} ({self.data}){refs}")

    def to_dict(self, *, values: bool = True) -> dict[str, Any]:
        """Plain JSON-able dict (with ``format``/``version`` tags and ``half_width``); ``values=False``
        leaves the per-episode values out."""
        d: dict[str, Any] = {"format": FORMAT, "version": VERSION, **asdict(self), "half_width": self.half_width}
        d["values"] = list(self.values) if values else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EvalResult":
        """Inverse of :meth:`to_dict` (with the values)."""
        if d.get("format") != FORMAT:
            raise ValueError(f"not a held-out evaluation (no format tag {FORMAT!r})")
        if d.get("values") is None:
            raise ValueError("the held-out evaluation was saved without its per-episode values")
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["values"] = tuple(float(v) for v in d["values"])
        return cls(**kw)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (atomically: a temporary file, then a rename)."""
        p = Path(path)
        d = self.to_dict()
        values = d.pop("values")
        text = json.dumps(d, indent=1)[:-2] + ',\n "values": ' + json.dumps(values) + "\n}\n"  # values on one line
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, p)
        return p


def read_result(path: str | os.PathLike[str]) -> EvalResult:
    """The :class:`EvalResult` in a JSON file written by :meth:`EvalResult.write`."""
    return EvalResult.from_dict(json.loads(Path(path).read_text()))


def _per_episode_metric(task: SupervisedTask, outputs: Tensor, ep: Episode) -> list[float]:
    """The task's metric of each batch element alone."""
    return [float(task.metric(outputs[:, i:i + 1], slice_episode(ep, slice(i, i + 1))))
            for i in range(outputs.shape[1])]


def _checked_splits(task: SupervisedTask | RLTask, ck: Mapping[str, Any], path: Path) -> bool | None:
    """Compare the checkpoint's record of its data splits with the rebuilt task's (module docstring)."""
    if not isinstance(task, SupervisedTask) or not task.data_splits:
        return None
    rec = ck.get("data_splits")
    if rec is None:
        warnings.warn(f"checkpoint {str(path)!r} holds no record of its task's data splits (it was written before "
                      f"spikeplastic kept one): its training may have sampled what is now the held-out data "
                      f"({task.describe_split('test')})", stacklevel=3)
        return False
    now = {s: list(task.split_items(s)) for s in task.data_splits}
    differ = sorted(s for s in set(now) | set(rec) if list(rec.get(s, [])) != now.get(s))
    if differ:
        raise ValueError(f"the task rebuilt from checkpoint {str(path)!r}'s config has other data splits than the "
                         f"run trained with (the {', '.join(differ)} split(s) differ), so its test split would not "
                         "be held out; rebuild the task as in training (same task_kwargs and seed)")
    return True


def _resolve(cfg: TrainConfig, episodes: int, batch: int | None, seed: int | None) -> tuple[int, int]:
    """``(batch, seed)`` as used: ``min(episodes, batch or DEFAULT_EVAL_BATCH)``, ``seed`` or the held-out seed."""
    b = DEFAULT_EVAL_BATCH if batch is None else batch
    return min(episodes, b), held_out_seed(cfg.seed) if seed is None else seed


def _check_args(episodes: Any, split: Any, batch: Any, seed: Any, untrained: Any) -> None:
    _count("episodes", episodes, 1)
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    if batch is not None:
        _count("batch", batch, 1)
    if seed is not None:
        _count("seed", seed, 0)
    if not isinstance(untrained, bool):
        raise TypeError(f"untrained: expected a bool, got {untrained!r}")


def _checkpoint_path(run: str | os.PathLike[str]) -> Path:
    p = Path(run)
    return p / CHECKPOINT_NAME if p.is_dir() else p


def evaluate(
    run: str | os.PathLike[str],
    *,
    episodes: int = 1000,
    split: Literal["test", "train"] = "test",
    batch: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
    untrained: bool = False,
    data: str | os.PathLike[str] | None = None,
) -> EvalResult:
    """Evaluate a run's network on ``episodes`` held-out episodes (what is held out: module docstring).

    Args:
        run: a run folder (holding ``checkpoint.pt``, as ``spikeplastic train --out`` writes) or a
            checkpoint file.
        episodes: episodes to run (>= 1). split: ``"test"`` (held-out data) or ``"train"`` (the
            training data, on held-out episodes: the generalisation gap); tasks without data splits
            draw new random data either way.
        batch: episodes per batch (default ``min(episodes, 32)``). seed: the held-out stream's seed
            (default ``run seed + 3_000_017``). device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"auto"``.
        untrained: evaluate the run's initial network (built from its seed as the trainer built it)
            instead of the trained one: the baseline the training improved on.
        data: the dataset folder, where it has moved since training (the task's ``--data`` field:
            oneshot's ``root``, images' ``cifar_root``).

    Returns:
        :class:`EvalResult` (metric, 95% CI, per-episode values, what was evaluated).

    Raises:
        FileNotFoundError: no checkpoint at ``run`` (or the run's dataset is missing).
        CheckpointError: the checkpoint cannot be read. ValueError: a bad argument (named), ``data``
        for a task that reads no dataset, or a task rebuilt with other data splits than the run's.
    """
    _check_args(episodes, split, batch, seed, untrained)
    path = _checkpoint_path(run)
    ck = load_checkpoint(path)
    return _evaluate_checkpoint(ck, path, episodes=episodes, split=split, batch=batch, seed=seed, device=device,
                                untrained=untrained, data=data)


@dataclass(frozen=True)
class EvalSetup:
    """A run's network rebuilt for evaluation (:func:`prepare_evaluation`): its config, task (with the
    run's data splits, checked against the checkpoint's record), model (eval mode, on ``device``)."""

    cfg: TrainConfig
    task: SupervisedTask | RLTask
    model: EpisodeModel
    path: Path
    checkpoint_episode: int
    split_checked: bool | None
    model_sha256: str
    device: torch.device
    untrained: bool


def prepare_evaluation(run: str | os.PathLike[str] | Mapping[str, Any], *, data: str | os.PathLike[str] | None = None,
                       device: str = "cpu", untrained: bool = False, path: Path | None = None) -> EvalSetup:
    """Rebuild a run's task and network as :func:`evaluate` does (``run``: a run folder, a checkpoint file,
    or a loaded checkpoint with its ``path``)."""
    if isinstance(run, Mapping):
        ck = run
        path = Path("<checkpoint>") if path is None else path
    else:
        path = _checkpoint_path(run)
        ck = load_checkpoint(path)
    cfg = TrainConfig.from_dict(ck["config"])
    if data is not None:
        from ..tasks import TASKS

        spec = TASKS.get(cfg.task)
        field = None if spec is None else spec.data_field
        if field is None:
            raise ValueError(f"data: task {cfg.task!r} reads no dataset")
        cfg = cfg.replace(task_kwargs={**cfg.task_kwargs, field: str(data)})
    dev = resolve_device(device)
    task = build_task(cfg)
    checked = _checked_splits(task, ck, path)
    rng_devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        model: EpisodeModel = build_model(cfg, task)  # the run's initial network (torch.manual_seed(seed))
    if not untrained:
        model.load_state_dict(ck["model_state"])
    digest = state_digest(model.state_dict())
    model.to(dev)
    model.eval()
    return EvalSetup(cfg, task, model, path, 0 if untrained else int(ck["episode"]), checked, digest, dev, untrained)


def held_out_episodes(setup: EvalSetup, *, episodes: int = 1000, split: str = "test", batch: int | None = None,
                      seed: int | None = None) -> Iterator[Episode]:
    """The episodes :func:`evaluate` runs (supervised tasks): ``episodes`` in batches of ``min(episodes, batch)``
    from the stream seeded ``seed`` (default: the run's held-out seed), drawn from ``split``. The caller seeds
    torch's global RNG with the same stream when its model draws random numbers (as :func:`evaluate` does)."""
    _check_args(episodes, split, batch, seed, False)
    task = setup.task
    if not isinstance(task, SupervisedTask):
        raise ValueError(f"held_out_episodes: task {setup.cfg.task!r} is an RL task (its episodes depend on the policy)")
    b_max, stream = _resolve(setup.cfg, episodes, batch, seed)
    kw = {"split": split} if split in task.data_splits else {}
    gen = torch.Generator().manual_seed(stream)
    done = 0
    while done < episodes:
        b = min(b_max, episodes - done)
        yield task.sample(b, gen, setup.device, **kw)
        done += b


def _evaluate_checkpoint(ck: Mapping[str, Any], path: Path, *, episodes: int, split: str, batch: int | None,
                         seed: int | None, device: str, untrained: bool,
                         data: str | os.PathLike[str] | None) -> EvalResult:
    setup = prepare_evaluation(ck, data=data, device=device, untrained=untrained, path=path)
    cfg, task, model, dev = setup.cfg, setup.task, setup.model, setup.device
    rng_devices = [dev.index or 0] if dev.type == "cuda" else []
    b_max, stream = _resolve(cfg, episodes, batch, seed)
    values: list[float] = []
    ref_sums: dict[str, float] = {}
    reference = getattr(task, "reference_errors", None)
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=rng_devices), torch.no_grad():
        torch.manual_seed(stream)
        if isinstance(task, RLTask):
            gen = torch.Generator().manual_seed(stream)
            action_gen = torch.Generator().manual_seed(stream + 1)
            done = 0
            while done < episodes:
                b = min(b_max, episodes - done)
                res = a2c_episode(model, task, b, gen, action_gen, dev, value_coef=cfg.value_coef,
                                  entropy_coef=cfg.entropy_coef, entropy_kind=cfg.entropy_kind)
                assert res.per_episode is not None  # a2c_episode always sets it
                values.extend(float(v) for v in res.per_episode.cpu())
                done += b
        else:
            for ep in held_out_episodes(setup, episodes=episodes, split=split, batch=batch, seed=seed):
                outputs, _ = model(ep.inputs)
                values.extend(_per_episode_metric(task, outputs, ep))
                if reference is not None:  # means over the batch: weighted by its size
                    nb = int(ep.targets.shape[0])
                    for k, v in reference(ep).items():
                        ref_sums[k] = ref_sums.get(k, 0.0) + v * nb
    seconds = time.perf_counter() - t0
    binary = isinstance(task, SupervisedTask) and task.metric_is_binary
    correct: int | None = None
    if binary:
        bad = next((v for v in values if v not in (0.0, 1.0)), None)
        if bad is not None:
            raise ValueError(f"task {cfg.task!r} declares a binary metric (metric_is_binary) but an episode "
                             f"scored {bad!r}")
        correct = int(sum(values))
        mean = correct / episodes
        lo, hi = wilson_interval(correct, episodes)
    else:
        mean, half = normal_interval(values)
        lo, hi = mean - half, mean + half
    if isinstance(task, SupervisedTask):
        desc = task.describe_split(split) if task.data_splits else (
            f"{cfg.task} has no data split: new random episodes from the held-out seed stream")
    else:
        desc = f"{cfg.task} is an RL task: new random environments from the held-out seed stream"
    return EvalResult(
        task=cfg.task, model=cfg.model, run_seed=cfg.seed, checkpoint=str(path),
        checkpoint_episode=setup.checkpoint_episode, split=split, data=desc, n=episodes,
        seed=stream, batch=b_max, mean=mean, ci_low=lo, ci_high=hi, ci_method="wilson" if binary else "normal",
        values=tuple(values), correct=correct, higher_is_better=bool(task.higher_is_better),
        actions="sampled" if isinstance(task, RLTask) else None, split_checked=setup.split_checked, untrained=untrained,
        model_sha256=setup.model_sha256, seconds=seconds,
        references={k: v / len(values) for k, v in ref_sums.items()} or None,
    )


def evaluate_cached(
    run: str | os.PathLike[str],
    *,
    episodes: int = 1000,
    split: Literal["test", "train"] = "test",
    batch: int | None = None,
    device: str = "cpu",
    path: str | os.PathLike[str] | None = None,
) -> EvalResult:
    """:func:`evaluate` with the default seed stream, reusing the result in ``path`` (default
    ``RUN/held_out.json``) when it is of the same network (:func:`state_digest`), episodes, split,
    batch and seed, else evaluating and writing it there. ``compare`` uses it, so that a resumed
    comparison does not evaluate its finished runs again."""
    _check_args(episodes, split, batch, None, False)
    ckpt = _checkpoint_path(run)
    out = Path(path) if path is not None else ckpt.parent / HELD_OUT_NAME
    ck = load_checkpoint(ckpt)
    cfg = TrainConfig.from_dict(ck["config"])
    b, stream = _resolve(cfg, episodes, batch, None)
    if out.is_file():
        try:
            raw = json.loads(out.read_text())
            old = EvalResult.from_dict(raw) if raw.get("version") == VERSION else None
        except (ValueError, TypeError, KeyError, AttributeError, json.JSONDecodeError):
            old = None
        if (old is not None and not old.untrained and old.model_sha256 == state_digest(ck["model_state"])
                and (old.n, old.split, old.batch, old.seed) == (episodes, split, b, stream)):
            return old
    res = _evaluate_checkpoint(ck, ckpt, episodes=episodes, split=split, batch=batch, seed=None, device=device,
                               untrained=False, data=None)
    res.write(out)
    return res
