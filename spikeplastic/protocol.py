"""Interfaces shared by every task and every model on the meta-training harness (the episode protocol).

This module sits below the tasks, the baselines, the models and the trainer (all of which use it)
and imports nothing of theirs: only torch and :mod:`spikeplastic._validation`.
:mod:`spikeplastic.meta` re-exports its names (and :mod:`spikeplastic.meta.protocol`, the old
home, still does).

A *task* generates batched episodes; a *model* is stepped through an episode one time step
at a time, so supervised tasks (a fixed input sequence) and RL tasks (inputs that depend on
the agent's actions) drive models the same way:

    state = model.initial_state(batch)
    for t in range(T):
        out, state = model.step(x[t], state)      # x[t]: [B, n_in] -> out: [B, n_out]

Models own all learnable parameters (fixed weights, plasticity coefficients, rule parameters,
modulation weights); the plastic part of a weight matrix lives in ``state`` (per episode, per
batch element), never in ``.data``.

Whole-sequence forward and the lean path: ``model(inputs)`` (supervised episodes) runs the step
loop above, unless the model has a memory-lean whole-episode op (:mod:`spikeplastic.lean`) and
its ``lean`` setting selects it (:meth:`EpisodeModel.use_lean`): ``"auto"`` (default) = the lean
op when the model qualifies and gradients are enabled, else the step loop; ``"on"`` = the lean op
or a ``ValueError`` saying why the model does not qualify; ``"off"`` = always the step loop.
Models with a lean op: :class:`~spikeplastic.models.SpikingModel` (networks accepted by
:func:`spikeplastic.lean.check_network`) and :class:`~spikeplastic.baselines.PlasticRNN`
(``rule="hebb"``). RL episodes call ``step`` only, so they always use the step loop.
Without gradients, ``"auto"`` runs the model's fused no-grad forward where it has one
(:meth:`EpisodeModel.nograd_forward`: :class:`~spikeplastic.models.SpikingModel`, through
:mod:`spikeplastic.lean.population`), else the step loop.

Populations of parameter sets (evolution strategies, :mod:`spikeplastic.meta.es`): ``params``
maps parameter names (as ``named_parameters``) to ``[P, *shape]`` tensors, one set per *member*;
parameters not named are the model's own. :meth:`EpisodeModel.population_forward` (supervised)
and :meth:`~EpisodeModel.population_initial_state` / :meth:`~EpisodeModel.population_step` (RL)
run every member on ``B`` episodes without autograd: by default one member after another
(:func:`torch.func.functional_call`); models with fused kernels run all ``P x B`` episodes in one batch.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ._validation import check_state_batch, check_tensor

__all__ = ["Episode", "EpisodeModel", "SupervisedTask", "RLTask", "Task", "run_supervised", "LEAN_MODES", "check_lean",
           "map_members", "population_size"]

#: values of the ``lean`` setting (:attr:`EpisodeModel.lean`, :class:`~spikeplastic.meta.config.TrainConfig`, ``--lean``);
#: the setting belongs to the model interface, so its check lives here too
LEAN_MODES = ("auto", "on", "off")


def check_lean(value: Any, name: str = "lean") -> str:
    """``value`` if it is one of :data:`LEAN_MODES`, else ``ValueError`` naming ``name``."""
    if not isinstance(value, str) or value not in LEAN_MODES:
        raise ValueError(f"{name} must be one of {list(LEAN_MODES)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Episode:
    """A batch of supervised episodes.

    Attributes:
        inputs: ``[T, B, n_in]`` float rate-coded inputs (spiking models encode them).
        targets: task-specific target tensor (e.g. ``[B, n_out]`` for the final step).
        mask: optional ``[T, B]`` bool, steps whose outputs enter the loss.
        info: free-form extras (e.g. which pattern was degraded), tensors or python values.
    """

    inputs: Tensor
    targets: Tensor
    mask: Tensor | None = None
    info: dict[str, Any] | None = None


class EpisodeModel(nn.Module, ABC):
    """A model that can be stepped through an episode (rate or spiking, plastic or not).

    ``lean`` (``"auto"`` | ``"on"`` | ``"off"``, default ``"auto"``; validated on assignment)
    chooses how :meth:`forward` runs a whole sequence (module docstring). Models with a lean
    whole-episode op override :meth:`lean_unsupported` and :meth:`lean_forward`.
    """

    n_in: int
    n_out: int

    @property
    def lean(self) -> str:
        """The lean-path setting: ``"auto"`` | ``"on"`` | ``"off"``."""
        return self.__dict__.get("_lean_mode", "auto")

    @lean.setter
    def lean(self, value: str) -> None:
        self.__dict__["_lean_mode"] = check_lean(value)

    def lean_unsupported(self) -> str | None:
        """Why this model's whole-sequence forward cannot run a lean op (``None``: it can)."""
        return (f"{type(self).__name__} has no memory-lean whole-episode op (only SpikingModel with a "
                "supported network and PlasticRNN(rule='hebb') have one)")

    def lean_forward(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """:meth:`forward` through the model's lean op (same outputs, final state and gradients)."""
        raise ValueError(f"lean path: {self.lean_unsupported()}")

    def nograd_unsupported(self) -> str | None:
        """Why this model has no fused no-grad forward (``None``: it has one)."""
        return f"{type(self).__name__} has no fused no-grad forward"

    def nograd_forward(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """:meth:`forward` without autograd through fused kernels (same outputs to rounding, same final state)."""
        raise ValueError(f"no-grad forward: {self.nograd_unsupported()}")

    def use_lean(self, mode: str | None = None) -> bool:
        """Whether a whole-sequence forward now runs :meth:`lean_forward` under ``mode`` (default ``self.lean``).

        ``"off"``: never. ``"auto"``: when the model qualifies and ``torch.is_grad_enabled()``.
        ``"on"``: always; ``ValueError`` (naming ``lean`` and the reason) when the model does not qualify.
        """
        mode = self.lean if mode is None else check_lean(mode)
        if mode == "off":
            return False
        reason = self.lean_unsupported()
        if reason is not None:
            if mode == "on":
                raise ValueError(f"lean='on' but {type(self).__name__} cannot use the lean path: {reason}")
            return False
        return mode == "on" or torch.is_grad_enabled()

    @abstractmethod
    def initial_state(self, batch: int) -> Any:
        """Fresh per-episode state (plastic weights start at zero) on the model's device/dtype."""

    @abstractmethod
    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One time step: ``x`` is ``[B, n_in]``; returns ``([B, n_out], new_state)``."""

    def forward(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Run a whole input sequence ``[T, B, n_in]``; returns outputs ``[T, B, n_out]`` and the final state.

        Runs :meth:`lean_forward` instead of the step loop when :meth:`use_lean` says so.
        ``T`` and ``B`` must be >= 1 (``ValueError`` naming ``inputs`` otherwise); a given ``state``
        must be one for ``B`` samples (``ValueError`` naming ``state`` otherwise).
        """
        check_tensor("inputs", inputs, ndim=3, last_dim=self.n_in, finite=False, nonempty=True)
        if state is not None:
            check_state_batch("state", state, inputs.shape[1])
        if self.use_lean():
            return self.lean_forward(inputs, state)
        if self.lean == "auto" and not torch.is_grad_enabled() and self.nograd_unsupported() is None:
            return self.nograd_forward(inputs, state)
        if state is None:
            state = self.initial_state(inputs.shape[1])
        outs = []
        for t in range(inputs.shape[0]):
            y, state = self.step(inputs[t], state)
            outs.append(y)
        return torch.stack(outs), state

    # ---- populations of parameter sets (module docstring) --------------------------------------------
    def population_forward(self, params: Mapping[str, Tensor], inputs: Tensor) -> Tensor:
        """Outputs ``[T, P, B, n_out]`` of every member of ``params`` on the same ``inputs`` ``[T, B, n_in]``,
        without autograd (default: member by member through :meth:`forward`)."""
        P = population_size(self, params)
        with torch.no_grad():
            outs = [torch.func.functional_call(self, _member(params, i), (inputs,))[0] for i in range(P)]
        return torch.stack(outs, dim=1)

    def population_initial_state(self, params: Mapping[str, Tensor], batch: int) -> Any:
        """State for :meth:`population_step`: ``batch`` episodes per member (default: one state per member)."""
        P = population_size(self, params)
        with torch.no_grad():
            return [_call(self, "initial_state", _member(params, i), batch) for i in range(P)]

    def population_step(self, params: Mapping[str, Tensor], x: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One step of every member: ``x`` ``[P, B, n_in]`` -> ``[P, B, n_out]`` and the new state (``params``
        as given to :meth:`population_initial_state`); default: member by member through :meth:`step`."""
        P = population_size(self, params)
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[0] != P:
            raise ValueError(f"x: expected [P={P}, B, n_in], got {tuple(getattr(x, 'shape', ()))}")
        outs, new = [], []
        with torch.no_grad():
            for i in range(P):
                y, s = _call(self, "step", _member(params, i), x[i], state[i])
                outs.append(y)
                new.append(s)
        return torch.stack(outs), new


class _Bound(nn.Module):
    """Calls ``getattr(model, method)``; lets :func:`torch.func.functional_call` run any method of ``model``
    (its parameters are ``model.<name>`` here)."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, *args: Any) -> Any:
        return getattr(self.model, self.method)(*args)


def _member(params: Mapping[str, Tensor], i: int) -> dict[str, Tensor]:
    return {k: v[i] for k, v in params.items()}


def _call(model: nn.Module, method: str, params: Mapping[str, Tensor], *args: Any) -> Any:
    """``model.<method>(*args)`` with ``params`` (names as ``named_parameters``) in place of the model's own."""
    return torch.func.functional_call(_Bound(model, method), {f"model.{k}": v for k, v in params.items()}, args)


def population_size(model: nn.Module, params: Mapping[str, Tensor]) -> int:
    """``P``, the leading size shared by every tensor of ``params``; ``ValueError`` naming the parameter
    whose name the model lacks, whose shape is not ``[P, *shape]``, or whose ``P`` differs."""
    if not isinstance(params, Mapping) or not params:
        raise ValueError("params: expected a non-empty mapping {parameter name: [P, *shape] tensor}")
    own = dict(model.named_parameters())
    P = None
    for k, v in params.items():
        if k not in own:
            raise ValueError(f"params[{k!r}]: the model has no parameter of that name (e.g. {list(own)[:3]})")
        if not isinstance(v, Tensor) or tuple(v.shape[1:]) != tuple(own[k].shape) or v.dim() != own[k].dim() + 1:
            raise ValueError(f"params[{k!r}]: expected [P, {', '.join(map(str, own[k].shape))}] (one set per member), "
                             f"got {tuple(getattr(v, 'shape', ()))}")
        if P is None:
            P = int(v.shape[0])
        elif int(v.shape[0]) != P:
            raise ValueError(f"params[{k!r}]: expected P={P} members like the other entries, got {int(v.shape[0])}")
    assert P is not None
    if P < 1:
        raise ValueError("params: expected at least one member (P >= 1)")
    return P


def map_members(model: nn.Module, fn: Callable[[], Any], params: Mapping[str, Tensor], *, vmap: bool = True) -> Any:
    """``fn()`` (a bound method of ``model`` taking no argument, returning a (nested) tuple of tensors)
    evaluated with each member's parameters, stacked on a new leading axis ``[P, ...]``.

    With ``vmap`` all members run in one :func:`torch.func.vmap`; functions with data-dependent Python
    control flow (e.g. the Loihi grid's ``float(max|w|)``) cannot, so a ``RuntimeError`` there falls
    back to one member after another (as does ``vmap=False``)."""
    P = population_size(model, params)
    name = getattr(fn, "__name__", None)
    if name is None or getattr(fn, "__self__", None) is not model:
        raise TypeError("map_members: fn must be a bound method of model (e.g. model.member_values)")

    shape: list[Any] = []

    def one(p: Mapping[str, Tensor]) -> tuple[Tensor, ...]:
        tree = _call(model, name, p)
        leaves: list[Tensor] = []
        shape[:] = [_flatten(tree, leaves)]
        return tuple(leaves)  # vmap returns tensors only: None fields are put back by _unflatten

    with torch.no_grad():
        if vmap and not model.__dict__.get("_members_without_vmap", False):
            try:
                leaves = torch.func.vmap(one)(dict(params))
                return _unflatten(shape[0], iter(leaves))
            except RuntimeError:  # data-dependent control flow: remember it, member by member from now on
                model.__dict__["_members_without_vmap"] = True
        outs = [one(_member(params, i)) for i in range(P)]
    stacked = [torch.stack(z) for z in zip(*outs)]
    return _unflatten(shape[0], iter(stacked))


def _flatten(tree: Any, leaves: list[Tensor]) -> Any:
    """The structure of ``tree`` (tensors replaced by ``0``, their slot in ``leaves``, appended there)."""
    if isinstance(tree, Tensor):
        leaves.append(tree)
        return 0
    if isinstance(tree, tuple):
        parts = tuple(_flatten(t, leaves) for t in tree)
        return (type(tree) if hasattr(tree, "_fields") else tuple, parts)
    return ("const", tree)


def _unflatten(shape: Any, leaves: Any) -> Any:
    if shape == 0:
        return next(leaves)
    kind, parts = shape
    if kind == "const":
        return parts
    items = [_unflatten(p, leaves) for p in parts]
    return kind(*items) if kind is not tuple else tuple(items)


class SupervisedTask(ABC):
    """A task whose inputs do not depend on the model's outputs."""

    name: str
    kind: Literal["supervised"] = "supervised"
    n_in: int
    n_out: int
    T: int
    #: metric value that counts as "solved" (compared with ``higher_is_better``)
    success_threshold: float
    higher_is_better: bool = False
    #: The disjoint data splits (sets of classes or images) that ``sample(..., split=...)`` accepts,
    #: ``("train", "test")`` where the task has them: the trainer samples ``"train"`` only, held-out
    #: evaluation ``"test"``. Empty (default): every episode draws new random data, and ``sample``
    #: takes no ``split`` (held out then means episodes from a seed stream training never uses).
    data_splits: tuple[str, ...] = ()
    #: ``True`` when one episode's metric is 0 or 1 (one answer, right or wrong) and the batch metric
    #: is their mean, as for a query accuracy: a held-out evaluation then reports a binomial interval.
    metric_is_binary: bool = False

    @abstractmethod
    def sample(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Episode:
        """Draw ``batch`` independent episodes (deterministic given ``generator``)."""

    def split_items(self, split: str) -> tuple[str, ...]:
        """Names of the data items (classes, source images, files) that ``split`` draws from; ``()``
        for a task without :attr:`data_splits`. Tasks with data splits override it."""
        return ()

    def describe_split(self, split: str) -> str:
        """One line saying what ``split`` holds (tasks with :attr:`data_splits` say more)."""
        if not self.data_splits:
            return "no data split: every episode draws new random data"
        items = self.split_items(split)
        shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
        return f"{split} split: {len(items)} items ({shown})"

    @abstractmethod
    def loss(self, outputs: Tensor, episode: Episode) -> Tensor:
        """Scalar training loss from model outputs ``[T, B, n_out]``."""

    @abstractmethod
    def metric(self, outputs: Tensor, episode: Episode) -> float:
        """Task metric (e.g. bit error fraction, accuracy) for logging and comparison."""


class RLTask(ABC):
    """A task whose observations depend on the agent's actions (trained with A2C by the harness).

    The environment is batched and lives in torch tensors:
        obs = env.reset(batch, generator, device)          # [B, n_in]
        obs, reward, done = env.step(action)              # action: [B] long; reward: [B]
    The model's output is ``[B, n_actions + 1]``: policy logits then a value estimate.
    """

    name: str
    kind: Literal["rl"] = "rl"
    n_in: int
    n_actions: int
    T: int
    gamma: float
    success_threshold: float
    higher_is_better: bool = True
    #: index of the observation entry holding the previous step's reward (``None``: not observed);
    #: reward-driven rules (``snn-np``) read their third factor there
    reward_input: int | None = None

    @property
    def n_out(self) -> int:
        return self.n_actions + 1

    @abstractmethod
    def reset(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
        """Start ``batch`` new episodes; returns the first observation ``[B, n_in]``."""

    @abstractmethod
    def step(self, action: Tensor) -> tuple[Tensor, Tensor]:
        """Apply actions ``[B]``; returns ``(next_obs [B, n_in], reward [B])``."""


Task = SupervisedTask | RLTask


def run_supervised(model: EpisodeModel, episode: Episode) -> Tensor:
    """Step ``model`` through ``episode.inputs``; returns outputs ``[T, B, n_out]``."""
    outputs, _ = model(episode.inputs)
    return outputs
