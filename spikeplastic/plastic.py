"""Plastic synaptic projection: fixed weight plus a per-sample plastic part driven by a rule."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from . import ir
from ._params import Constrained
from ._validation import check_choice, check_finite, check_int, check_positive, check_range
from .functional.synapse import plastic_current, synaptic_update
from .modulation import Neuromodulation
from .rules import NodePerturbation, PlasticityRule, make_rule, rule_from_ir

__all__ = ["PlasticLinear", "PlasticState"]


class PlasticState(NamedTuple):
    """Per-episode state of a projection.

    ``H``: plastic part ``[B, n_post, n_pre]`` as seen by the forward pass (two updates behind the
    spikes, Lava's timing; ``None`` when static); ``E``: eligibility trace (retroactive modulation
    only); ``rule``: the rule's own state (e.g. STDP traces).
    """

    H: Tensor | None
    E: Tensor | None
    rule: Any


class PlasticLinear(nn.Module):
    r"""Synapses ``W = w + alpha * H`` with ``H`` learned during the episode by ``rule``.

    Forward (one step of synaptic delay, Lava's ``LearningDense`` timing)::

        a[t] = (w + alpha * H[t-2]) @ s_pre[t-1]

    Update (called by the network once the spikes of step ``t`` are known; ``e`` from the rule)::

        H[t] = clip((1 - decay) * H[t-1] + m[t] * e[t])           no / simple modulation
        H[t] = clip((1 - decay) * H[t-1] + m[t] * E[t-1]),  E[t] = (1-eta_e) E[t-1] + eta_e e[t]

    (``m`` passed through the rule's :meth:`~spikeplastic.PlasticityRule.gate`, e.g. node
    perturbation's reward baseline.) A rule with a :meth:`~spikeplastic.PlasticityRule.perturbation`
    (node perturbation) also adds its noise current to the postsynaptic input (:meth:`perturbation`).

    ``alpha="per_synapse"`` (``[n_out, n_in]``, Miconi 2018), ``"shared"`` (a scalar) or ``"none"``
    (coefficient fixed to 1: ``W = w + H``, plain STDP). With ``rule=None`` the projection is static.
    ``decay`` pulls ``W`` back towards the fixed weight ``w``. The plastic part lives in the state
    (per episode, per batch element), never in ``.data``.

    Args:
        n_in, n_out: sizes. rule: a :class:`~spikeplastic.rules.PlasticityRule`, a rule name, or None.
        alpha: ``"per_synapse" | "shared" | "none"``. alpha_init: initial coefficient value(s).
        decay: rate in [0, 1] (0: none); learn_decay makes it learnable (sigmoid).
        clip: clip ``H`` to ``[-clip, clip]`` (torch only; not exportable to Lava).
        modulation: a :class:`~spikeplastic.modulation.Neuromodulation` third factor, or None.
        weight: initial fixed weight ``[n_out, n_in]`` (default ``U(-s/sqrt(n_in), s/sqrt(n_in))`` with
            ``s = weight_scale``, a finite number >= 0). Every initial value must be finite.
        learn_weight, learn_alpha: make ``w`` / ``alpha`` learnable.
        rule_input_grad: whether gradients flow from the rule back into the activity it reads.
            ``True`` (default): exact (surrogate) BPTT through ``pre``/``post`` into ``e``.
            ``False``: the rule sees ``pre``/``post`` as constants in the backward pass. The
            forward pass is unchanged, and gradients still reach every rule parameter (amplitudes,
            taus, ``eta``), ``alpha``, ``decay`` and ``w`` exactly along the realised activity, and
            reach the activity through the synaptic current ``(w + alpha*H) @ s_pre``; only the
            loop ``s -> e -> H -> current -> s`` is cut. In a spiking net with surrogate gradients
            that loop is a positive feedback whose gain grows with ``alpha*A/decay`` and the
            number of neurons under the surrogate, and it makes BPTT explode on long episodes
            (``docs/STABILITY.md``).

    Shape: ``s_pre`` ``[B, n_in]`` -> ``a`` ``[B, n_out]``.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        rule: PlasticityRule | str | None = None,
        alpha: str = "per_synapse",
        alpha_init: float | Tensor = 1.0,
        decay: float = 0.0,
        learn_decay: bool = False,
        clip: float | None = None,
        modulation: Neuromodulation | None = None,
        weight: Tensor | None = None,
        weight_scale: float = 1.0,
        learn_weight: bool = True,
        learn_alpha: bool = True,
        rule_input_grad: bool = True,
    ) -> None:
        super().__init__()
        self.n_in = check_int("n_in", n_in)
        self.n_out = check_int("n_out", n_out)
        self.rule = make_rule(rule)
        self.alpha_mode = check_choice("alpha", alpha, ["per_synapse", "shared", "none"])
        check_range("decay", decay, 0.0, 1.0)
        if clip is not None:
            check_positive("clip", clip)
        self.clip = None if clip is None else float(clip)
        if modulation is not None and not isinstance(modulation, Neuromodulation):
            raise TypeError(f"modulation must be a Neuromodulation or None, got {type(modulation).__name__}")
        if modulation is not None and self.rule is None:
            raise ValueError("modulation needs a plasticity rule (rule=None makes the projection static)")
        if modulation is None and self.rule is not None and self.rule.requires_third_factor:
            raise ValueError(f"rule={type(self.rule).__name__} needs a third factor: pass modulation=Neuromodulation(...) "
                             "(source=None: an external signal such as the reward; a population name: a learned one)")
        self.modulation = modulation
        if weight is None:
            check_positive("weight_scale", weight_scale, allow_zero=True)
            bound = float(weight_scale) / math.sqrt(n_in)
            weight = torch.empty(n_out, n_in).uniform_(-bound, bound)
        if not isinstance(weight, Tensor) or tuple(weight.shape) != (n_out, n_in):
            raise ValueError(f"weight must be a tensor of shape [{n_out}, {n_in}], got {getattr(weight, 'shape', weight)!r}")
        self.weight = Constrained(weight.detach(), "real", learn_weight, name="weight", flag="learn_weight")
        self.alpha: Constrained | None = None
        if self.rule is not None and self.alpha_mode != "none":
            a = check_finite("alpha_init", alpha_init)
            if self.alpha_mode == "per_synapse":
                a = a.expand(n_out, n_in).clone() if a.dim() == 0 else a
                if tuple(a.shape) != (n_out, n_in):
                    raise ValueError(f"alpha_init must be a scalar or [{n_out}, {n_in}], got {tuple(a.shape)}")
            elif a.dim() != 0:
                raise ValueError(f"alpha_init must be a scalar with alpha='shared', got shape {tuple(a.shape)}")
            self.alpha = Constrained(a, "real", learn_alpha, name="alpha_init", flag="learn_alpha")
        self.decay = Constrained(decay, "open_unit" if learn_decay else "unit", learn_decay, name="decay",
                                 flag="learn_decay")
        if not isinstance(rule_input_grad, bool):
            raise TypeError(f"rule_input_grad: expected a bool, got {type(rule_input_grad).__name__} {rule_input_grad!r}")
        self.rule_input_grad = rule_input_grad

    @property
    def plastic(self) -> bool:
        return self.rule is not None

    # ---- state ----------------------------------------------------------------------------
    def initial_state(self, batch: int, *, noise_seed: int | None = None) -> PlasticState:
        """Zero plastic state for ``batch`` samples; ``noise_seed`` seeds a
        :class:`~spikeplastic.NodePerturbation` rule's noise stream (ignored by other rules)."""
        ref = self.weight()
        if self.rule is None:
            return PlasticState(None, None, None)
        H = ref.new_zeros(batch, self.n_out, self.n_in)
        E = H.clone() if (self.modulation is not None and self.modulation.mode == "retroactive") else None
        if isinstance(self.rule, NodePerturbation):
            rs = self.rule.initial_state(batch, self.n_in, self.n_out, ref, seed=noise_seed)
        else:
            rs = self.rule.initial_state(batch, self.n_in, self.n_out, ref)
        return PlasticState(H, E, rs)

    # ---- forward ----------------------------------------------------------------------------
    def effective_weight(self, state: PlasticState) -> Tensor:
        """``w + alpha * H`` (``[n_out, n_in]`` when static, ``[B, n_out, n_in]`` when plastic)."""
        w = self.weight()
        if state.H is None:
            return w
        return w + (state.H if self.alpha is None else self.alpha() * state.H)

    def current(self, state: PlasticState, s_pre: Tensor) -> Tensor:
        """Synaptic input ``(w + alpha*H) @ s_pre`` for ``s_pre`` ``[B, n_in]`` -> ``[B, n_out]``."""
        return plastic_current(self.weight(), state.H, None if self.alpha is None else self.alpha(), s_pre,
                               self.alpha_mode)

    def update(self, state: PlasticState, pre: Tensor, post: Tensor, m: Tensor | None) -> PlasticState:
        """Apply the plasticity of one step (``pre``/``post`` activity of that step, gate ``m``)."""
        if self.rule is None or state.H is None:
            return state
        if not self.rule_input_grad:
            pre, post = pre.detach(), post.detach()
        e, rs = self.rule.step(state.rule, pre, post, state.H)
        decay = self.decay()
        mod = self.modulation
        assert mod is None or m is not None, "a modulated projection needs the gate m"
        if m is not None:
            m, rs = self.rule.gate(rs, m)
        H, E = synaptic_update(
            state.H, e,
            decay=None if (not self.decay.learn and float(decay) == 0.0) else decay,
            gate=None if mod is None else m, E=state.E if mod is not None and mod.mode == "retroactive" else None,
            eta_e=None if mod is None or mod.mode != "retroactive" else mod.eta_e(), clip=self.clip,
        )
        return PlasticState(H, E, rs)

    def perturbation(self, state: PlasticState) -> tuple[Tensor | None, PlasticState]:
        """The current ``[B, n_out]`` the rule injects into the postsynaptic input at this step
        (``None`` for rules that inject none) and the new state; called once per step after :meth:`update`."""
        if self.rule is None:
            return None, state
        noise, rs = self.rule.perturbation(state.rule)
        return (None, state) if noise is None else (noise, state._replace(rule=rs))

    # ---- IR ----------------------------------------------------------------------------------
    def to_ir(self, name: str, pre: str, post: str) -> ir.Projection:
        def np64(t: Tensor) -> Any:
            return t.detach().cpu().double().numpy()

        return ir.Projection(
            name=name, pre=pre, post=post,
            weight=np64(self.weight()),
            rule=None if self.rule is None else self.rule.to_ir(),
            alpha=None if self.alpha is None else np64(self.alpha()),
            decay=float(self.decay().detach()),
            clip=self.clip,
            modulation=None if self.modulation is None else self.modulation.to_ir(),
        )

    @classmethod
    def from_ir(cls, p: ir.Projection) -> "PlasticLinear":
        """A fixed (non-learnable) projection holding the IR's exact values."""
        n_out, n_in = p.weight.shape
        alpha_mode = "none" if p.alpha is None else ("shared" if p.alpha.ndim == 0 else "per_synapse")
        mod = None
        if p.modulation is not None:
            pm = p.modulation
            mod = Neuromodulation(pm.mode, pm.source, per_neuron=pm.weight is not None and pm.weight.ndim == 2,
                                  eta_e=pm.eta_e, learn_eta=False)
            if pm.source is not None:
                mod.weight = nn.Parameter(torch.tensor(pm.weight), requires_grad=False)
                mod.bias = nn.Parameter(torch.tensor(pm.bias), requires_grad=False)
        layer = cls(
            n_in, n_out,
            rule=None if p.rule is None else rule_from_ir(p.rule),
            alpha=alpha_mode,
            alpha_init=torch.tensor(p.alpha) if p.alpha is not None else 1.0,
            decay=p.decay, clip=p.clip, modulation=mod,
            weight=torch.tensor(p.weight), learn_weight=False, learn_alpha=False,
        )
        return layer

    def extra_repr(self) -> str:
        extra = "" if self.rule_input_grad else ", rule_input_grad=False"
        return f"n_in={self.n_in}, n_out={self.n_out}, alpha={self.alpha_mode}, clip={self.clip}{extra}"
