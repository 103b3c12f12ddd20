r"""Continual-learning metrics on an accuracy matrix (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018).

``R[i, j]`` is the accuracy on task ``j``'s test split after training through task ``i``
(``T`` tasks, ``R`` of shape ``[T, T]``)::

    ACC        = 1/T       sum_{j=0}^{T-1} R[T-1, j]
    BWT        = 1/(T-1)   sum_{j=0}^{T-2} (R[T-1, j] - R[j, j])
    forgetting = 1/(T-1)   sum_{j=0}^{T-2} (max_{i=0}^{T-2} R[i, j] - R[T-1, j])
    LA         = 1/T       sum_{j=0}^{T-1} R[j, j]      (learning accuracy: each task just after learning it)

BWT < 0 means that learning later tasks lowered the accuracy on earlier ones; forgetting >= 0 is the
largest accuracy a task ever had (before the last task) minus its final one.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["accuracy_matrix", "average_accuracy", "backward_transfer", "forgetting", "learning_accuracy", "mean_ci95"]


def accuracy_matrix(R: Any) -> np.ndarray:
    """``R`` as a float64 ``[T, T]`` array with entries in [0, 1]; raises ``ValueError`` otherwise."""
    try:
        a = np.asarray(R, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"R: expected a square [T, T] matrix of accuracies in [0, 1], got {R!r}") from None
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 1:
        raise ValueError(f"R: expected a square [T, T] matrix (T >= 1) of accuracies in [0, 1], got shape {a.shape}")
    if not np.all(np.isfinite(a)) or a.min() < 0.0 or a.max() > 1.0:
        raise ValueError("R: expected accuracies in [0, 1] (finite), got values outside it")
    return a


def average_accuracy(R: Any) -> float:
    r"""``ACC = 1/T sum_j R[T-1, j]``: the mean final accuracy over all tasks."""
    a = accuracy_matrix(R)
    return float(a[-1].mean())


def learning_accuracy(R: Any) -> float:
    r"""``LA = 1/T sum_j R[j, j]``: the mean accuracy on each task right after training on it (Riemer et al.
    2019); a low LA means the method did not learn the tasks, so its forgetting says nothing."""
    a = accuracy_matrix(R)
    return float(np.diag(a).mean())


def backward_transfer(R: Any) -> float:
    r"""``BWT = 1/(T-1) sum_{j<T-1} (R[T-1, j] - R[j, j])``; needs ``T >= 2``."""
    a = accuracy_matrix(R)
    T = a.shape[0]
    if T < 2:
        raise ValueError("R: backward transfer needs at least 2 tasks (a [T, T] matrix with T >= 2)")
    return float(np.mean([a[T - 1, j] - a[j, j] for j in range(T - 1)]))


def forgetting(R: Any) -> float:
    r"""``F = 1/(T-1) sum_{j<T-1} (max_{i<T-1} R[i, j] - R[T-1, j])`` (Chaudhry et al. 2018); needs ``T >= 2``."""
    a = accuracy_matrix(R)
    T = a.shape[0]
    if T < 2:
        raise ValueError("R: forgetting needs at least 2 tasks (a [T, T] matrix with T >= 2)")
    return float(np.mean([a[: T - 1, j].max() - a[T - 1, j] for j in range(T - 1)]))


#: two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    r"""Mean and half-width of its 95% confidence interval over seeds, ``t_{0.975, n-1} s / sqrt(n)``
    (Student's t; half-width ``nan`` for a single value)."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("values: expected at least one number")
    m = sum(v) / len(v)
    if len(v) < 2:
        return m, float("nan")
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
    t = _T975[len(v) - 2] if len(v) - 1 <= len(_T975) else 1.96
    return m, t * s / math.sqrt(len(v))
