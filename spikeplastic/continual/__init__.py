"""Continual learning: task sequences, metrics, EWC and the benchmark harness (issue 14).

::

    from spikeplastic.continual import ContinualConfig, run_benchmark
    res = run_benchmark(ContinualConfig(task="continual-permuted-digits"), ["all"], seeds=[0, 1, 2], out="runs/cl")

The CLI: ``spikeplastic continual --task continual-digits --method ewc --seeds 0 1 2 --out DIR``.
"""
from .data import CONTINUAL_TASKS, ContinualTask, ContinualTaskSpec, TaskData, load_digits_split, make_continual_task
from .ewc import EWCAnchor, diagonal_fisher, ewc_penalty, make_anchor, task_log_probs
from .learners import MLP, PlasticLearner, RatePlasticLearner, SpikingPlasticLearner, repeat_state
from .metrics import accuracy_matrix, average_accuracy, backward_transfer, forgetting, learning_accuracy, mean_ci95
from .run import METHODS, QUICK, ContinualConfig, MethodSpec, meta_train, run_benchmark, run_method, summarise, write_results

__all__ = [
    "CONTINUAL_TASKS", "ContinualTask", "ContinualTaskSpec", "TaskData", "load_digits_split", "make_continual_task",
    "EWCAnchor", "diagonal_fisher", "ewc_penalty", "make_anchor", "task_log_probs",
    "MLP", "PlasticLearner", "RatePlasticLearner", "SpikingPlasticLearner", "repeat_state",
    "accuracy_matrix", "average_accuracy", "backward_transfer", "forgetting", "learning_accuracy", "mean_ci95",
    "METHODS", "QUICK", "ContinualConfig", "MethodSpec", "meta_train", "run_benchmark", "run_method", "summarise",
    "write_results",
]
