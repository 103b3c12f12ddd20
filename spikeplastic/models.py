r"""Task models for the meta-training harness: spiking plastic networks and the rate baselines.

Registry::

    from spikeplastic.models import make_model, MODELS
    model = make_model("snn-stdp", make_task("pattern50"))       # sizes chosen for the task
    model = make_model("rnn", task, n_hidden=64)                 # keyword overrides

Ids and what they build (``n_act`` = actions of an RL task; sizes are overridable keywords):

==========================  ==========================================================================
``snn-stdp``                :class:`SpikingModel`: encoder -> LIF hidden layer with plastic recurrent
                            synapses (pair STDP, per-synapse alpha, learned amplitudes/taus/decay)
``snn-stdp-mod``            same, with retroactive neuromodulation from the hidden spikes
                            (``Neuromodulation("retroactive", source="hidden")``)
``snn-static``              same network without plasticity (learned static weights only)
``snn-np``                  same network, the recurrent synapses learning by node perturbation
                            (:class:`~spikeplastic.NodePerturbation`: noise in the hidden neurons' input,
                            eligibility = noise x presynaptic trace, retroactive third factor): on RL
                            tasks the reward (the observation's previous-reward entry,
                            ``RLTask.reward_input``) minus a running baseline, elsewhere a learned
                            ``Neuromodulation`` of the hidden spikes
``rate-hebb``, ``rate-oja`` :class:`~spikeplastic.baselines.PlasticRNN` (per-synapse alpha, learned
                            eta); on ``oneshot``, ``rate-oja`` is the paper's conv net
                            :class:`~spikeplastic.baselines.OneShotPlastic`
``rate-hebb-shared``        ``rate-hebb`` with one ``alpha`` shared by all synapses (``alpha="shared"``):
                            the 2018 paper's shared-alpha control on the images task
``backpropamine``           :class:`~spikeplastic.baselines.Backpropamine`, mode ``retroactive``
``backpropamine-simple``    the same with simple modulation
``backpropamine-none``      the same, non-modulated plastic control (mode ``none``)
``rnn``, ``lstm``           non-plastic :class:`~spikeplastic.baselines.RNN` / ``LSTM``; on the memory
                            tasks ``rnn`` is ``PlasticRNN(plastic=False)``, the plastic net with
                            plasticity removed (as in the original)
==========================  ==========================================================================

Sizes and inits per task family (the original code's where it has them; docs/REPRODUCTION.md lists
each with its source):

- *memory* tasks (``pattern``, ``pattern50``, ``images``: ``n_in == n_out``, one unit per
  bit/pixel): ``rate-*`` = ``PlasticRNN(n, bias_unit=True)`` (N = n + 1 units; ``images`` clamps);
  ``snn-*`` = ``n`` LIF neurons, one per bit, fixed one-to-one input, per-neuron readout; with
  ``init="tuned"`` (default) input current +-4, memoryless voltage (``dv=1``), learned bias
  (init -1), STDP ``A+=0.1, A-=0.01, tau=1.5``, ``alpha_init = 15/n`` (so a +1 bit spikes, a -1
  bit stays silent, and the stored co-activity drives the degraded bits; tuned by hand on
  ``pattern50``); with ``init="generic"`` the values of every other task (below), inputs
  normalised to +-2, ``alpha_init = 1/(A+ n)`` and the surrogate dampened x0.3;
  ``backpropamine*`` = ``n`` hidden units; ``rnn`` = ``PlasticRNN(plastic=False)``: the same ``n``
  units plus the bias unit, inputs into the first ``n`` (plus 2000 input-less units on
  ``pattern50``: 2051 in all, :data:`PATTERN_ADDED_UNITS`); ``lstm`` on the pattern tasks = the
  original's LSTM: ``n + 1`` units (2000 on ``pattern50``), inputs x100, clamping, output = the
  first ``n`` units; on ``images`` ``n`` units and a linear readout.
- *RL* tasks (``maze``, ``maze13``, ``cue``): 200 recurrent units (the papers' size; 32 on the
  reduced ``cue-small`` and ``cue-cpu``, :data:`RL_HIDDEN`), except ``maze13``'s parameter-matched
  ``backpropamine*`` (100, ``-none`` 101) and ``rnn`` (139) (:data:`MODEL_HIDDEN`); linear input
  map and a linear readout of ``n_act`` policy logits + 1 value; ``rnn``'s recurrent ``W`` starts
  as ``0.01 * U[0, 1)`` on the papers' RL tasks (:data:`ORIGINAL_RNN_INIT`), ``rate-*``'s ``W``
  and ``alpha`` on ``maze`` (:data:`ORIGINAL_RATE_INIT`); ``snn-*``: 2 spiking steps per task step, LIF
  ``du=1, dv=0.2, vth=1``, STDP ``A+=0.02, A-=0.01, tau=10``, decay 0.01, ``alpha_init`` 0.05
  (``init="generic"``: ``1/(A+ n)`` and the surrogate dampened x0.3, ``surrogate_scale``).
- ``snn-np``: node perturbation with :data:`NP_CORE` (noise std 0.1, trace tau 10 / impulse 0.02,
  baseline rate 0.1) and the ``snn-*`` values above otherwise; ``init="generic"`` normalises
  ``alpha = 1 / (eta sigma n)`` (the analogue of ``1/(A+ n)``) with the surrogate dampened x0.3.
- ``snn-*`` models backpropagate with ``rule_input_grad=False`` (docs/STABILITY.md): the STDP
  update's spike inputs are constants in the backward pass, which keeps BPTT finite on long
  episodes; ``rule_input_grad=True`` gives the exact surrogate gradient.
  ``backpropamine*`` on the cue tasks start ``eta`` at 0.1 (the original cue-reward runs).
- ``oneshot``: ``rate-oja`` = ``OneShotPlastic`` (4 conv layers, 64 channels, plastic readout);
  the others: 200 recurrent units on the flattened image + label.
- any other task: 200 hidden units (``snn-*``: 2 steps per frame), linear maps.

Unknown ids raise ``ValueError`` listing the valid ones.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .baselines import count_parameters
from ._validation import check_choice, check_int, check_number, check_positive
from .functional.plasticity import decay_factor
from .protocol import EpisodeModel, RLTask, SupervisedTask
from .modulation import Neuromodulation
from .network import Network, NetworkState
from .neurons import LIF
from .plastic import PlasticLinear
from .rules import STDP, NodePerturbation
from .surrogate import surrogate as make_surrogate

__all__ = ["SpikingModel", "SpikingState", "SpikingPopulationState", "ModelSpec", "MODELS", "RL_HIDDEN", "MODEL_HIDDEN", "make_model", "model_ids",
           "count_parameters"]

ENCODERS = ("current", "rate", "latency")


class SpikingState(NamedTuple):
    """Per-episode state of :class:`SpikingModel`: the network's state and the readout trace ``[B, n_hidden]``."""

    net: NetworkState
    trace: Tensor


class SpikingPopulationState(NamedTuple):
    """State of :meth:`SpikingModel.population_step`: the no-grad population run (its network state,
    advanced in place), the readout traces ``[P, B, n_hidden]`` and the members' readout ``(weight, bias)``."""

    run: Any
    trace: Tensor
    readout: tuple[Tensor, Tensor]


def _add_axis(vals: Any) -> Any:
    """A member's values (no member axis) with a leading axis of size 1."""
    if isinstance(vals, Tensor):
        return vals.unsqueeze(0)
    if isinstance(vals, tuple):
        items = [_add_axis(v) for v in vals]
        return type(vals)(*items) if hasattr(vals, "_fields") else tuple(items)
    return vals


class SpikingModel(EpisodeModel):
    r"""Encoder -> spiking plastic core (a :class:`~spikeplastic.Network`) -> readout.

    Each task step (frame) ``x`` ``[B, n_in]`` is encoded into ``s = steps_per_frame`` spiking
    steps (:mod:`spikeplastic.tasks.encoders`: ``"current"`` = ``DirectCurrent`` (signed currents,
    deterministic), ``"rate"`` = Bernoulli ``RateEncoder`` with ON/OFF channels (global torch RNG),
    ``"latency"`` = ``LatencyEncoder`` with ON/OFF channels). The network is::

        in --(fixed one-to-one, or learned dense static)--> hidden (LIF)
        hidden --(plastic: w + alpha * H, pair STDP or node perturbation, optional neuromodulation)--> hidden

    with the network's one step of delay per projection. The readout sees a low-pass trace of
    the hidden spikes, updated every spiking step,

    .. math:: r_k = r_{k-1} e^{-1/\tau_r} + s^{hid}_k,

    and at the last sub-step of the frame returns ``f(R r + b)`` (``readout="linear"``) or
    ``f(g \odot r + b)`` (``readout="diagonal"``: one neuron per output, ``n_hidden == n_out``),
    with ``f = tanh`` (``output="tanh"``, for +-1 targets) or the identity (logits/values).
    Because input reaches the hidden layer one spiking step late, RL tasks need
    ``steps_per_frame >= 2`` for the action to depend on the current observation.

    Args:
        n_in, n_out: task input/output sizes. n_hidden: LIF neurons.
        encoder: ``"current"`` | ``"rate"`` | ``"latency"``. steps_per_frame: spiking steps per task step.
        input_scale: input magnitude mapped to the maximal rate/earliest spike (rate, latency).
        input_map: ``"one_to_one"`` (fixed, needs ``n_hidden == n_in``; ON channels excite,
            OFF channels inhibit) or ``"dense"`` (learned static weights).
        input_gain: weight of the one-to-one map / scale of the dense map's initialisation.
        plastic: a plasticity rule on the recurrent synapses. modulation: ``None``, ``"simple"`` or
            ``"retroactive"`` (its third factor: learned from the hidden spikes, or the reward with
            ``reward_input``).
        rule: ``"stdp"`` (:class:`~spikeplastic.STDP`) or ``"np"`` (:class:`~spikeplastic.NodePerturbation`,
            noise injected into the hidden neurons' input; needs ``modulation``).
        stdp: keyword arguments of :class:`~spikeplastic.STDP` (amplitudes, taus), ``rule="stdp"`` only.
        node_perturbation: keyword arguments of :class:`~spikeplastic.NodePerturbation` (``sigma``,
            ``tau``, ``eta``, ``eta_b``, ``baseline``), ``rule="np"`` only.
        reward_input: index of the task input that holds the reward (an RL task's
            :attr:`~spikeplastic.protocol.RLTask.reward_input`): the modulation's third factor is then
            that input, passed to the network at every spiking step of the frame
            (``Neuromodulation(source=None)``), instead of a learned function of the hidden spikes.
        alpha_init: initial per-synapse plasticity coefficient. decay: initial (learned) decay of
            the plastic part. w_init_std: std of the initial recurrent weights.
        lif: keyword arguments of :class:`~spikeplastic.LIF` (default ``du=1, dv=0.2, vth=1``).
        readout: ``"linear"`` | ``"diagonal"``. output: ``"tanh"`` | ``"linear"``.
        tau_readout: readout trace time constant (spiking steps).
        lava: ``"float"`` (default) keeps the rule literals Lava needs (plastic decay, ``eta_e``) on
            its ``m*2^e`` grid with straight-through gradients (:func:`spikeplastic.quant.lava_literals`),
            so ``spikeplastic export --mode float`` reproduces the trained network exactly;
            ``"fixed"`` trains Loihi-legal (:func:`spikeplastic.quant.loihi_legal`: spiking
            encoder, no modulation); ``"none"`` leaves every constant free.
        rule_input_grad: gradients from the STDP update back into the spikes it reads (see
            :class:`~spikeplastic.PlasticLinear`). Default ``False``: with it on, BPTT through the
            spike -> STDP -> ``H`` -> current -> spike loop explodes on long episodes (gradient
            norms 1e16 on ``cue``, ``inf`` on ``maze``; ``docs/STABILITY.md``); off, the norms stay
            O(1-10) and the gradient keeps cosine 0.94-0.996 with the exact one where that is finite.
        surrogate_scale: the hidden LIF's surrogate dampening factor (``scale`` of
            :mod:`spikeplastic.surrogate`; 0.3 in LSNNs, Bellec et al. 2018). Default 1 (snnTorch's
            surrogate); ``init="generic"`` uses 0.3: the backward pass through the recurrent current
            ``s -> (w + alpha*H) @ s -> v -> s`` has a per-step gain above 1 once ``w`` has grown,
            and it compounds over long episodes (``docs/STABILITY.md``).
        lean: ``"auto"`` | ``"on"`` | ``"off"``: whether a whole-sequence ``forward`` runs the
            network through :func:`spikeplastic.lean.network_forward` (same outputs, state and
            gradients, memory ``O(B*N^2)`` instead of ``O(T*B*N^2)``) instead of the step loop;
            ``"auto"`` does when gradients are enabled and the network qualifies (no
            neuromodulation -- ``snn-stdp-mod`` does not --, no Loihi integer-state emulation of
            ``lava="fixed"``); see :class:`~spikeplastic.protocol.EpisodeModel`.

    Shape: ``step``: ``x`` ``[B, n_in]`` -> ``out`` ``[B, n_out]``; ``forward``: ``[T, B, n_in]``
    -> ``[T, B, n_out]``.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        n_hidden: int = 200,
        encoder: str = "current",
        steps_per_frame: int = 1,
        input_scale: float = 1.0,
        input_map: str = "dense",
        input_gain: float = 1.0,
        plastic: bool = True,
        modulation: str | None = None,
        rule: str = "stdp",
        stdp: Mapping[str, Any] | None = None,
        node_perturbation: Mapping[str, Any] | None = None,
        reward_input: int | None = None,
        alpha_init: float = 0.05,
        decay: float = 0.01,
        w_init_std: float = 0.01,
        lif: Mapping[str, Any] | None = None,
        readout: str = "linear",
        output: str = "linear",
        tau_readout: float = 2.0,
        lava: str = "float",
        lean: str = "auto",
        rule_input_grad: bool = False,
        surrogate_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.lean = lean
        self.n_in = check_int("n_in", n_in)
        self.n_out = check_int("n_out", n_out)
        self.n_hidden = check_int("n_hidden", n_hidden)
        self.encoder_kind = check_choice("encoder", encoder, ENCODERS)
        self.steps_per_frame = check_int("steps_per_frame", steps_per_frame)
        check_positive("input_scale", input_scale)
        self.input_scale = float(input_scale)
        self.input_map = check_choice("input_map", input_map, ["one_to_one", "dense"])
        self.input_gain = check_number("input_gain", input_gain)
        if modulation is not None:
            check_choice("modulation", modulation, ["simple", "retroactive"])
            if not plastic:
                raise ValueError("modulation needs plastic=True")
        self.modulation_mode = modulation
        self.rule_kind = check_choice("rule", rule, ["stdp", "np"])
        if self.rule_kind == "np" and plastic and modulation is None:
            raise ValueError("rule='np' (node perturbation) needs a third factor: modulation='simple' or 'retroactive'")
        if reward_input is not None:
            check_int("reward_input", reward_input, minimum=0)
            if reward_input >= self.n_in:
                raise ValueError(f"reward_input: expected an index of the task input (0..{self.n_in - 1}), got {reward_input}")
            if modulation is None:
                raise ValueError("reward_input needs modulation='simple' or 'retroactive' (the reward is the third factor)")
        self.reward_input = reward_input
        if (stdp is not None and self.rule_kind != "stdp") or (node_perturbation is not None and self.rule_kind != "np"):
            given = "stdp" if stdp is not None and self.rule_kind != "stdp" else "node_perturbation"
            raise ValueError(f"{given}: keyword arguments of another rule than rule={self.rule_kind!r}")
        self.readout_kind = check_choice("readout", readout, ["linear", "diagonal"])
        self.output = check_choice("output", output, ["tanh", "linear"])
        check_positive("tau_readout", tau_readout)
        check_positive("w_init_std", w_init_std, allow_zero=True)
        for name, kw in (("stdp", stdp), ("node_perturbation", node_perturbation), ("lif", lif)):
            if kw is not None and not (isinstance(kw, Mapping) and all(isinstance(k, str) for k in kw)):
                raise TypeError(f"{name}: expected a mapping of keyword arguments (e.g. {{'a_plus': 0.02}}), "
                                f"got {type(kw).__name__} {kw!r}")
        self.encoder = self._make_encoder()
        n_enc = self.encoder.n_out(self.n_in)

        if self.input_map == "one_to_one":
            if self.n_hidden != self.n_in:
                raise ValueError(f"input_map='one_to_one' needs n_hidden == n_in ({self.n_in}), got {self.n_hidden}")
            eye = torch.eye(self.n_in) * self.input_gain
            w_in = torch.cat([eye, -eye], dim=1) if n_enc == 2 * self.n_in else eye
            in_proj = PlasticLinear(n_enc, self.n_hidden, weight=w_in, learn_weight=False)
        else:
            in_proj = PlasticLinear(n_enc, self.n_hidden, weight=torch.randn(self.n_hidden, n_enc) * self.input_gain / math.sqrt(n_enc))
        rule_mod: STDP | NodePerturbation | None = None
        if plastic and self.rule_kind == "np":
            rule_mod = NodePerturbation(**dict(node_perturbation or {}))
        elif plastic:
            rule_mod = STDP(**dict({"a_plus": 0.02, "a_minus": 0.01, "tau_plus": 10.0, "tau_minus": 10.0}, **(stdp or {})))
        rec = PlasticLinear(
            self.n_hidden, self.n_hidden, rule=rule_mod,
            alpha="per_synapse", alpha_init=alpha_init,
            decay=decay if plastic else 0.0, learn_decay=plastic and decay > 0,
            modulation=Neuromodulation(modulation, source=None if reward_input is not None else "hidden")
            if modulation else None,
            weight=torch.randn(self.n_hidden, self.n_hidden) * w_init_std,
            rule_input_grad=rule_input_grad,
        )
        lif_kw = dict({"du": 1.0, "dv": 0.2, "vth": 1.0}, **(lif or {}))
        check_positive("surrogate_scale", surrogate_scale)
        if surrogate_scale != 1.0:
            lif_kw["surrogate"] = dataclasses.replace(make_surrogate(lif_kw.get("surrogate", "atan")),
                                                      scale=float(surrogate_scale))
        self.network = Network(
            n_enc, {"hidden": LIF(self.n_hidden, **lif_kw)},
            [("in", "hidden", in_proj), ("hidden", "hidden", rec)],
            input_kind="current" if self.encoder_kind == "current" else "spikes",
        )
        self.lava = check_choice("lava", lava, ["float", "fixed", "none"])
        if self.lava != "none":
            from . import quant

            # train on the values the exporter can represent, so the export is the trained network
            if self.lava == "float":
                quant.lava_literals(self.network)
            else:
                quant.loihi_legal(self.network)
        self.register_buffer("trace_decay", torch.tensor(decay_factor(float(tau_readout))))
        if self.readout_kind == "diagonal":
            if self.n_hidden != self.n_out:
                raise ValueError(f"readout='diagonal' needs n_hidden == n_out ({self.n_out}), got {self.n_hidden}")
            self.readout_gain = nn.Parameter(torch.full((self.n_out,), 1.0))
            self.readout_bias = nn.Parameter(torch.full((self.n_out,), -0.5))
            self.readout: nn.Linear | None = None
        else:
            self.readout = nn.Linear(self.n_hidden, self.n_out)

    def _make_encoder(self) -> Any:
        from .tasks.encoders import DirectCurrent, LatencyEncoder, RateEncoder

        s = self.steps_per_frame
        if self.encoder_kind == "current":
            return DirectCurrent(gain=1.0, steps_per_frame=s, signed="pass")
        if self.encoder_kind == "rate":
            return RateEncoder(max_rate=1.0, scale=self.input_scale, steps_per_frame=s, signed="split")
        return LatencyEncoder(steps_per_frame=max(s, 1), scale=self.input_scale, signed="split")

    def extra_repr(self) -> str:
        extra = "" if self.rule_kind == "stdp" else f", rule={self.rule_kind!r}"
        if self.reward_input is not None:
            extra += f", reward_input={self.reward_input}"
        return (f"n_in={self.n_in}, n_out={self.n_out}, n_hidden={self.n_hidden}, encoder={self.encoder_kind!r}, "
                f"steps_per_frame={self.steps_per_frame}, input_map={self.input_map!r}, "
                f"modulation={self.modulation_mode!r}, readout={self.readout_kind!r}, output={self.output!r}{extra}")

    @property
    def plastic(self) -> bool:
        return self.network.projs["hidden_to_hidden"].plastic

    def encode(self, x: Tensor) -> Tensor:
        """Task inputs ``[T, B, n_in]`` -> network inputs ``[T * steps_per_frame, B, n_enc]``."""
        return self.encoder.encode(x, None)

    def initial_state(self, batch: int) -> SpikingState:
        net = self.network.initial_state(batch)
        return SpikingState(net, torch.zeros(batch, self.n_hidden, dtype=self.network.dtype, device=self.network.device))

    def read(self, trace: Tensor) -> Tensor:
        """Readout of a trace ``[B, n_hidden]`` -> ``[B, n_out]``."""
        if self.readout is None:
            y = trace * self.readout_gain + self.readout_bias
        else:
            y = self.readout(trace)
        return torch.tanh(y) if self.output == "tanh" else y

    def _check_state(self, state: Any, batch: int) -> None:
        if not isinstance(state, SpikingState):
            raise TypeError(f"state: expected a SpikingState (from initial_state()), got {type(state).__name__}")
        self.network.check_state(state.net, batch, "state.net")
        if tuple(state.trace.shape) != (batch, self.n_hidden):
            raise ValueError(f"state.trace: expected shape ({batch}, {self.n_hidden}) for batch size {batch}, "
                             f"got {tuple(state.trace.shape)}")

    def step(self, x: Tensor, state: SpikingState) -> tuple[Tensor, SpikingState]:
        if x.dim() != 2 or x.shape[-1] != self.n_in:
            raise ValueError(f"x must have shape [B, {self.n_in}], got {tuple(x.shape)}")
        self._check_state(state, x.shape[0])
        xs = self.encode(x.unsqueeze(0))
        net, r = state.net, state.trace
        reward = None if self.reward_input is None else x[:, self.reward_input]
        for k in range(xs.shape[0]):
            out, net = self.network.step(xs[k], net, reward, validate=False)
            r = r * self.trace_decay + out.spikes["hidden"]
        return self.read(r), SpikingState(net, r)

    # ---- lean whole-episode path ------------------------------------------------------------------
    def lean_unsupported(self) -> str | None:
        from . import lean

        try:
            lean.check_network(self.network)
        except ValueError as e:
            return str(e).removeprefix("lean path: ")
        quantized = [k for k, p in self.network.pops.items() if p.quantum is not None]
        if quantized:
            return (f"populations {quantized} emulate Loihi's integer state (lava='fixed'), "
                    "which the lean path does not model")
        return None

    def _sequence_start(self, inputs: Tensor, state: SpikingState | None) -> tuple[int, int, SpikingState]:
        """``T``, ``B`` of a whole-sequence input ``[T, B, n_in]`` (checked) and the state to start from."""
        if not isinstance(inputs, Tensor) or inputs.dim() != 3 or inputs.shape[-1] != self.n_in:
            raise ValueError(f"inputs must have shape [T, B, {self.n_in}], got {tuple(getattr(inputs, 'shape', ()))}")
        T, B = inputs.shape[0], inputs.shape[1]
        if state is None:
            state = self.initial_state(B)
        else:
            self._check_state(state, B)
        return T, B, state

    def lean_forward(self, inputs: Tensor, state: SpikingState | None = None) -> tuple[Tensor, SpikingState]:
        """``forward`` with the network run by :func:`spikeplastic.lean.network_forward`."""
        from . import lean

        reason = self.lean_unsupported()
        if reason is not None:
            raise ValueError(f"lean path: {reason}")
        T, B, state = self._sequence_start(inputs, state)
        # frame by frame, as step() does: the same random draws for the stochastic encoders
        xs = torch.cat([self.encode(inputs[t:t + 1]) for t in range(T)])
        rec, net = lean.network_forward(self.network, xs, state.net, record=("spikes",))
        spikes = rec.spikes["hidden"]
        s = self.steps_per_frame
        r = state.trace
        frames = []
        for k in range(spikes.shape[0]):
            r = r * self.trace_decay + spikes[k]
            if k % s == s - 1:
                frames.append(r)
        return self.read(torch.stack(frames)), SpikingState(net, r)

    # ---- fused no-grad path and populations (spikeplastic.lean.population) ---------------------------
    #: backend of the no-grad population kernels (``"auto"`` | ``"inplace"`` | ``"compile"``)
    population_backend: str = "auto"
    #: spiking steps per block of a no-grad run (a multiple of ``steps_per_frame`` is used): memory
    #: is ``O(block)`` in the episode length
    POPULATION_BLOCK = 64

    def nograd_unsupported(self) -> str | None:
        from .lean.population import check_population

        try:
            check_population(self.network)
        except ValueError as e:
            return str(e)
        return None

    def member_values(self) -> tuple[Any, tuple[Tensor, Tensor]]:
        """The network's mapped values (:func:`spikeplastic.lean.population.network_values`, no member
        axis) and the readout's ``(weight, bias)`` (diagonal: ``(gain, bias)``): what differs between
        members of a population (:func:`~spikeplastic.protocol.map_members` stacks them)."""
        from .lean.population import network_values

        vals = network_values(self.network, member_axis=False)
        ro = (self.readout_gain, self.readout_bias) if self.readout is None else (self.readout.weight, self.readout.bias)
        return vals, ro

    def _members(self, params: Mapping[str, Tensor] | None) -> tuple[Any, tuple[Tensor, Tensor]]:
        from .protocol import map_members

        if params is None:  # the model itself, as one member
            vals, ro = self.member_values()
            return _add_axis(vals), (ro[0].unsqueeze(0), ro[1].unsqueeze(0))
        return map_members(self, self.member_values, params)

    def _read_members(self, r: Tensor, ro: tuple[Tensor, Tensor]) -> Tensor:
        """:meth:`read` with each member's readout: ``r`` ``[P, B, n_hidden]`` -> ``[P, B, n_out]``."""
        w, b = ro
        if self.readout is None:
            y = r * w.unsqueeze(1) + b.unsqueeze(1)
        else:
            y = torch.baddbmm(b.unsqueeze(1), r, w.transpose(1, 2))
        return torch.tanh(y) if self.output == "tanh" else y

    def _encode_frames(self, inputs: Tensor) -> Tensor:
        # frame by frame, as step() does: the same random draws for the stochastic encoders
        return torch.cat([self.encode(inputs[t:t + 1]) for t in range(inputs.shape[0])])

    def _run_frames(self, run: Any, xs: Tensor, r: Tensor, ro: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Run the encoded steps ``xs`` in blocks; the readout trace ``r`` ``[P, B, n_hidden]`` and the
        outputs at the end of each frame ``[frames, P, B, n_out]``."""
        s = self.steps_per_frame
        block = max(s, self.POPULATION_BLOCK // s * s)
        out = None  # [frames, P, B, n_out], filled in place (no second copy of the outputs)
        for k0 in range(0, xs.shape[0], block):
            spikes = run.run(xs[k0:k0 + block]).spikes["hidden"]
            for k in range(spikes.shape[0]):
                r = r * self.trace_decay + spikes[k]
                if (k0 + k) % s == s - 1:
                    y = self._read_members(r, ro)
                    if out is None:
                        out = y.new_empty(xs.shape[0] // s, *y.shape)
                    out[(k0 + k) // s] = y
        assert out is not None
        return out, r

    def nograd_forward(self, inputs: Tensor, state: SpikingState | None = None) -> tuple[Tensor, SpikingState]:
        """``forward`` without autograd through the fused kernels of :mod:`spikeplastic.lean.population`
        (same outputs to rounding, same spikes and final state)."""
        from .lean.population import PopulationRun, network_spec, to_network_state, to_population_state

        reason = self.nograd_unsupported()
        if reason is not None:
            raise ValueError(f"no-grad forward: {reason}")
        T, B, state = self._sequence_start(inputs, state)
        with torch.no_grad():
            spec = network_spec(self.network)
            vals, ro = self._members(None)
            run = PopulationRun(spec, vals, B, state=to_population_state(spec, state.net),
                                backend=self.population_backend)
            out, r = self._run_frames(run, self._encode_frames(inputs), state.trace.unsqueeze(0), ro)
        return out[:, 0], SpikingState(to_network_state(spec, run.state), r[0])

    def population_forward(self, params: Mapping[str, Tensor], inputs: Tensor) -> Tensor:
        """Every member's outputs ``[T, P, B, n_out]`` on ``inputs`` ``[T, B, n_in]`` (encoded once, the same
        spikes for every member), all ``P x B`` episodes in one fused no-grad run."""
        from .lean.population import PopulationRun, network_spec

        if self.nograd_unsupported() is not None:
            return super().population_forward(params, inputs)
        if not isinstance(inputs, Tensor) or inputs.dim() != 3 or inputs.shape[-1] != self.n_in:
            raise ValueError(f"inputs: expected [T, B, {self.n_in}], got {tuple(getattr(inputs, 'shape', ()))}")
        with torch.no_grad():
            vals, ro = self._members(params)
            B = inputs.shape[1]
            run = PopulationRun(network_spec(self.network), vals, B, backend=self.population_backend)
            r0 = torch.zeros(vals.P, B, self.n_hidden, dtype=self.network.dtype, device=self.network.device)
            out, _ = self._run_frames(run, self._encode_frames(inputs), r0, ro)
        return out

    def population_initial_state(self, params: Mapping[str, Tensor], batch: int) -> Any:
        """A :class:`SpikingPopulationState` for ``batch`` episodes per member (all members in one run)."""
        from .lean.population import PopulationRun, network_spec

        if self.nograd_unsupported() is not None:
            return super().population_initial_state(params, batch)
        with torch.no_grad():
            vals, ro = self._members(params)
            run = PopulationRun(network_spec(self.network), vals, batch, backend=self.population_backend)
            r = torch.zeros(vals.P, batch, self.n_hidden, dtype=self.network.dtype, device=self.network.device)
        return SpikingPopulationState(run, r, ro)

    def population_step(self, params: Mapping[str, Tensor], x: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One task step of every member: ``x`` ``[P, B, n_in]`` -> ``[P, B, n_out]``. The network's state
        lives in ``state.run`` and is advanced in place (a no-grad stepper); the trace is returned anew."""
        if not isinstance(state, SpikingPopulationState):
            return super().population_step(params, x, state)
        run = state.run
        if not isinstance(x, Tensor) or tuple(x.shape) != (run.P, run.B, self.n_in):
            raise ValueError(f"x: expected [P={run.P}, B={run.B}, {self.n_in}], got {tuple(getattr(x, 'shape', ()))}")
        with torch.no_grad():
            xs = self.encode(x.reshape(1, run.P * run.B, self.n_in))
            xs = xs.reshape(xs.shape[0], run.P, run.B, xs.shape[-1])
            out, r = self._run_frames(run, xs, state.trace, state.readout)
        return out[-1], state._replace(trace=r)

    def export_meta(self) -> dict[str, Any]:
        """JSON-able description of the parts around the network (stored with its IR)."""
        return {
            "encoder": self.encoder_kind, "steps_per_frame": self.steps_per_frame, "input_scale": self.input_scale,
            "input_map": self.input_map, "readout": self.readout_kind, "output": self.output,
            "n_task_in": self.n_in, "n_task_out": self.n_out, "lava": self.lava,
            "rule": self.rule_kind, "reward_input": self.reward_input,
        }


# ---- registry ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: a description and ``build(task, overrides) -> EpisodeModel``."""

    description: str
    build: Callable[[Any, dict[str, Any]], EpisodeModel]
    #: task families the model is built for (``"oneshot"``, ``"memory"``, ``"rl"``, ``"generic"``); ``None``: all
    families: frozenset[str] | None = None

    def supports(self, task: Any) -> bool:
        """Whether the model can be built for ``task``."""
        return self.families is None or _family(task) in self.families


#: hidden units of every model on an RL task, by task name (default 200, the papers' size)
RL_HIDDEN: Mapping[str, int] = MappingProxyType({"cue-small": 32, "cue-cpu": 32, "maze-cpu": 64, "maze13-cpu": 32})

#: hidden units per model where the paper set them per model, ``{task: {model id: units}}``: the
#: Backpropamine maze's parameter-matched sizes (~22.5k parameters each; uber-research/backpropamine
#: ``maze/request_modul.json`` and ``request_modplast.json``: ``--hs 100``, ``request_plastic.json``:
#: ``--hs 101``, ``request_rnn.json``: ``--hs 139``), and on its CPU reduction the same matching at
#: 32 units (~2.8k parameters: 32, 32, 32, 43). They replace :data:`RL_HIDDEN`'s.
MODEL_HIDDEN: Mapping[str, Mapping[str, int]] = MappingProxyType({
    "maze13": MappingProxyType({"backpropamine": 100, "backpropamine-simple": 100, "backpropamine-none": 101,
                                "rnn": 139}),
    "maze13-cpu": MappingProxyType({"backpropamine": 32, "backpropamine-simple": 32, "backpropamine-none": 32,
                                    "rnn": 43}),
})

#: RL tasks whose ``rnn`` is the original's non-plastic control: the plastic net's recurrent init
#: ``W = 0.01 * U[0, 1)`` with plasticity removed (uber-research/differentiable-plasticity
#: ``maze/maze.py`` line 86; uber-research/backpropamine ``maze/batch.py`` line 74, ``sr/modul.py``
#: ``NonPlasticRNN``). ``cue-small`` keeps ``nn.Linear``'s init (its README results were measured so).
ORIGINAL_RNN_INIT = frozenset({"maze", "maze13", "cue", "maze-cpu", "maze13-cpu", "cue-cpu"})

#: RL tasks on which ``rate-hebb`` / ``rate-oja`` are the 2018 maze net: ``W``, ``alpha`` =
#: ``0.01 * U[0, 1)`` (``maze/maze.py`` lines 94-95)
ORIGINAL_RATE_INIT = frozenset({"maze", "maze-cpu"})


def _name(task: Any) -> str:
    return str(getattr(task, "name", ""))


def _hidden(task: Any, model_id: str | None = None) -> int:
    """Default hidden size on a non-memory task: :data:`MODEL_HIDDEN` for ``model_id`` where the
    task sets one, :data:`RL_HIDDEN` for RL tasks, else 200."""
    if not isinstance(task, RLTask):
        return 200
    per_model = MODEL_HIDDEN.get(_name(task), {})
    if model_id is not None and model_id in per_model:
        return per_model[model_id]
    return RL_HIDDEN.get(_name(task), 200)


def _is_cue(task: Any) -> bool:
    from .tasks.cue import CueTask

    return isinstance(task, CueTask)


def _family(task: Any) -> str:
    if isinstance(task, RLTask):
        return "rl"
    from .tasks.oneshot import OneShotTask

    if isinstance(task, OneShotTask):
        return "oneshot"
    if isinstance(task, SupervisedTask) and task.n_in == task.n_out:
        return "memory"
    return "generic"


def _is_images(task: Any) -> bool:
    from .tasks.images import ImageTask

    return isinstance(task, ImageTask)


def _is_pattern(task: Any) -> bool:
    from .tasks.pattern import PatternTask

    return isinstance(task, PatternTask)


def _pattern_scale(task: Any) -> float:
    return float(task.config.input_scale) if _is_pattern(task) else 1.0


def _n_out(task: Any) -> int:
    return int(task.n_actions + 1) if isinstance(task, RLTask) else int(task.n_out)


#: spiking-model initialisations (``--model-kw init=...``), see the module docstring
SNN_INITS = ("tuned", "generic")

#: the spiking core's values on the non-memory tasks (both initialisations)
_CORE: Mapping[str, Any] = MappingProxyType(dict(
    lif={"du": 1.0, "dv": 0.2, "vth": 1.0}, alpha_init=0.05, decay=0.01,
    stdp={"a_plus": 0.02, "a_minus": 0.01, "tau_plus": 10.0, "tau_minus": 10.0},
))


#: the generic start's surrogate dampening factor: LSNN's ``gamma_pd`` (Bellec et al. 2018, NeurIPS,
#: "Long short-term memory and learning-to-learn in networks of spiking neurons", Methods)
GENERIC_SURROGATE_SCALE = 0.3


def _generic(n_hidden: int) -> dict[str, Any]:
    """The generic initialisation (docs/STABILITY.md): :data:`_CORE` on every task, with the
    plasticity coefficient normalised by the recurrent fan-in, ``alpha = 1 / (A+ * n)``, so that a
    synapse potentiated by one coincident pair adds ``1/n`` to the weight and a fully co-active
    population adds O(1) (the threshold's scale) to its targets' input, whatever ``n``; and the
    surrogate dampened by :data:`GENERIC_SURROGATE_SCALE`, so that the backward pass through the
    recurrent current does not compound over long episodes."""
    d = dict(_CORE)
    d["alpha_init"] = 1.0 / (float(_CORE["stdp"]["a_plus"]) * n_hidden)
    d["surrogate_scale"] = GENERIC_SURROGATE_SCALE
    return d


#: node perturbation's coefficients on every task (``snn-np``): noise std 0.1 of the threshold, the
#: trace of ``_CORE``'s STDP (tau 10, impulse 0.02 = A+), baseline rate 0.1
NP_CORE: Mapping[str, Any] = MappingProxyType(dict(sigma=0.1, tau=10.0, eta=0.02, eta_b=0.1))


def _np_alpha(n_hidden: int) -> float:
    """The generic start's plasticity coefficient for node perturbation, the analogue of STDP's
    ``1 / (A+ n)``: one presynaptic spike (trace ``eta``) paired with a one-sigma perturbation under a
    unit third factor adds ``1/n`` to the weight, ``alpha = 1 / (eta * sigma * n)``."""
    return 1.0 / (float(NP_CORE["eta"]) * float(NP_CORE["sigma"]) * n_hidden)


def _snn(plastic: bool, modulation: str | None, rule: str = "stdp") -> Callable[[Any, dict[str, Any]], EpisodeModel]:
    def build(task: Any, kw: dict[str, Any]) -> EpisodeModel:
        fam = _family(task)
        init = check_choice("init", kw.pop("init", "tuned"), SNN_INITS)
        if fam == "memory":
            scale = _pattern_scale(task)
            # the task's structure: one neuron per bit/pixel, driven one-to-one, read out one-to-one
            d: dict[str, Any] = dict(
                n_hidden=task.n_in, input_map="one_to_one", readout="diagonal", output="tanh",
                steps_per_frame=1, input_scale=scale,
            )
            if init == "tuned":
                # memoryless voltage (dv = 1: the neuron fires iff its input exceeds 1 - bias), a short
                # potentiation-dominated STDP window and alpha ~ 15/n: a working spiking completion
                # network before meta-training (tuned on pattern50: ~10% bit error untrained)
                d.update(input_gain=4.0 / scale, alpha_init=15.0 / task.n_in,
                         lif={"dv": 1.0, "bias": -1.0, "learn_bias": True},
                         stdp={"a_plus": 0.1, "a_minus": 0.01, "tau_plus": 1.5, "tau_minus": 1.5})
            else:
                # generic: task inputs normalised to +-2 (as the dense map's unit-scale inputs)
                d.update(_generic(task.n_in), input_gain=2.0 / scale, lif=dict(_CORE["lif"], learn_bias=True))
        else:
            n = int(kw.get("n_hidden", _hidden(task)))
            d = dict(n_hidden=n, input_map="dense", readout="linear",
                     output="linear", steps_per_frame=2, input_gain=2.0, **(_generic(n) if init == "generic" else _CORE))
        if modulation == "retroactive":
            d["decay"] = 0.0  # Lava synapses have two tags: eligibility + alpha leave none for the anchor
        if rule == "np":
            d.pop("stdp", None)
            n_np = int(kw.get("n_hidden", d["n_hidden"]))
            reward = getattr(task, "reward_input", None) if isinstance(task, RLTask) else None
            # RL tasks: the reward minus its running baseline (Fiete & Seung); others: a learned third factor
            d["node_perturbation"] = dict(NP_CORE, baseline=reward is not None)
            if reward is not None:
                d["reward_input"] = reward
            if init == "generic":
                d["alpha_init"] = _np_alpha(n_np)
        d.update(kw)
        if d.get("encoder", "current") != "current" and d.get("input_map") == "one_to_one" and "input_gain" not in kw:
            d["input_gain"] = 4.0  # spikes are 0/1: the same +-4 drive as the current encoder
        return SpikingModel(task.n_in, _n_out(task), plastic=plastic, modulation=modulation, rule=rule, **d)

    return build


def _rate(rule: str, shared_alpha: bool = False) -> Callable[[Any, dict[str, Any]], EpisodeModel]:
    def build(task: Any, kw: dict[str, Any]) -> EpisodeModel:
        from .baselines import OneShotPlastic, PlasticRNN

        if shared_alpha:
            kw = dict({"alpha": "shared"}, **kw)

        fam = _family(task)
        if fam == "memory":
            return PlasticRNN(task.n_in, rule=rule, **dict({"bias_unit": True, "clamp": _is_images(task)}, **kw))  # type: ignore[arg-type]
        if fam == "oneshot" and rule == "oja":
            s = int(task.config.image_size)
            d = dict({"padding": 0 if s >= 31 else 1}, **kw)
            return OneShotPlastic(s * s, task.config.n_way, **d)
        d = dict({"n_hidden": _hidden(task), "readout": "linear", "input_map": "linear"}, **kw)
        if _name(task) in ORIGINAL_RATE_INIT:
            d.setdefault("init", "uniform")
        return PlasticRNN(task.n_in, _n_out(task), rule=rule, **d)  # type: ignore[arg-type]

    return build


def _bpa(mode: str, model_id: str) -> Callable[[Any, dict[str, Any]], EpisodeModel]:
    def build(task: Any, kw: dict[str, Any]) -> EpisodeModel:
        from .baselines import Backpropamine

        n_h = task.n_in if _family(task) == "memory" else _hidden(task, model_id)
        d: dict[str, Any] = {"n_hidden": n_h, "mode": mode}
        if _is_cue(task) and mode != "simple":
            d["eta_init"] = 0.1  # the original cue-reward runs' eta / etaet
        return Backpropamine(task.n_in, _n_out(task), **dict(d, **kw))

    return build


#: units the original pattern-task controls add to the ``n`` pattern units (uber-research/
#: differentiable-plasticity ``simple/README.md`` lines 15, 17: ``--nbaddneurons 2000`` for the
#: non-plastic RNN, ``1949`` for the LSTM, on the 50-bit task); 0 elsewhere (the scripts' default)
PATTERN_ADDED_UNITS: Mapping[str, Mapping[str, int]] = MappingProxyType({
    "pattern50": MappingProxyType({"rnn": 2000, "lstm": 1949}),
})

#: the original pattern LSTM's input magnitude (``simple/lstm.py`` line 127: the +-1 patterns x 100)
PATTERN_LSTM_INPUT = 100.0


def _memory_rnn(task: Any, kw: dict[str, Any]) -> EpisodeModel:
    """The plastic memory net with plasticity removed (``simple/full.py --type nonplastic``):
    ``n + added`` units and the bias unit, inputs into the first ``n``, output read from them."""
    from .baselines import PlasticRNN

    added = PATTERN_ADDED_UNITS.get(_name(task), {}).get("rnn", 0)
    d = dict({"n_hidden": task.n_in + added, "bias_unit": True, "plastic": False, "input_map": "first",
              "clamp": _is_images(task)}, **kw)
    return PlasticRNN(task.n_in, **d)  # type: ignore[arg-type]


def _pattern_lstm(task: Any, kw: dict[str, Any]) -> EpisodeModel:
    """The original pattern-task LSTM (``simple/lstm.py``): ``n + added + 1`` units, inputs x100
    (the task's inputs are already x ``input_scale``), clamping, output = the first ``n`` units."""
    from .baselines import LSTM

    added = PATTERN_ADDED_UNITS.get(_name(task), {}).get("lstm", 0)
    d = dict({"n_hidden": task.n_in + added + 1, "input_scale": PATTERN_LSTM_INPUT / _pattern_scale(task),
              "clamp": True, "readout": "first"}, **kw)
    return LSTM(task.n_in, task.n_out, **d)


def _snn_oneshot(task: Any, kw: dict[str, Any]) -> EpisodeModel:
    """:class:`~spikeplastic.snn_oneshot.SpikingOneShot` sized for a one-shot task (same embedding as ``rate-oja``)."""
    from .snn_oneshot import SpikingOneShot

    s = int(task.config.image_size)
    return SpikingOneShot(s * s, task.config.n_way, **dict({"padding": 0 if s >= 31 else 1}, **kw))


def _recurrent(kind: str) -> Callable[[Any, dict[str, Any]], EpisodeModel]:
    def build(task: Any, kw: dict[str, Any]) -> EpisodeModel:
        from .baselines import LSTM, RNN

        memory = _family(task) == "memory"
        if memory and kind == "rnn":
            return _memory_rnn(task, kw)
        if _is_pattern(task) and kind == "lstm":
            return _pattern_lstm(task, kw)
        if memory:  # images' LSTM: no original setting
            return LSTM(task.n_in, _n_out(task), **dict({"n_hidden": task.n_in}, **kw))
        d: dict[str, Any] = {"n_hidden": _hidden(task, kind)}
        if kind == "rnn" and _name(task) in ORIGINAL_RNN_INIT:
            d["init"] = "uniform"
        cls = RNN if kind == "rnn" else LSTM
        return cls(task.n_in, _n_out(task), **dict(d, **kw))

    return build


MODELS: Mapping[str, ModelSpec] = MappingProxyType({
    "snn-stdp": ModelSpec("spiking LIF net, plastic recurrent synapses (pair STDP, per-synapse alpha)", _snn(True, None)),
    "snn-stdp-mod": ModelSpec("snn-stdp with retroactive neuromodulation from the hidden spikes", _snn(True, "retroactive")),
    "snn-static": ModelSpec("spiking LIF net, non-plastic (learned static weights)", _snn(False, None)),
    "snn-np": ModelSpec("spiking LIF net, recurrent synapses learning by node perturbation (reward x noise x pre trace)",
                        _snn(True, "retroactive", "np")),
    "rate-hebb": ModelSpec("PlasticRNN, Hebbian trace with decay (Miconi et al. 2018)", _rate("hebb")),
    "rate-hebb-shared": ModelSpec("rate-hebb with one plasticity coefficient alpha shared by all synapses (the 2018 "
                                  "paper's shared-alpha control)", _rate("hebb", shared_alpha=True)),
    "rate-oja": ModelSpec("PlasticRNN with Oja's rule (oneshot: OneShotPlastic conv net)", _rate("oja")),
    "backpropamine": ModelSpec("Backpropamine, retroactive neuromodulation (Miconi et al. 2019)",
                               _bpa("retroactive", "backpropamine")),
    "backpropamine-simple": ModelSpec("Backpropamine, simple neuromodulation", _bpa("simple", "backpropamine-simple")),
    "backpropamine-none": ModelSpec("Backpropamine's non-modulated plastic control", _bpa("none", "backpropamine-none")),
    "rnn": ModelSpec("non-plastic tanh RNN (memory tasks: the plastic net with plasticity off)", _recurrent("rnn")),
    "lstm": ModelSpec("non-plastic LSTM", _recurrent("lstm")),
    "snn-oneshot": ModelSpec("oneshot only: rate-oja's conv features, spike-encoded, into spiking readout neurons whose "
                             "synapses learn by STDP (per-synapse alpha) from teaching spikes; exports to Lava",
                             _snn_oneshot, frozenset({"oneshot"})),
})


def model_ids() -> list[str]:
    """The registered model ids."""
    return list(MODELS)


def make_model(model_id: str, task: SupervisedTask | RLTask, **overrides: Any) -> EpisodeModel:
    """Build model ``model_id`` sized for ``task`` (module docstring); ``overrides`` replace defaults.

    Raises:
        ValueError: unknown ``model_id`` (the message lists the valid ids).
        TypeError: ``task`` is not a task, or an override the model does not take.
    """
    if not isinstance(model_id, str) or model_id not in MODELS:
        raise ValueError(f"unknown model {model_id!r}; valid ids: {list(MODELS)}")
    if not isinstance(task, (SupervisedTask, RLTask)):
        raise TypeError(f"task must be a SupervisedTask or RLTask, got {type(task).__name__}")
    spec = MODELS[model_id]
    if not spec.supports(task):
        ok = sorted(spec.families or ())
        raise ValueError(f"model {model_id!r} is built for {ok} tasks only, not {_name(task) or type(task).__name__!r} "
                         f"(family {_family(task)!r}); use another --model")
    try:
        return spec.build(task, dict(overrides))
    except TypeError as e:
        raise TypeError(f"make_model({model_id!r}, ...): {e}") from e


