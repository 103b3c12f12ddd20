r"""Learners of the continual benchmark: a backprop MLP and two plastic learners whose in-lifetime rule learns.

- :class:`MLP`: ``logits = W_2 tanh(W_1 x + b_1) + b_2`` (``finetune``, ``ewc``, ``multitask``).
- :class:`RatePlasticLearner`: ``z = tanh(W_e x + b_e)`` (:class:`~spikeplastic.embedding.DenseEmbedding`) into a
  :class:`~spikeplastic.PlasticLinear` readout ``logits = (w + alpha * H) z`` with ``w = 0`` fixed (all of the
  readout's knowledge is in ``H``) and Oja's rule driven by the teacher: on a labelled example the output is
  clamped to ``one_hot(y)``, so ``H[t] = (1 - d) H[t-1] + eta * o (z - H[t-1] o)``, ``o = one_hot(y)``
  (:class:`~spikeplastic.rules.Oja`; ``d`` the projection's ``decay`` of ``H`` towards 0, i.e. of the weight
  towards ``w``).
- :class:`SpikingPlasticLearner`: :class:`~spikeplastic.snn_oneshot.SpikingOneShot` with the dense embedding:
  features spike-encoded by integrate-and-fire neurons into 10 LIF output neurons through plastic synapses
  ``w + alpha * H`` learning by pair STDP while one-hot teaching spikes make the labelled neuron fire; a test
  example's logits are the output neurons' mean synaptic current (``H`` decays towards 0 at rate ``decay``
  per spiking step).

A plastic learner's state is per batch element (a batch of independent learners); its lifetime is one
state (batch 1) presented the task sequence example by example; :func:`repeat_state` copies it to score many
test examples at once without letting them change ``H``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_int, check_number
from ..embedding import DenseEmbedding
from ..plastic import PlasticLinear, PlasticState
from ..rules import Oja
from ..snn_oneshot import SpikingOneShot, SpikingOneShotState

__all__ = ["MLP", "PlasticLearner", "RatePlasticLearner", "SpikingPlasticLearner", "repeat_state"]


class MLP(nn.Module):
    r"""``logits = W_2 tanh(W_1 x + b_1) + b_2``. Shape: ``[N, n_in] -> [N, n_out]``."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(check_int("n_in", n_in), check_int("n_hidden", n_hidden))
        self.out = nn.Linear(n_hidden, check_int("n_out", n_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.tanh(self.hidden(x)))


def repeat_state(state: Any, n: int) -> Any:
    """Every tensor of ``state`` (nested named tuples, tuples, dicts; batch first) repeated ``n`` times per
    batch element along dim 0 (``repeat_interleave``): element ``b`` becomes elements ``b*n .. b*n + n-1``."""
    n = check_int("n", n)
    if isinstance(state, Tensor):
        return state.repeat_interleave(n, dim=0)
    if isinstance(state, dict):
        return {k: repeat_state(v, n) for k, v in state.items()}
    if isinstance(state, tuple):
        items = [repeat_state(v, n) for v in state]
        return type(state)(*items) if hasattr(state, "_fields") else tuple(items)
    return state


class PlasticLearner(nn.Module, ABC):
    """A batch of learners whose knowledge of the classes lives in a plastic state (abstract).

    ``learn(state, x [S, B, n_in], y [S, B])`` presents ``S`` labelled examples in order to each of the ``B``
    learners; ``logits(state, x [B, n_in])`` scores one unlabelled example per learner without changing it.
    """

    n_classes: int

    @abstractmethod
    def initial_state(self, batch: int) -> Any:
        """``batch`` learners that know nothing yet (zero plastic part)."""

    @abstractmethod
    def learn(self, state: Any, x: Tensor, y: Tensor) -> Any:
        """The state after presenting ``x`` ``[S, B, n_in]`` with labels ``y`` ``[S, B]`` in order."""

    @abstractmethod
    def logits(self, state: Any, x: Tensor) -> Tensor:
        """Logits ``[B, n_classes]`` of ``x`` ``[B, n_in]``, one example per learner (the state is not changed)."""

    def _check(self, x: Tensor, y: Tensor | None, n_in: int) -> None:
        if not isinstance(x, Tensor) or x.shape[-1] != n_in:
            raise ValueError(f"x: expected [..., {n_in}], got {tuple(getattr(x, 'shape', ()))}")
        if y is not None and (tuple(y.shape) != tuple(x.shape[:-1]) or y.dtype != torch.long):
            raise ValueError(f"y: expected int64 labels of shape {tuple(x.shape[:-1])}, got {y.dtype} {tuple(y.shape)}")


class RatePlasticLearner(PlasticLearner):
    r"""Dense tanh embedding -> plastic readout learning by Oja's rule from a clamped teacher (module docstring).

    Per labelled example ``(x, y)``: ``z = tanh(W_e x + b_e)``, ``o = one_hot(y)``,
    ``H <- (1 - decay) H + eta * o (z - H o)`` (:class:`~spikeplastic.PlasticLinear` with
    :class:`~spikeplastic.rules.Oja`); scoring: ``logits = alpha * H z`` (``w = 0``, not learned).
    Learned in the first stage: ``W_e, b_e``, per-synapse ``alpha``, ``eta``; ``decay`` fixed.
    """

    def __init__(self, n_in: int, n_classes: int, *, channels: int = 100, eta_init: float = 0.1,
                 alpha_init: float = 1.0, decay: float = 0.0) -> None:
        super().__init__()
        self.n_in = check_int("n_in", n_in)
        self.n_classes = check_int("n_classes", n_classes, minimum=2)
        self.embed = DenseEmbedding(n_in, channels=channels)
        self.readout = PlasticLinear(channels, n_classes, rule=Oja(check_number("eta_init", eta_init)),
                                     alpha="per_synapse", alpha_init=alpha_init, decay=check_number("decay", decay),
                                     weight=torch.zeros(n_classes, channels), learn_weight=False)

    def initial_state(self, batch: int) -> PlasticState:
        return self.readout.initial_state(check_int("batch", batch))

    def learn(self, state: PlasticState, x: Tensor, y: Tensor) -> PlasticState:
        self._check(x, y, self.n_in)
        z = self.embed.embed(x)                                              # [S, B, C]
        o = F.one_hot(y, self.n_classes).to(z.dtype)
        for t in range(x.shape[0]):
            state = self.readout.update(state, z[t], o[t], None)
        return state

    def logits(self, state: PlasticState, x: Tensor) -> Tensor:
        self._check(x, None, self.n_in)
        return self.readout.current(state, self.embed.embed(x))


class SpikingPlasticLearner(PlasticLearner):
    r""":class:`~spikeplastic.snn_oneshot.SpikingOneShot` (``embedding="dense"``) as a continual learner.

    A labelled example is one frame of ``P + G`` spiking steps with the one-hot teaching spikes on; scoring
    runs one frame without them from a copy of the state (``kappa`` times the output neurons' mean current,
    :meth:`~spikeplastic.snn_oneshot.SpikingOneShot.frame_logits`). Learned in the first stage: the embedding,
    the encoder's gain and bias, the readout's ``w`` and per-synapse ``alpha``, STDP's amplitudes and time
    constants, ``kappa``; ``decay`` (of ``H`` towards 0 per spiking step) fixed. ``alpha_init`` 5e-4, not
    SpikingOneShot's ``1/(A+ C P)`` = 0.028: measured untrained on ``continual-permuted-digits`` task 0, 0.028
    predicts one class (10.6% after 5 or 50 examples per class), 5e-4 reaches 51% / 59% (with ``w = 0`` the
    argmax does not depend on a uniform ``alpha`` as long as only taught outputs fire; at 0.028 others presumably fire too).
    """

    def __init__(self, n_in: int, n_classes: int, *, channels: int = 88, steps_per_image: int = 4,
                 gap_steps: int = 2, decay: float = 0.0, alpha_init: float = 5e-4) -> None:
        super().__init__()
        self.n_in = check_int("n_in", n_in)
        self.n_classes = check_int("n_classes", n_classes, minimum=2)
        self.net = SpikingOneShot(n_in, n_classes, channels=channels, embedding="dense",
                                  steps_per_image=steps_per_image, gap_steps=gap_steps,
                                  decay=check_number("decay", decay), alpha_init=check_number("alpha_init", alpha_init),
                                  lava="none", lean="off")

    def initial_state(self, batch: int) -> SpikingOneShotState:
        return self.net.initial_state(check_int("batch", batch))

    def _frames(self, x: Tensor, label: Tensor) -> Tensor:
        return torch.cat([x, label], dim=-1)

    def learn(self, state: SpikingOneShotState, x: Tensor, y: Tensor) -> SpikingOneShotState:
        self._check(x, y, self.n_in)
        _, state = self.net(self._frames(x, F.one_hot(y, self.n_classes).to(x.dtype)), state)
        return state

    def logits(self, state: SpikingOneShotState, x: Tensor) -> Tensor:
        self._check(x, None, self.n_in)
        xs = x.unsqueeze(0)
        out, _ = self.net(self._frames(xs, xs.new_zeros(*xs.shape[:-1], self.n_classes)), state)
        return out[0]
