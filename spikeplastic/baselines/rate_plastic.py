"""Rate-based plastic recurrent network of Miconi, Clune & Stanley 2018 ("Differentiable plasticity").

Re-implemented from the paper's equations (see ``docs/TASKS.md``); no code was copied.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from spikeplastic.functional.plasticity import hebb_step, oja_step
from spikeplastic.lean import hebb_rnn
from spikeplastic.lean.plan import check_options
from spikeplastic.protocol import EpisodeModel

from ._common import (
    ALPHA_MODES,
    AlphaMode,
    UnitIntervalScalar,
    alpha_parameter,
    check_choice,
    check_init_std,
    check_int,
    check_step_input,
    plastic_matvec,
)

__all__ = ["PlasticRNN", "PlasticRNNState", "check_plastic_rnn", "plastic_rnn_forward", "LeanPlasticRNN"]

RULES = ("hebb", "oja")
INPUT_MAPS = ("auto", "identity", "first", "linear")
INITS = ("normal", "uniform")
READOUTS = ("identity", "linear")


class PlasticRNNState(NamedTuple):
    """Per-episode state of :class:`PlasticRNN`.

    Attributes:
        y: ``[B, n_hidden]`` activations of the ordinary units at the previous step.
        hebb: ``[B, n_hidden, n_units]`` plastic trace ``H`` (post x pre), one per batch element
            (``[B, 0, 0]``, never updated, with ``plastic=False``).
    """

    y: Tensor
    hebb: Tensor


class PlasticRNN(EpisodeModel):
    r"""Fully recurrent tanh network with plastic recurrent weights (Miconi et al. 2018).

    With ``u_{t-1} = [y_{t-1}, 1]`` (the trailing 1 only when ``bias_unit=True``)::

        a_t = (W + alpha * H_{t-1}) u_{t-1} + P(x_t)
        y_t = tanh(a_t)                                 (clamp=False)
        y_t = tanh(a_t) * (1 - c_t) + P(x_t) * c_t      (clamp=True, c_t = [P(x_t) != 0])
        rule="hebb": H_t = (1 - eta) H_{t-1} + eta * outer(y_t, u_{t-1})
        rule="oja":  H_t[j, i] = H_{t-1}[j, i] + eta * y_t[j] * (u_{t-1}[i] - H_{t-1}[j, i] * y_t[j])
        out_t = y_t[:n_out]   (readout="identity")   or   R y_t + b   (readout="linear")

    ``P`` is the input map: the identity when every ordinary unit receives one input component
    (``n_in == n_hidden``, the memorisation tasks), ``"first"`` when the first ``n_in`` units
    receive one component each and the others none (``n_in <= n_hidden``: the original pattern
    code's added neurons, ``--nbaddneurons``), or a learned linear projection ``n_in -> n_hidden``
    without bias (``input_map="linear"``; ``"auto"`` picks identity iff ``n_in == n_hidden``).
    ``eta = sigmoid(eta_raw)`` is one learned scalar in (0, 1).

    ``plastic=False`` is the same network with plasticity removed, ``a_t = W u_{t-1} + P(x_t)``
    (no ``alpha``, ``eta`` or trace): the non-plastic control of Miconi et al. 2018
    (uber-research/differentiable-plasticity ``simple/full.py --type nonplastic``, line 137).

    The always-on bias unit (``bias_unit=True``) is the last of the ``n_units = n_hidden + 1``
    units; its activation is fixed at 1, so its outgoing weights ``W[:, -1] + alpha[:, -1] *
    H[:, -1]`` are learned (and plastic) biases. It has no incoming synapses, so ``W``,
    ``alpha`` and ``H`` have ``n_hidden`` rows and ``n_units`` columns (the pattern task's
    1001-unit net: ``PlasticRNN(1000, bias_unit=True)``, ``W`` ``[1000, 1001]``).

    Args:
        n_in: input size per step.
        n_out: output size; defaults to ``n_in`` with the identity readout, required with the
            linear one (A2C tasks: ``n_actions + 1``, policy logits then value).
        n_hidden: number of ordinary (non-bias) units; defaults to ``n_in``.
        rule: ``"hebb"`` (decaying Hebbian trace) or ``"oja"``.
        alpha: ``"per_synapse"`` (``alpha`` shaped like ``W``) or ``"shared"`` (one scalar).
        eta_init: initial ``eta`` in (0, 1). learn_eta: learn it (else a fixed buffer).
        w_init_std, alpha_init_std: ``W = w_init_std * N(0, 1)``, same for ``alpha`` (``init="normal"``);
            ``w_init_std * U[0, 1)`` with ``init="uniform"`` (the 2018 maze code, ``maze/maze.py``
            lines 94-95: all positive).
        bias_unit: add the always-on unit. clamp: clamp units to their nonzero inputs
            (image task; needs the identity or ``"first"`` input map).
        input_map: ``"auto"``, ``"identity"``, ``"first"`` or ``"linear"``.
        plastic: ``False`` removes ``alpha``, ``eta`` and the trace (see above).
        init: ``"normal"`` or ``"uniform"`` (see ``w_init_std``).
        readout: ``"identity"`` (first ``n_out`` units) or ``"linear"``.
        lean: ``"auto"`` | ``"on"`` | ``"off"``: whether a whole-sequence ``forward`` runs
            :func:`spikeplastic.baselines.lean_rnn.plastic_rnn_forward` (same outputs, final state and
            gradients; ``H`` is not stored per step) instead of the step loop; ``"auto"`` does
            when gradients are enabled and ``rule="hebb"`` (Oja has no lean op); see
            :class:`~spikeplastic.meta.protocol.EpisodeModel`.

    Shape:
        ``step``: ``x`` ``[B, n_in]`` -> ``out`` ``[B, n_out]``; ``forward``: ``[T, B, n_in]`` -> ``[T, B, n_out]``.

    The maze net of Miconi et al. 2018 (A2C, 200 Oja units) is
    ``PlasticRNN(n_obs, n_actions + 1, n_hidden=200, rule="oja", readout="linear")``.

    Example::

        >>> net = PlasticRNN(16, bias_unit=True)
        >>> out, state = net(torch.randn(10, 2, 16))      # [T, B, n_in]
        >>> out.shape, state.hebb.shape
        (torch.Size([10, 2, 16]), torch.Size([2, 16, 17]))
    """

    def __init__(
        self,
        n_in: int,
        n_out: int | None = None,
        *,
        n_hidden: int | None = None,
        rule: Literal["hebb", "oja"] = "hebb",
        alpha: AlphaMode = "per_synapse",
        eta_init: float = 0.01,
        learn_eta: bool = True,
        w_init_std: float = 0.01,
        alpha_init_std: float = 0.01,
        bias_unit: bool = False,
        clamp: bool = False,
        input_map: Literal["auto", "identity", "linear"] = "auto",
        readout: Literal["identity", "linear"] = "identity",
        lean: Literal["auto", "on", "off"] = "auto",
        plastic: bool = True,
        init: Literal["normal", "uniform"] = "normal",
    ) -> None:
        super().__init__()
        self.lean = lean
        if not isinstance(plastic, bool):
            raise TypeError(f"plastic must be a bool, got {type(plastic).__name__} {plastic!r}")
        self.plastic = plastic
        self.init = check_choice("init", init, INITS)
        self.n_in = check_int("n_in", n_in)
        self.n_hidden = self.n_in if n_hidden is None else check_int("n_hidden", n_hidden)
        self.rule = check_choice("rule", rule, RULES)
        self.alpha_mode = check_choice("alpha", alpha, ALPHA_MODES)
        self.readout_kind = check_choice("readout", readout, READOUTS)
        check_choice("input_map", input_map, INPUT_MAPS)
        if input_map == "auto":
            input_map = "identity" if self.n_in == self.n_hidden else "linear"
        if input_map == "identity" and self.n_in != self.n_hidden:
            raise ValueError(
                f"input_map='identity' needs n_in == n_hidden, got n_in={self.n_in}, "
                f"n_hidden={self.n_hidden}; use input_map='first' or 'linear'"
            )
        if input_map == "first" and self.n_in > self.n_hidden:
            raise ValueError(f"input_map='first' needs n_in <= n_hidden, got n_in={self.n_in}, n_hidden={self.n_hidden}")
        self.input_map = input_map
        self.bias_unit = bool(bias_unit)
        self.clamp = bool(clamp)
        if self.clamp and input_map == "linear":
            raise ValueError("clamp=True needs the identity or 'first' input map (input_map='identity' or 'first')")
        self.n_units = self.n_hidden + int(self.bias_unit)

        if readout == "identity":
            self.n_out = self.n_in if n_out is None else check_int("n_out", n_out)
            if self.n_out > self.n_hidden:
                raise ValueError(
                    f"readout='identity' reads the first n_out units, so n_out must be <= "
                    f"n_hidden={self.n_hidden}, got n_out={self.n_out}; use readout='linear'"
                )
            self.readout: nn.Linear | None = None
        else:
            if n_out is None:
                raise ValueError("n_out is required with readout='linear'")
            self.n_out = check_int("n_out", n_out)
            self.readout = nn.Linear(self.n_hidden, self.n_out)

        self.in_proj: nn.Linear | None = (
            nn.Linear(self.n_in, self.n_hidden, bias=False) if input_map == "linear" else None
        )
        shape = (self.n_hidden, self.n_units)
        uniform = self.init == "uniform"
        draw = torch.rand if uniform else torch.randn
        self.w = nn.Parameter(check_init_std(w_init_std, "w_init_std") * draw(shape))
        self.alpha: nn.Parameter | None = None
        self.eta: UnitIntervalScalar | None = None
        if plastic:
            self.alpha = alpha_parameter(alpha, shape, check_init_std(alpha_init_std, "alpha_init_std"), uniform=uniform)
            self.eta = UnitIntervalScalar(eta_init, learn=learn_eta, name="eta_init")

    def extra_repr(self) -> str:
        return (
            f"n_in={self.n_in}, n_out={self.n_out}, n_hidden={self.n_hidden}, rule={self.rule!r}, "
            f"alpha={self.alpha_mode!r}, bias_unit={self.bias_unit}, clamp={self.clamp}, "
            f"input_map={self.input_map!r}, readout={self.readout_kind!r}, plastic={self.plastic}, init={self.init!r}"
        )

    def initial_state(self, batch: int) -> PlasticRNNState:
        """Zero activations and zero plastic trace, on ``W``'s device and dtype."""
        check_int("batch", batch)
        like = self.w
        rows, cols = (self.n_hidden, self.n_units) if self.plastic else (0, 0)
        return PlasticRNNState(y=like.new_zeros(batch, self.n_hidden), hebb=like.new_zeros(batch, rows, cols))

    def _presynaptic(self, y: Tensor) -> Tensor:
        """``[y, 1]`` with the bias unit, else ``y``: ``[B, n_units]``."""
        if not self.bias_unit:
            return y
        return torch.cat([y, y.new_ones(y.shape[0], 1)], dim=1)

    def _input(self, x: Tensor) -> Tensor:
        """``P(x)``: ``[B, n_in]`` -> ``[B, n_hidden]``."""
        if self.in_proj is not None:
            return self.in_proj(x)
        if self.input_map == "first" and self.n_in < self.n_hidden:
            return torch.cat([x, x.new_zeros(x.shape[0], self.n_hidden - self.n_in)], dim=1)
        return x

    def lean_unsupported(self) -> str | None:
        if not self.plastic:
            return "PlasticRNN plastic=False has no lean op (no trace to reconstruct)"
        if self.rule != "hebb":
            return f"PlasticRNN rule={self.rule!r} has no lean op (only rule='hebb')"
        return None

    def lean_forward(self, inputs: Tensor, state: PlasticRNNState | None = None) -> tuple[Tensor, PlasticRNNState]:
        """``forward`` through :func:`plastic_rnn_forward` (``rule="hebb"`` only)."""
        reason = self.lean_unsupported()
        if reason is not None:
            raise ValueError(f"lean path: {reason}")
        return plastic_rnn_forward(self, inputs, state)

    def step(self, x: Tensor, state: PlasticRNNState) -> tuple[Tensor, PlasticRNNState]:
        check_step_input(x, self.n_in, state)
        pre = self._presynaptic(state.y)
        inp = self._input(x)
        if self.alpha is None or self.eta is None:
            drive = pre @ self.w.t()
        else:
            drive = plastic_matvec(self.w, self.alpha, state.hebb, pre)
        y = torch.tanh(drive + inp)
        if self.clamp:
            c = (inp != 0).to(y.dtype)
            y = y * (1.0 - c) + inp * c
        if self.eta is None:
            hebb = state.hebb
        elif self.rule == "hebb":
            hebb = hebb_step(state.hebb, pre, y, self.eta())
        else:
            hebb = oja_step(state.hebb, pre, y, self.eta())
        out = y[:, : self.n_out] if self.readout is None else self.readout(y)
        return out, PlasticRNNState(y=y, hebb=hebb)


# ---- the memory-lean path (spikeplastic.lean.hebb_rnn), also in spikeplastic.baselines.lean_rnn ----
def check_plastic_rnn(model: Any) -> None:
    """Raise ``ValueError`` unless ``model`` is a ``PlasticRNN`` the lean path runs (``rule="hebb"``)."""
    if not isinstance(model, PlasticRNN):
        raise TypeError(f"model must be a spikeplastic.baselines.PlasticRNN, got {type(model).__name__}")
    reason = model.lean_unsupported()
    if reason is not None:
        raise ValueError(f"lean path: {reason}")


def plastic_rnn_forward(
    model: Any,
    inputs: Tensor,
    state: Any = None,
    *,
    backend: str = "auto",
    checkpoint_every: int | None = None,
    reconstruct: str = "auto",
) -> tuple[Tensor, Any]:
    """``model(inputs, state)`` for a core ``PlasticRNN(rule="hebb")``, the lean way.

    ``inputs`` ``[T, B, n_in]`` -> outputs ``[T, B, n_out]`` and the final ``PlasticRNNState``, with
    the model's own parameters (input map, ``W``, ``alpha``, ``eta``, readout) and its gradients.
    """
    check_plastic_rnn(model)
    if not isinstance(inputs, Tensor) or inputs.dim() != 3:
        raise ValueError(f"inputs must be a tensor [T, B, n_in], got {getattr(inputs, 'shape', type(inputs).__name__)}")
    check_step_input(inputs[0], model.n_in)
    B = inputs.shape[1]
    if state is None:
        state = model.initial_state(B)
    exact = backend == "reference"

    def per_step(f: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
        # the reference backend maps step by step, like PlasticRNN.step (bit-identical GEMMs)
        return torch.stack([f(z[t]) for t in range(z.shape[0])]) if exact else f(z)

    if model.in_proj is not None:
        inp = per_step(model.in_proj, inputs)
    elif model.n_in < model.n_hidden:  # input_map="first": the added units get no input
        inp = torch.cat([inputs, inputs.new_zeros(*inputs.shape[:2], model.n_hidden - model.n_in)], dim=-1)
    else:
        inp = inputs
    Y, H = hebb_rnn(inp, model.w, model.alpha, model.eta(), state.y, state.hebb, bias_unit=model.bias_unit,
                    clamp=model.clamp, backend=backend, checkpoint_every=checkpoint_every, reconstruct=reconstruct)
    out = Y[:, :, : model.n_out] if model.readout is None else per_step(model.readout, Y)
    return out, PlasticRNNState(y=Y[-1], hebb=H)


class LeanPlasticRNN(nn.Module):
    """A core ``PlasticRNN(rule="hebb")`` run the lean way: ``LeanPlasticRNN(model)(inputs, state)``
    equals ``model(inputs, state)`` (same parameters: ``model`` is a submodule) with lean memory."""

    def __init__(self, model: Any, *, backend: str = "auto", checkpoint_every: int | None = None,
                 reconstruct: str = "auto") -> None:
        super().__init__()
        check_plastic_rnn(model)
        check_options(backend, reconstruct)
        self.model = model
        self.backend = backend
        self.checkpoint_every = checkpoint_every
        self.reconstruct = reconstruct

    @property
    def n_in(self) -> int:
        return self.model.n_in

    @property
    def n_out(self) -> int:
        return self.model.n_out

    def initial_state(self, batch: int) -> Any:
        return self.model.initial_state(batch)

    def forward(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        return plastic_rnn_forward(self.model, inputs, state, backend=self.backend,
                                   checkpoint_every=self.checkpoint_every, reconstruct=self.reconstruct)
