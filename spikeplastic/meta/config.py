"""Training configuration: a frozen, keyword-only dataclass validated on construction."""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..protocol import check_lean
from ..tasks import TASKS, TrainDefaults

__all__ = ["TrainConfig", "OUTER_LOOPS", "TASK_DEFAULTS", "TASK_DEFAULT_FIELDS", "MAX_LR", "recommended", "task_fields"]

#: Largest accepted Adam learning rate. Adam moves every parameter by up to about ``lr`` per step,
#: so a larger value can only blow the parameters up (and past ~3e37 overflows float32 inside Adam).
MAX_LR = 1.0

#: Per-task outer-loop defaults, ``{task id: {field: value}}``, built at import from each task's
#: :class:`~spikeplastic.tasks.TrainDefaults` in the task registry (:data:`spikeplastic.tasks.TASKS`,
#: where they are set, with their sources): ``lr``, ``batch`` and the :data:`TASK_DEFAULT_FIELDS`
#: the task sets (``clip: None`` = no clipping). Per-model replacements (``TrainDefaults.models``)
#: are applied by :func:`recommended` / :func:`task_fields` given a model. Used by the CLI and
#: :mod:`.compare` where not given explicitly; :class:`TrainConfig` itself has task-independent defaults.
TASK_DEFAULTS: Mapping[str, Mapping[str, float | int | str | None]] = {
    name: spec.train.as_dict() for name, spec in TASKS.items()
}

#: the :data:`TASK_DEFAULTS` keys besides ``lr``/``batch`` (TrainConfig fields)
TASK_DEFAULT_FIELDS = ("clip", "entropy_kind", "entropy_coef", "value_coef", "adam_eps", "lr_decay", "lr_decay_every")


def recommended(task: str, model: str | None = None) -> dict[str, float | int | str | None]:
    """The defaults of ``task`` (for ``model`` where the task sets model-specific ones), as
    :class:`TrainConfig` fields; ``TrainDefaults()``'s ``{lr: 3e-4, batch: 1}`` for an unknown task."""
    spec = TASKS.get(task)
    return (spec.train if spec is not None else TrainDefaults()).as_dict(model)


def task_fields(task: str, model: str | None = None) -> dict[str, float | int | str | None]:
    """The :data:`TASK_DEFAULT_FIELDS` that ``task`` sets (for ``model``; often none)."""
    return {k: v for k, v in recommended(task, model).items() if k in TASK_DEFAULT_FIELDS}


#: values of :attr:`TrainConfig.outer`
OUTER_LOOPS = ("bptt", "es", "eprop")


def _es_params(v: Any) -> str | tuple[str, ...]:
    """``es_params`` checked: ``"all"``, ``"rule"`` or a non-empty sequence of non-empty prefixes (a tuple)."""
    if isinstance(v, str):
        if v in ("all", "rule"):
            return v
        raise ValueError(f"es_params: expected 'all', 'rule' or a list of parameter-name prefixes, got the string "
                         f"{v!r} (a single prefix goes in a list: [{v!r}])")
    if isinstance(v, (list, tuple)) and v and all(isinstance(p, str) and p for p in v):
        return tuple(v)
    raise ValueError(f"es_params: expected 'all', 'rule' or a non-empty list of non-empty parameter-name prefixes, "
                     f"got {v!r}")


def _int(name: str, v: Any, minimum: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(v).__name__} {v!r}")
    if v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v}")


def _float(name: str, v: Any, *, positive: bool = False) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(v).__name__} {v!r}")
    if not math.isfinite(v) or (positive and v <= 0) or v < 0:
        raise ValueError(f"{name} must be a finite float {'> 0' if positive else '>= 0'}, got {v!r}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything a meta-training run needs; unknown keys raise ``TypeError``.

    Attributes:
        task: task id for :func:`spikeplastic.tasks.make_task` (or a label when the task object
            is passed to the trainer directly).
        model: model id for :func:`spikeplastic.models.make_model` (or a label, likewise).
        episodes: total number of outer steps (each one batch of ``batch`` episodes).
        batch: episodes per outer step (with ``torchrun``: the *total* over all processes).
        lr: Adam learning rate, in ``(0, MAX_LR]`` (:data:`MAX_LR` = 1). weight_decay: Adam's L2 coefficient.
        lr_decay, lr_decay_every: step decay of the learning rate, ``lr * lr_decay ** (k //
            lr_decay_every)`` at outer step ``k`` (0-based; ``torch.optim.lr_scheduler.StepLR``'s
            schedule, computed from the step count so that a resumed run continues it exactly).
            ``lr_decay_every=0`` (default): constant ``lr``. ``lr_decay`` in ``(0, 1]``.
        clip: max global gradient norm (``torch.nn.utils.clip_grad_norm_``); ``None`` disables.
        seed: ``torch.manual_seed(seed)`` before the model is built; the task generator is
            ``torch.Generator().manual_seed(seed)``; A2C actions use a second generator
            seeded ``seed + 1_000_003``; the periodic evaluation (``eval_every``) uses fresh
            generators seeded ``seed + 2_000_003`` (``+1`` for actions) and the held-out evaluation
            (:func:`spikeplastic.meta.evaluate`) ``seed + 3_000_017`` (``+1``). A task config with
            a ``split_seed`` field gets ``seed`` there unless ``task_kwargs`` sets it
            (:func:`spikeplastic.meta.build.run_task_kwargs`).
        device: ``"cpu"``, ``"cuda"`` (error without a GPU), ``"cuda:N"`` or ``"auto"``.
        out: output folder (``metrics.jsonl``, ``checkpoint.pt``); ``None`` writes nothing.
        checkpoint_every: write ``out/checkpoint.pt`` every this many episodes (0: only at the end).
        eval_every: evaluate on ``eval_batch`` fixed episodes every this many episodes (0: never).
        eval_batch: episodes per evaluation.
        log_every: write a metrics line every this many episodes (skipped steps are always logged).
        progress: show a tqdm bar (also off when stderr is not a TTY or ``$CI`` is set).
        value_coef, entropy_coef, entropy_kind: A2C loss coefficients and the diversity penalty
            (``"shannon"`` or ``"simpson"``; RL tasks only; see :mod:`.episodes`).
        adam_eps: Adam's ``eps``.
        task_kwargs: config overrides passed to ``make_task`` (e.g. ``{"n_bits": 100}``).
        model_kwargs: keyword arguments passed to ``make_model`` (e.g. ``{"n_hidden": 50}``;
            not ``lean``, which is the field below).
        lean: ``"auto"`` | ``"on"`` | ``"off"``, set on the model by the trainer (it replaces the
            model's own setting): supervised episodes run the model's memory-lean whole-episode
            op (:mod:`spikeplastic.lean`) -- ``"auto"``: when the model has one (``snn-stdp``,
            ``snn-static``, ``rate-hebb``) and only with gradients (evaluation keeps the step loop);
            ``"on"``: always, else ``ValueError`` at construction of the trainer (also for RL tasks,
            which step one observation at a time); ``"off"``: the per-step loop. Results agree to
            rounding; not a resume field. Without gradients (evaluation, ES) ``"auto"`` runs the
            fused no-grad forward where the model has one (:mod:`spikeplastic.lean.population`).
        outer: the outer loop: ``"bptt"`` (default: backpropagation through whole episodes) or ``"es"``
            (evolution strategies, :mod:`spikeplastic.meta.es`: antithetic Gaussian perturbations,
            centred-rank fitness shaping, Adam on ``g = 1/(P sigma) sum_i u_i eps_i``; forward passes only).
            With ``outer="es"``, ``batch`` is the number of episodes *each member* runs per outer step.
            ``"eprop"``: forward-mode online approximate gradients (:mod:`spikeplastic.meta.eprop`:
            eligibility traces of every meta-parameter carried forward in time, the recurrent
            spike-to-spike paths ignored; memory independent of the episode length; supervised tasks and
            the models of :data:`~spikeplastic.meta.eprop.EPROP_MODELS`, checked by the trainer).
        es_population: members ``P`` per ES outer step (even: antithetic pairs; with ``torchrun`` also a
            multiple of the number of processes, which split the population).
        es_sigma: the perturbations' standard deviation ``sigma`` (in raw-parameter units), > 0.
        es_params: which trainable parameters ES perturbs and trains: ``"all"``, ``"rule"`` (those of
            the plasticity rules) or a sequence of parameter-name prefixes (e.g.
            ``["network.projs.hidden_to_hidden."]``); the others stay as initialised.
    """

    task: str
    model: str
    episodes: int = 1000
    batch: int = 1
    lr: float = 3e-4
    lr_decay: float = 1.0
    lr_decay_every: int = 0
    weight_decay: float = 0.0
    clip: float | None = 10.0
    seed: int = 0
    device: str = "cpu"
    out: str | None = None
    checkpoint_every: int = 100
    eval_every: int = 0
    eval_batch: int = 8
    log_every: int = 1
    progress: bool = True
    value_coef: float = 0.1
    entropy_coef: float = 0.03
    entropy_kind: str = "shannon"
    adam_eps: float = 1e-8
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    lean: str = "auto"
    outer: str = "bptt"
    es_population: int = 32
    es_sigma: float = 0.02
    es_params: str | tuple[str, ...] = "all"

    def lr_at(self, step: int) -> float:
        """The learning rate of outer step ``step`` (0-based) under the step decay."""
        if not self.lr_decay_every:
            return self.lr
        return self.lr * self.lr_decay ** (step // self.lr_decay_every)

    def __post_init__(self) -> None:
        for name in ("task", "model"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise TypeError(f"{name} must be a non-empty str, got {v!r}")
        _int("episodes", self.episodes, 1)
        _int("batch", self.batch, 1)
        _float("lr", self.lr, positive=True)
        if self.lr > MAX_LR:
            raise ValueError(f"lr: expected a finite float in (0, {MAX_LR:g}] (Adam moves each parameter by up to "
                             f"about lr per step), got {self.lr!r}")
        _float("lr_decay", self.lr_decay, positive=True)
        if self.lr_decay > 1.0:
            raise ValueError(f"lr_decay: expected a factor in (0, 1] (lr * lr_decay every lr_decay_every steps), "
                             f"got {self.lr_decay!r}")
        _int("lr_decay_every", self.lr_decay_every, 0)
        _float("weight_decay", self.weight_decay)
        if self.clip is not None:
            _float("clip", self.clip, positive=True)
        _int("seed", self.seed, 0)
        if not isinstance(self.device, str) or not (
            self.device in ("cpu", "cuda", "auto") or (self.device.startswith("cuda:") and self.device[5:].isdigit())
        ):
            raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        if self.out is not None and not isinstance(self.out, str):
            raise TypeError(f"out must be a folder path (str) or None, got {type(self.out).__name__}")
        _int("checkpoint_every", self.checkpoint_every, 0)
        _int("eval_every", self.eval_every, 0)
        _int("eval_batch", self.eval_batch, 1)
        _int("log_every", self.log_every, 1)
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be a bool, got {self.progress!r}")
        _float("value_coef", self.value_coef)
        _float("entropy_coef", self.entropy_coef)
        if self.entropy_kind not in ("shannon", "simpson"):
            raise ValueError(f"entropy_kind must be 'shannon' or 'simpson', got {self.entropy_kind!r}")
        _float("adam_eps", self.adam_eps, positive=True)
        for name in ("task_kwargs", "model_kwargs"):
            v = getattr(self, name)
            if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
                raise TypeError(f"{name} must be a mapping with str keys, got {v!r}")
            object.__setattr__(self, name, dict(v))
        check_lean(self.lean)
        if "lean" in self.model_kwargs:
            raise ValueError("model_kwargs must not hold 'lean': set TrainConfig.lean (CLI: --lean) instead")
        if self.outer not in OUTER_LOOPS:
            raise ValueError(f"outer: expected one of {list(OUTER_LOOPS)} (backpropagation through time, evolution "
                             f"strategies or e-prop), got {self.outer!r}")
        _int("es_population", self.es_population, 2)
        if self.es_population % 2:
            raise ValueError(f"es_population: expected an even int >= 2 (members come in antithetic pairs "
                             f"theta +- sigma eps), got {self.es_population}")
        _float("es_sigma", self.es_sigma, positive=True)
        object.__setattr__(self, "es_params", _es_params(self.es_params))

    def to_dict(self) -> dict[str, Any]:
        """Plain-python dict (JSON-able when the kwargs are)."""
        d = dataclasses.asdict(self)
        if isinstance(self.es_params, tuple):
            d["es_params"] = list(self.es_params)
        d["task_kwargs"] = dict(self.task_kwargs)
        d["model_kwargs"] = dict(self.model_kwargs)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TypeError(f"unknown TrainConfig key(s) {unknown}; valid keys: {sorted(names)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)
