"""Continual-learning task sequences built from scikit-learn's digits (shipped offline).

Registry::

    seq = make_continual_task("continual-permuted-digits", seed=0)     # 5 tasks
    seq.tasks[1].x_train, seq.tasks[1].y_train                          # [N, 64] in [0, 1], [N] labels 0..9

``continual-digits`` (split digits, task-incremental): 5 two-class tasks, digits ``{0,1}, {2,3}, ...,
{8,9}``; labels keep their digit value (10 output units) and a task is scored on its own two units
only (``TaskData.classes``: the task identity is known at test time, as in "task-IL" split MNIST).

``continual-permuted-digits`` (domain-incremental): the 10-class problem under a fixed pixel
permutation per task (task 0: the identity; the others drawn from ``seed``), all 10 units scored.

Every split is fixed by ``seed``: the 1797 images are shuffled once and cut 60/20/20 into train,
validation (used only to choose hyper-parameters, e.g. EWC's lambda) and test; permuted tasks share
the cut, split tasks take the images of their two digits from each part.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor

from .._validation import check_int

__all__ = ["TaskData", "ContinualTask", "ContinualTaskSpec", "CONTINUAL_TASKS", "make_continual_task",
           "load_digits_split"]

N_CLASSES = 10
N_PIXELS = 64


@dataclass(frozen=True)
class TaskData:
    """One task of a sequence: inputs ``[N, 64]`` (float32 in [0, 1]) and labels ``[N]`` (int64, 0..9) per
    split, and ``classes``: the output units the task is scored on (logits of other units are masked)."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: tuple[int, ...]

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """``(x, y)`` of split ``name`` in ``"train" | "val" | "test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split: expected 'train', 'val' or 'test', got {name!r}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")


@dataclass(frozen=True)
class ContinualTask:
    """A task sequence: ``name``, ``seed``, the tasks in presentation order, ``n_in``, ``n_classes``."""

    name: str
    seed: int
    tasks: tuple[TaskData, ...]
    n_in: int = N_PIXELS
    n_classes: int = N_CLASSES

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)


@dataclass(frozen=True)
class ContinualTaskSpec:
    """A registry entry: a one-line description, the builder ``(seed, n_tasks) -> ContinualTask`` and the
    largest number of tasks it can make (``None``: any)."""

    description: str
    build: Callable[[int, int], ContinualTask]
    default_tasks: int = 5
    max_tasks: int | None = None


def load_digits_split(seed: int) -> dict[str, tuple[Tensor, Tensor]]:
    """scikit-learn's digits as ``{"train"|"val"|"test": (x [N, 64] in [0, 1], y [N])}``, a 60/20/20 cut of
    one shuffle drawn from ``seed``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - optional dependency
        raise ImportError("the continual digits tasks need scikit-learn: pip install 'spikeplastic[data]'") from e
    d = load_digits()
    x = torch.as_tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(y), generator=g)
    n_tr, n_va = int(0.6 * len(y)), int(0.2 * len(y))
    parts = {"train": idx[:n_tr], "val": idx[n_tr:n_tr + n_va], "test": idx[n_tr + n_va:]}
    return {k: (x[v], y[v]) for k, v in parts.items()}


def _split_digits(seed: int, n_tasks: int) -> ContinualTask:
    data = load_digits_split(seed)
    tasks = []
    for t in range(n_tasks):
        cls = (2 * t, 2 * t + 1)
        parts = []
        for name in ("train", "val", "test"):
            x, y = data[name]
            keep = (y == cls[0]) | (y == cls[1])
            parts += [x[keep], y[keep]]
        tasks.append(TaskData(*parts, classes=cls))
    return ContinualTask("continual-digits", seed, tuple(tasks))


def _permuted_digits(seed: int, n_tasks: int) -> ContinualTask:
    data = load_digits_split(seed)
    g = torch.Generator().manual_seed(int(seed) + 7919)
    tasks = []
    for t in range(n_tasks):
        perm = torch.arange(N_PIXELS) if t == 0 else torch.randperm(N_PIXELS, generator=g)
        parts = []
        for name in ("train", "val", "test"):
            x, y = data[name]
            parts += [x[:, perm], y]
        tasks.append(TaskData(*parts, classes=tuple(range(N_CLASSES))))
    return ContinualTask("continual-permuted-digits", seed, tuple(tasks))


CONTINUAL_TASKS: Mapping[str, ContinualTaskSpec] = MappingProxyType({
    "continual-digits": ContinualTaskSpec(
        "split digits: 5 two-class tasks (0/1, 2/3, ..., 8/9), each scored on its own two classes (task-IL)",
        _split_digits, default_tasks=5, max_tasks=5),
    "continual-permuted-digits": ContinualTaskSpec(
        "digits, 10 classes, a fixed pixel permutation per task (task 0: identity), 5 tasks (domain-IL)",
        _permuted_digits, default_tasks=5),
})


def make_continual_task(name: str, seed: int = 0, n_tasks: int | None = None) -> ContinualTask:
    """The task sequence ``name`` (a :data:`CONTINUAL_TASKS` id) with splits and permutations drawn from ``seed``.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ids), ``n_tasks`` < 2 or above the task's maximum.
    """
    if not isinstance(name, str) or name not in CONTINUAL_TASKS:
        raise ValueError(f"task: unknown continual task {name!r}; valid ids: {sorted(CONTINUAL_TASKS)}")
    check_int("seed", seed, minimum=0)
    spec = CONTINUAL_TASKS[name]
    n = spec.default_tasks if n_tasks is None else check_int("n_tasks", n_tasks, minimum=2)
    if spec.max_tasks is not None and n > spec.max_tasks:
        raise ValueError(f"n_tasks: {name!r} has at most {spec.max_tasks} tasks, got {n}")
    return spec.build(int(seed), n)
