"""``snn-oneshot``: meta-trained conv features, spike-encoded, into a spiking readout with plastic synapses.

The deployment this models: a frozen feature extractor (torch) streams spikes into a small spiking
readout whose synapses learn new classes during the episode (on a neuromorphic chip: the readout is a
:class:`~spikeplastic.Network` and exports to Lava; see ``examples/oneshot.py``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ._validation import check_choice, check_int, check_number, check_positive
from .embedding import ConvEmbedding, DenseEmbedding
from .functional.lif import LIFState
from .network import Network, NetworkState
from .neurons import LIF
from .plastic import PlasticLinear
from .protocol import EpisodeModel
from .rules import STDP
from .surrogate import surrogate as make_surrogate

__all__ = ["SpikingOneShot", "SpikingOneShotState"]


class SpikingOneShotState(NamedTuple):
    """State of :class:`SpikingOneShot`: the encoder LIF's state and the readout network's."""

    enc: LIFState
    net: NetworkState


class SpikingOneShot(EpisodeModel):
    r"""N-way K-shot classifier: conv embedding -> spike encoder -> spiking readout with plastic synapses.

    Task step ``t`` (one image with its label, :mod:`spikeplastic.tasks.oneshot`) is one *frame* of
    ``F = P + G`` spiking steps (``P = steps_per_image`` with the image shown, ``G = gap_steps`` blank).
    Per frame::

        z      = embed(image)                      [B, C]  (ConvEmbedding, tanh features in [-1, 1])
        c      = g * LN(z) + b                     [B, C]  (LN: standardised over the C channels, no affine;
                                                        learned per-channel gain/bias; 0 in the gap)
        s_enc  = IF neurons driven by c            [B, C]  (LIF du=1, dv=0, vth=1: rate ~ c; torch only)
        x_net  = [s_enc, label]                    [B, C + N]  (label: one-hot teaching spikes on the
                                                                 image steps of support frames, 0 otherwise)
        readout: Network  in --(w + alpha*H, pair STDP, per-synapse alpha)--> out (N LIF neurons)

    During a support frame the teaching input (fixed-init weight ``teacher_weight`` on the diagonal of
    the label block) makes the labelled output neuron fire, so STDP potentiates the synapses from the
    features active in that image (``H``'s row ``j`` stores class ``j``'s features). The query frame
    has no teaching input: output neuron ``j``'s synaptic current ``u_j = ((w + alpha H) s_enc)_j``
    measures the query's match with class ``j``. The frame's logits are

    .. math:: y_j = \kappa \cdot \frac{1}{P} \sum_{k=1}^{P} u_j[tF + k]

    (``kappa`` learned; offsets ``1..P`` because the projection has one step of delay; ``u`` is the
    LIF current, Lava's ``u``), the prediction ``argmax_j y_j`` of the query frame. Only the readout
    is a :class:`~spikeplastic.Network` (exportable); the embedding and the encoder run in torch and
    their spikes are the network's input (:meth:`encode_episode`).

    Args:
        img_pixels, n_way: image size (flattened square) and classes per episode.
        channels, n_conv, padding: the embedding (:class:`~spikeplastic.embedding.ConvEmbedding`).
        embedding: ``"conv"`` (default, the above) or ``"dense"`` (one dense tanh layer of ``channels`` units,
            :class:`~spikeplastic.embedding.DenseEmbedding`; ``n_conv``/``padding`` unused).
        steps_per_image (P), gap_steps (G >= 1): frame layout.
        stdp: :class:`~spikeplastic.STDP` keyword arguments (default ``a_plus=0.1, a_minus=0.02,
            tau_plus=tau_minus=2``: traces mostly forgotten over the gap).
        alpha_init: per-synapse plasticity coefficient (default ``1 / (A+ * C)``, the generic start of
            ``docs/STABILITY.md``). decay: decay of ``H`` towards 0 (default 0: one short episode).
        w_init_std: std of the initial feature weights. teacher_weight: initial teaching weight.
        enc_gain, enc_bias: initial encoder gain and bias (rates ~ 0.5 +- 0.3).
        kappa_init: initial logit scale.
        lif: keyword arguments of the output :class:`~spikeplastic.LIF` (default ``du=1, dv=0.2, vth=1``).
        surrogate_scale: dampening of the output and encoder surrogates (1: snnTorch's).
        rule_input_grad: gradients through the STDP update into the spikes (default ``True``: the
            readout has no recurrence, so the spike -> H -> current -> spike loop that makes long
            recurrent episodes explode does not exist here, and the support features get their
            gradient through ``H``).
        lava: ``"float"`` (rule literals on Lava's grid, exact float export), ``"fixed"``
            (:func:`spikeplastic.quant.loihi_legal`: Loihi-legal readout, trained with Loihi's integer
            state) or ``"none"``.
        teacher: ``"direct"`` (default with float: the label spikes are inputs of the plastic projection, with
            fixed weight ``teacher_weight`` on its label block) or ``"relay"`` (default with ``lava="fixed"``:
            the label spikes drive ``N`` relay neurons ``teach`` that drive ``out`` through a static projection of
            their own, so that on Loihi the plastic projection's weight exponent is set by the plastic weights --
            with the direct teacher one plastic step is ~0.25 of a weight LSB; the response and the logit window
            move one step later: offsets ``2..P+1``, ``G >= 2``).

    Shape: ``step``: ``x`` ``[B, img_pixels + n_way]`` -> ``[B, n_way]``; ``forward``: ``[T, B, .]`` -> ``[T, B, n_way]``.
    """

    def __init__(
        self,
        img_pixels: int,
        n_way: int = 5,
        *,
        channels: int = 64,
        n_conv: int = 4,
        padding: int = 0,
        steps_per_image: int = 8,
        gap_steps: int = 2,
        stdp: Mapping[str, Any] | None = None,
        alpha_init: float | None = None,
        decay: float = 0.0,
        w_init_std: float = 0.0,
        teacher_weight: float = 2.0,
        enc_gain: float = 0.3,
        enc_bias: float = 0.5,
        lif: Mapping[str, Any] | None = None,
        kappa_init: float = 10.0,
        surrogate_scale: float = 1.0,
        rule_input_grad: bool = True,
        lava: str = "float",
        teacher: str | None = None,
        lean: str = "auto",
        embedding: str = "conv",
    ) -> None:
        super().__init__()
        self.lean = lean
        kind = check_choice("embedding", embedding, ["conv", "dense"])
        self.embed: ConvEmbedding | DenseEmbedding = (
            ConvEmbedding(img_pixels, channels=channels, n_conv=n_conv, padding=padding) if kind == "conv"
            else DenseEmbedding(img_pixels, channels=channels))
        self.img_pixels = int(img_pixels)
        self.n_way = check_int("n_way", n_way, minimum=2)
        self.channels = self.embed.channels
        self.n_in = self.img_pixels + self.n_way
        self.n_out = self.n_way
        self.steps_per_image = check_int("steps_per_image", steps_per_image)
        self.gap_steps = check_int("gap_steps", gap_steps, minimum=1)
        check_positive("w_init_std", w_init_std, allow_zero=True)
        check_number("teacher_weight", teacher_weight)
        check_positive("surrogate_scale", surrogate_scale)
        if stdp is not None and not (isinstance(stdp, Mapping) and all(isinstance(k, str) for k in stdp)):
            raise TypeError(f"stdp: expected a mapping of STDP keyword arguments (e.g. {{'a_plus': 0.1}}), got {stdp!r}")
        rule_kw = dict({"a_plus": 0.1, "a_minus": 0.02, "tau_plus": 2.0, "tau_minus": 2.0}, **(stdp or {}))
        C, N = self.channels, self.n_way
        if alpha_init is None:
            alpha_init = 1.0 / (float(rule_kw["a_plus"]) * C * self.steps_per_image)

        def spike_fn() -> Any:
            s = make_surrogate("atan")
            return s if surrogate_scale == 1.0 else dataclasses.replace(s, scale=float(surrogate_scale))

        self.enc_gain = nn.Parameter(torch.full((C,), float(check_number("enc_gain", enc_gain))))
        self.enc_bias = nn.Parameter(torch.full((C,), float(check_number("enc_bias", enc_bias))))
        # integrate-and-fire encoder: its rate follows the current (torch only, never exported)
        self.encoder = LIF(C, du=1.0, dv=0.0, vth=1.0, surrogate=spike_fn())
        self.lava = check_choice("lava", lava, ["float", "fixed", "none"])
        self.teacher = check_choice("teacher", teacher if teacher is not None else
                                    ("relay" if self.lava == "fixed" else "direct"), ["direct", "relay"])
        if self.teacher == "relay" and self.gap_steps < 2:
            raise ValueError(f"gap_steps: teacher='relay' needs >= 2 (the response comes 2 steps late), got {gap_steps}")
        #: steps from a frame's first input step to the output's first response
        self.delay = 1 if self.teacher == "direct" else 2
        lif_kw = dict({"du": 1.0, "dv": 1.0, "vth": 1.0, "surrogate": spike_fn()}, **(lif or {}))
        # the label's block of the plastic projection: the teaching weight (direct) or 0 (relay: the label reaches
        # "out" through relay neurons and a static projection of its own, so that the plastic projection's weight
        # scale -- Loihi: its weight exponent -- is set by the plastic weights alone)
        w_label = torch.eye(N) * float(teacher_weight) if self.teacher == "direct" else torch.zeros(N, N)
        proj = PlasticLinear(C + N, N, rule=STDP(**rule_kw), alpha="per_synapse", alpha_init=float(alpha_init),
                             decay=float(decay), weight=torch.cat([torch.randn(N, C) * float(w_init_std), w_label], dim=1),
                             rule_input_grad=rule_input_grad)
        if self.teacher == "direct":
            self.readout = Network(C + N, {"out": LIF(N, **lif_kw)}, [("in", "out", proj)])
        else:
            relay_in = PlasticLinear(C + N, N, weight=torch.cat([torch.zeros(N, C), torch.eye(N) * 2.0], dim=1),
                                     learn_weight=False)
            relay_out = PlasticLinear(N, N, weight=torch.eye(N) * float(teacher_weight))
            self.readout = Network(C + N, {"teach": LIF(N, du=1.0, dv=1.0, vth=1.0), "out": LIF(N, **lif_kw)},
                                   [("in", "teach", relay_in), ("in", "out", proj), ("teach", "out", relay_out)])
        self.kappa = nn.Parameter(torch.tensor(float(check_number("kappa_init", kappa_init))))
        if self.lava != "none":
            from . import quant

            (quant.lava_literals if self.lava == "float" else quant.loihi_legal)(self.readout)

    #: the readout population whose currents give the logits
    output_population = "out"

    @property
    def frame(self) -> int:
        """Spiking steps per task step, ``P + G``."""
        return self.steps_per_image + self.gap_steps

    def extra_repr(self) -> str:
        return (f"img_pixels={self.img_pixels}, n_way={self.n_way}, channels={self.channels}, "
                f"steps_per_image={self.steps_per_image}, gap_steps={self.gap_steps}, lava={self.lava!r}")

    def initial_state(self, batch: int) -> SpikingOneShotState:
        """Encoder at rest, readout with zero plastic part."""
        check_int("batch", batch)
        return SpikingOneShotState(self.encoder.initial_state(batch), self.readout.initial_state(batch))

    def _check_inputs(self, inputs: Any) -> None:
        if not isinstance(inputs, Tensor) or inputs.dim() != 3 or inputs.shape[-1] != self.n_in:
            raise ValueError(f"inputs: expected [T, B, {self.n_in}] (image pixels then one-hot label), "
                             f"got {tuple(getattr(inputs, 'shape', ()))}")

    def encode_episode(self, inputs: Tensor, enc: LIFState | None = None) -> tuple[Tensor, LIFState]:
        """Task inputs ``[T, B, img_pixels + N]`` -> the readout network's input spikes
        ``[T * F, B, C + N]`` (encoder spikes, teaching spikes) and the encoder's final state."""
        self._check_inputs(inputs)
        T, B = inputs.shape[0], inputs.shape[1]
        z = self.embed.embed(inputs[..., : self.img_pixels].reshape(T * B, self.img_pixels)).reshape(T, B, -1)
        return self.spike_encode(z, inputs[..., self.img_pixels:], enc)

    def spike_encode(self, z: Tensor, label: Tensor, enc: LIFState | None = None) -> tuple[Tensor, LIFState]:
        """Features ``z`` ``[T, B, C]`` and labels ``[T, B, N]`` (one-hot or zeros) -> input spikes
        ``[T * F, B, C + N]`` and the encoder's final state (the encoder half of :meth:`encode_episode`)."""
        if z.dim() != 3 or z.shape[-1] != self.channels or tuple(label.shape) != (*z.shape[:2], self.n_way):
            raise ValueError(f"z, label: expected [T, B, {self.channels}] and [T, B, {self.n_way}], "
                             f"got {tuple(z.shape)} and {tuple(label.shape)}")
        # standardised over channels: the encoder always sees a pattern (unnormalised, a network
        # that silences every feature at once sits at the uniform-prediction loss with no gradient)
        c = torch.nn.functional.layer_norm(z, (self.channels,)) * self.enc_gain + self.enc_bias
        teach = (label != 0).to(c.dtype)
        st = self.encoder.initial_state(z.shape[1]) if enc is None else enc
        zero, no_label = torch.zeros_like(c[0]), torch.zeros_like(teach[0])
        feats, labels = [], []
        for t in range(z.shape[0]):
            for k in range(self.frame):
                shown = k < self.steps_per_image
                st = self.encoder(c[t] if shown else zero, st)
                feats.append(st.s)
                labels.append(teach[t] if shown else no_label)
        if self.teacher == "relay":  # the features one step late, to meet the label that the relay delays by one
            feats = [torch.zeros_like(feats[0])] + feats[:-1]   # the dropped last step is a gap step: no input
        return torch.cat([torch.stack(feats), torch.stack(labels)], dim=-1), st

    def frame_logits(self, currents: Tensor) -> Tensor:
        """The output neurons' currents ``[T * F, B, N]`` -> logits ``[T, B, N]`` (mean over offsets ``delay..P+delay-1``, x kappa)."""
        F_, P = self.frame, self.steps_per_image
        if currents.dim() != 3 or currents.shape[0] % F_ != 0:
            raise ValueError(f"currents: expected [T * {F_}, B, {self.n_way}], got {tuple(currents.shape)}")
        u = currents.reshape(currents.shape[0] // F_, F_, *currents.shape[1:])
        d = self.delay
        return self.kappa * u[:, d:P + d].mean(dim=1)

    def lean_unsupported(self) -> str | None:
        from . import lean

        try:
            lean.check_network(self.readout)
        except ValueError as e:
            return str(e).removeprefix("lean path: ")
        if any(p.quantum is not None for p in self.readout.pops.values()):
            return "the readout emulates Loihi's integer state (lava='fixed'), which the lean path does not model"
        return None

    def _run(self, inputs: Tensor, state: SpikingOneShotState | None, lean_path: bool) -> tuple[Tensor, SpikingOneShotState]:
        self._check_inputs(inputs)
        B = inputs.shape[1]
        if state is None:
            state = self.initial_state(B)
        xs, enc = self.encode_episode(inputs, state.enc)
        logits, net = self.readout_logits(xs, state.net, lean_path=lean_path)
        return logits, SpikingOneShotState(enc, net)

    def readout_logits(self, xs: Tensor, net: Any = None, *, lean_path: bool | None = None) -> tuple[Tensor, Any]:
        """The readout half of :meth:`forward`: input spikes ``xs`` ``[T * F, B, C + N]`` (from
        :meth:`encode_episode`) -> per-step logits ``[T, B, N]`` and the readout's final state.
        ``lean_path`` None: as :meth:`forward` chooses (:meth:`use_lean`)."""
        if lean_path is None:
            lean_path = self.use_lean()
        if lean_path:
            from . import lean

            rec, net = lean.network_forward(self.readout, xs, net, record=("currents",))
        else:
            rec, net = self.readout(xs, net, record=("currents",))
        assert rec.currents is not None
        return self.frame_logits(rec.currents["out"]), net

    def lean_forward(self, inputs: Tensor, state: SpikingOneShotState | None = None) -> tuple[Tensor, SpikingOneShotState]:
        reason = self.lean_unsupported()
        if reason is not None:
            raise ValueError(f"lean path: {reason}")
        return self._run(inputs, state, True)

    def forward(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """The whole episode at once: the embedding of all ``T * B`` images in one call, then the readout
        (through :func:`spikeplastic.lean.network_forward` when :meth:`use_lean` says so)."""
        return self._run(inputs, state, self.use_lean())

    def step(self, x: Tensor, state: SpikingOneShotState) -> tuple[Tensor, SpikingOneShotState]:
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"x: expected [B, {self.n_in}], got {tuple(getattr(x, 'shape', ()))}")
        out, st = self._run(x.unsqueeze(0), state, False)
        return out[0], st

    def export_meta(self) -> dict[str, Any]:
        """JSON-able description of the parts around the readout (stored with its IR)."""
        return {"kind": "snn-oneshot", "n_way": self.n_way, "channels": self.channels,
                "steps_per_image": self.steps_per_image, "gap_steps": self.gap_steps,
                "kappa": float(self.kappa.detach()), "lava": self.lava, "teacher": self.teacher,
                "readout": f"mean current u of 'out', frame offsets {self.delay}..{self.steps_per_image + self.delay - 1}"}

