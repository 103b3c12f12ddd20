r"""e-prop as the outer loop (``TrainConfig(outer="eprop")``, ``spikeplastic train --outer eprop``).

Forward-mode, online, approximate meta-gradients for the spiking plastic layer of a
:class:`~spikeplastic.models.SpikingModel`, in the spirit of e-prop (Bellec et al. 2020, "A solution
to the learning dilemma for recurrent networks of spiking neurons", Nat. Commun. 11:3625): every
meta-parameter carries an *eligibility trace* forward in time, the loss gradient w.r.t. the output
of a step (the *learning signal*) is combined with the traces of that step, and nothing of the
episode is kept for a backward pass, so the memory does not grow with the episode length ``T``.

The network is run by the same step functions as everywhere (:mod:`spikeplastic.functional`:
:func:`~spikeplastic.functional.plastic_current` through ``PlasticLinear.current``, the STDP rule's
:func:`~spikeplastic.functional.stdp_traces_step` / :func:`~spikeplastic.functional.stdp_update` and
:func:`~spikeplastic.functional.synaptic_update` through ``PlasticLinear.update``,
:func:`~spikeplastic.functional.lif_step`), so its outputs are the model's outputs bit for bit; the
eligibility recursions below are the derivatives of those equations and call the same functions
where the derivative has the same form.

Dynamics (one hidden LIF population ``j``; projections ``p`` into it from the input or from the
hidden layer itself, pre activity ``z^p[t-1]`` = the encoded input ``x[t-1]`` or the spikes ``s[t-1]``)::

    a_j[t]  = sum_p sum_i (w^p_ji + alpha^p_ji H^p_ji) z^p_i[t-1]                 plastic_current
    x'      = lam+ x + A+ z[t-1],   y' = lam- y + A- s[t-1],  lam = exp(-1/tau)    stdp_traces_step
    e       = s[t-1] x'^T - y' z[t-1]^T                                          stdp_update
    H'      = (1 - d) H + e                                                       synaptic_update
    u_j[t]  = (1 - du) u_j[t-1] + a_j[t],   v_j[t] = (1 - dv) v^r_j[t-1] + u_j[t] + b
    s_j[t]  = Theta(v_j[t] - vth),          v^r_j[t] = v_j[t] (1 - s_j[t])            lif_step (zero reset)
    r_j[t]  = kappa r_j[t-1] + s_j[t],      y = read(r) at the end of each frame      SpikingModel

The approximations (what "e-prop" means here):

1. the spikes ``z[t-1]`` that enter the synaptic current are constants: the recurrent
   spike -> current -> spike paths are ignored (e-prop's ``dE/dz`` only through the readout);
2. the rule sees its spikes as constants (``PlasticLinear(rule_input_grad=False)``): ``H`` depends on
   the meta-parameters only through ``A+-``, ``tau+-`` and ``d``, along the realised spikes;
3. the reset is detached (``lif_step(detach_reset=True)``, the default).

On a network without recurrence (every projection from the input) 1 is no approximation, and with
2 and 3 on the BPTT side the gradient equals BPTT's (tested in float64 to 1e-10).

Eligibility recursions, for every meta-parameter ``theta`` (``eps^u = du/dtheta``, ``eps^v = dv^r/dtheta``,
``eps^r = dr/dtheta`` per neuron; per synapse ``[B, n_post, n_pre]`` for ``w`` and ``alpha``, per neuron
``[B, n]`` for the scalars)::

    delta_j[t] = da_j[t]/dtheta:   w^p_ji: z^p_i[t-1];   alpha^p_ji: H^p_ji z^p_i[t-1];
                                   A+-, tau+-, d of p: sum_i alpha^p_ji Xi^p_ji z^p_i[t-1]   (plastic_part);
                                   b: 0
    eps^u[t]   = (1 - du) eps^u[t-1] + delta[t]
    eps^v-[t]  = (1 - dv) eps^v[t-1] + eps^u[t]  (+ 1 for b)
    e[t]       = psi[t] eps^v-[t],        psi = surrogate'(v[t] - vth)   (the eligibility trace)
    eps^v[t]   = (1 - s[t]) eps^v-[t]     (zero reset; subtractive reset: eps^v-[t])
    eps^r[t]   = kappa eps^r[t-1] + e[t]  (the readout-filtered eligibility trace)

with ``Xi_phi = dH/dphi`` ``[B, n_post, n_pre]`` for the rule's scalars, carried by the same update
as ``H`` (``Xi`` is read before this step's update, as ``H`` is)::

    dx/dA+'  = lam+ dx/dA+ + z                  dx/dtau+' = lam+ dx/dtau+ + x lam+ / tau+^2    (trace_step)
    dy/dA-'  = lam- dy/dA- + s                  dy/dtau-' = lam- dy/dtau- + y lam- / tau-^2
    de/dA+   = s dx/dA+'^T,  de/dtau+ = s dx/dtau+'^T,  de/dA- = -dy/dA-' z^T,  de/dtau- = -dy/dtau-' z^T
    Xi_phi'  = (1 - d) Xi_phi + de/dphi,        Xi_d' = (1 - d) Xi_d - H             (synaptic_update)

Gradient: with the learning signal ``L_j[t] = dLoss/dr_j[t]`` (the loss gradient w.r.t. the output
of frame ``t`` through the readout, by autograd on that one step; the readout's own parameters get
their exact gradient there too)::

    dLoss/dtheta ~= sum_t sum_j L_j[t] eps^r_j[t]

accumulated online; the sums are gradients w.r.t. the *mapped* values (``tau``, ``A``, ``d``, ...),
carried to the raw parameters by autograd through the maps (softplus, sigmoid, straight-through
transforms) once per episode. The supervised tasks' losses read the final output only
(``outputs[-1]``), so their learning signal is non-zero at the last frame only; the run checks it.

State: ``eps^u, eps^v, eps^r`` ``[B, n, n_pre]`` per learnable ``w``/``alpha``; per learnable rule scalar
or decay ``Xi`` ``[B, n, n_pre]``, (rule scalars) the trace tangent ``[B, n_pre]`` or ``[B, n]`` and
``eps^u, eps^v, eps^r`` ``[B, n]``; ``3 x [B, n]`` for the bias; the accumulated gradients: independent
of ``T`` (:func:`eligibility_bytes`; 0.98 MB for ``snn-stdp`` on ``pattern50`` at ``B = 8``). Cost per
step: a small multiple of the forward's (plain torch ops; 0.42x BPTT's episodes/s there at ``T = 11``).

Supported models: :data:`EPROP_MODELS` (a :class:`~spikeplastic.models.SpikingModel` whose
projections all end in the hidden population, pair STDP or static, no neuromodulation, no clip, no
Loihi integer-state emulation; learnable: projection weights, ``alpha``, STDP amplitudes and time
constants, decay, the LIF bias, the readout). Anything else raises ``ValueError`` naming ``outer``
before training starts (:func:`check_eprop`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..functional.lif import LIFState, lif_step
from ..functional.plasticity import STDPTraces, decay_factor, stdp_update, trace_step
from ..functional.synapse import plastic_part, synaptic_update
from ..protocol import EpisodeModel, RLTask, SupervisedTask

__all__ = ["EPROP_MODELS", "EpropState", "check_eprop", "eprop_run", "eprop_gradients", "eligibility_bytes",
           "eprop_episode"]

#: model ids ``outer="eprop"`` supports
EPROP_MODELS = ("snn-stdp", "snn-static")

_RULE_SCALARS = ("a_plus", "a_minus", "tau_plus", "tau_minus")


class EpropState(NamedTuple):
    """The run's state: the network's (``net``, a :class:`~spikeplastic.NetworkState`), the readout trace
    ``r`` ``[B, n_hidden]``, the eligibility traces ``elig`` (name -> tensor) and the accumulated
    gradients ``grads`` w.r.t. the mapped values (name -> tensor of the value's shape)."""

    net: Any
    r: Tensor
    elig: dict[str, Tensor]
    grads: dict[str, Tensor]


def _unsupported(model: Any) -> str | None:
    """Why ``model`` cannot be trained by e-prop (``None``: it can)."""
    from ..models import SpikingModel
    from ..rules import STDP

    if not isinstance(model, SpikingModel):
        return f"{type(model).__name__} is not a SpikingModel"
    net = model.network
    if list(net.pops) != ["hidden"]:
        return f"the network has populations {list(net.pops)}, not one hidden population"
    pop = net.pops["hidden"]
    if pop.quantum is not None:
        return "the hidden LIF emulates Loihi's integer state (lava='fixed')"
    for name, layer in net.projs.items():
        pre, post = net.topology[name]
        if post != "hidden" or pre not in ("in", "hidden"):
            return f"projection {name} is not in->hidden or hidden->hidden"
        if layer.modulation is not None:
            return f"projection {name} is neuromodulated"
        if layer.rule is not None and not isinstance(layer.rule, STDP):
            return f"projection {name} learns by {type(layer.rule).__name__}, not pair STDP"
        if layer.clip is not None:
            return f"projection {name} clips its plastic part (clip={layer.clip})"
    covered = {id(p) for p in _readout_params(model)}
    for _, m in _quantities(model).items():
        covered.add(id(m.raw))
    extra = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
    if extra:
        return f"it has trainable parameters e-prop does not model: {extra}"
    return None


def check_eprop(model: EpisodeModel, task: SupervisedTask | RLTask | None = None, model_id: str | None = None) -> None:
    """``ValueError`` naming ``outer`` unless e-prop can train ``model`` on ``task`` (module docstring)."""
    if isinstance(task, RLTask):
        raise ValueError(f"outer='eprop' trains supervised tasks only (a loss gradient per output); "
                         f"{getattr(task, 'name', type(task).__name__)!r} is an RL task (use outer='bptt' or 'es')")
    reason = _unsupported(model)
    if model_id is not None and model_id not in EPROP_MODELS and reason is None:
        from ..models import MODELS

        if model_id in MODELS:
            reason = "it is not one of them"
    if reason is not None:
        label = repr(model_id) if model_id is not None else type(model).__name__
        raise ValueError(f"outer='eprop' supports the models {list(EPROP_MODELS)}; model {label} cannot use it: {reason}")


def _readout_params(model: Any) -> list[torch.nn.Parameter]:
    if model.readout is None:
        return [p for p in (model.readout_gain, model.readout_bias) if p.requires_grad]
    return [p for p in model.readout.parameters() if p.requires_grad]


def _quantities(model: Any) -> dict[str, Any]:
    """The learnable :class:`~spikeplastic._params.Constrained` quantities e-prop follows, by key
    (``"<proj>.weight"``, ``"<proj>.alpha"``, ``"<proj>.decay"``, ``"<proj>.a_plus"``, ..., ``"bias"``)."""
    net = model.network
    out: dict[str, Any] = {}
    for name, layer in net.projs.items():
        cands = {"weight": layer.weight, "alpha": layer.alpha, "decay": layer.decay if layer.plastic else None}
        if layer.rule is not None and hasattr(layer.rule, "a_plus"):
            cands.update({k: getattr(layer.rule, k) for k in _RULE_SCALARS})
        for k, m in cands.items():
            if m is not None and m.learn:
                out[f"{name}.{k}"] = m
    pop = net.pops["hidden"]
    if pop.bias.learn:
        out["bias"] = pop.bias
    return out


def eligibility_bytes(state: EpropState) -> int:
    """Bytes held by the eligibility traces, the accumulated gradients, the network state and the
    readout trace of ``state`` (what the run keeps between steps; independent of ``T``)."""
    ts: list[Tensor] = [state.r, *state.elig.values(), *state.grads.values()]
    net = state.net
    for n in net.neurons.values():
        ts += list(n)
    for syn in net.synapses.values():
        ts += [t for t in (syn.H, syn.E) if t is not None]
        if isinstance(syn.rule, tuple):
            ts += [t for t in syn.rule if isinstance(t, Tensor)]
    ts.append(net.x_prev)
    return sum(t.numel() * t.element_size() for t in ts)


class _Run:
    """One e-prop run of a model (values mapped once; the step of the module docstring)."""

    def __init__(self, model: Any) -> None:
        reason = _unsupported(model)
        if reason is not None:
            raise ValueError(f"outer='eprop': {type(model).__name__} is not supported: {reason}")
        self.model = model
        self.net = model.network
        self.pop = self.net.pops["hidden"]
        self.q = _quantities(model)
        self.readout = _readout_params(model)
        with torch.no_grad():
            self.lif = self.pop.params()
            self.alpha = {n: (None if l.alpha is None else l.alpha()) for n, l in self.net.projs.items()}
            self.decay = {n: l.decay() for n, l in self.net.projs.items()}
            self.rule = {n: {k: getattr(l.rule, k)() for k in _RULE_SCALARS} for n, l in self.net.projs.items()
                         if l.rule is not None}

    def _decay_arg(self, name: str) -> Tensor | None:
        layer = self.net.projs[name]
        d = self.decay[name]
        return None if (not layer.decay.learn and float(d) == 0.0) else d

    def initial_state(self, batch: int) -> EpropState:
        st = self.model.initial_state(batch)
        n = self.model.n_hidden
        ref = st.trace
        elig: dict[str, Tensor] = {}
        grads: dict[str, Tensor] = {}
        for key, m in self.q.items():
            proj, _, kind = key.rpartition(".")
            v = m().detach()
            grads[key] = torch.zeros_like(v)
            if kind in ("weight", "alpha") and v.dim() == 2:
                shape: tuple[int, ...] = (batch, *v.shape)
            else:
                shape = (batch, n)
            for c in ("u", "v", "r"):
                elig[f"{key}:{c}"] = ref.new_zeros(shape)
            if kind in _RULE_SCALARS or kind == "decay":
                layer = self.net.projs[proj]
                elig[f"{key}:H"] = ref.new_zeros(batch, layer.n_out, layer.n_in)
                if kind in _RULE_SCALARS:
                    size = layer.n_in if kind.endswith("plus") else layer.n_out
                    elig[f"{key}:trace"] = ref.new_zeros(batch, size)
        for i, p in enumerate(self.readout):
            grads[f"readout:{i}"] = torch.zeros_like(p)
        return EpropState(st.net, st.trace, elig, grads)

    # ---- one spiking step --------------------------------------------------------------------------
    def step(self, xk: Tensor, state: EpropState) -> EpropState:
        net, st = self.net, state.net
        hid = st.neurons["hidden"]
        s_prev = hid.s
        elig = dict(state.elig)
        currents: Tensor | None = None
        synapses = {}
        delta: dict[str, Tensor] = {}  # da/dtheta of this step
        for name, layer in net.projs.items():
            pre = st.x_prev if net.topology[name][0] == "in" else s_prev
            syn = st.synapses[name]
            a = layer.current(syn, pre)  # plastic_current
            currents = a if currents is None else currents + a
            alpha = self.alpha[name]
            if f"{name}.weight" in self.q:
                delta[f"{name}.weight"] = pre.unsqueeze(-2)  # [B, 1, n_pre], broadcast over post
            if f"{name}.alpha" in self.q:
                if layer.alpha_mode == "per_synapse":
                    delta[f"{name}.alpha"] = syn.H * pre.unsqueeze(-2)
                else:
                    delta[f"{name}.alpha"] = plastic_part(syn.H, None, pre, layer.alpha_mode)
            if layer.plastic:
                for k in (*_RULE_SCALARS, "decay"):
                    key = f"{name}.{k}"
                    if key in self.q:
                        delta[key] = plastic_part(elig[f"{key}:H"], alpha, pre, layer.alpha_mode)
                self._rule_tangents(name, layer, syn, pre, s_prev, elig)
                synapses[name] = layer.update(syn, pre, s_prev, None)  # stdp + synaptic_update
            else:
                synapses[name] = syn
        assert currents is not None
        seen: dict[str, Tensor] = {}

        def spike_fn(x: Tensor) -> Tensor:
            seen["x"] = x
            return self.pop.spike_fn(x)

        p = self.lif
        new = lif_step(currents, hid, p.du, p.dv, p.vth, p.bias, spike_fn, self.pop.reset, self.pop.detach_reset, None)
        psi = self.pop.spike_fn.scaled_grad(seen["x"])
        keep = (1 - new.s) if self.pop.reset == "zero" else None
        kappa = self.model.trace_decay
        for key in self.q:
            syn_shaped = elig[f"{key}:u"].dim() == 3
            du, dv = _col(p.du, syn_shaped), _col(p.dv, syn_shaped)
            ps = psi.unsqueeze(-1) if syn_shaped else psi
            eu = elig[f"{key}:u"] * (1 - du) + delta.get(key, 0.0)
            ev = elig[f"{key}:v"] * (1 - dv) + eu
            if key == "bias":
                ev = ev + 1.0
            e = ps * ev
            if keep is not None:
                ev = ev * (keep.unsqueeze(-1) if syn_shaped else keep)
            elig[f"{key}:u"], elig[f"{key}:v"] = eu, ev
            elig[f"{key}:r"] = elig[f"{key}:r"] * kappa + e
        r = state.r * kappa + new.s
        from ..network import NetworkState

        return EpropState(NetworkState({"hidden": new}, synapses, xk, None), r, elig, state.grads)

    def _rule_tangents(self, name: str, layer: Any, syn: Any, pre: Tensor, post: Tensor,
                       elig: dict[str, Tensor]) -> None:
        """``Xi`` and the trace tangents of projection ``name`` for the update of this step (docstring)."""
        d = self._decay_arg(name)
        dkey = f"{name}.decay"
        if dkey in self.q:  # Xi_d' = (1 - d) Xi_d - H
            elig[f"{dkey}:H"], _ = synaptic_update(elig[f"{dkey}:H"], -syn.H, decay=d)
        if layer.rule is None:
            return
        vals = self.rule[name]
        tr: STDPTraces = syn.rule
        for k in _RULE_SCALARS:
            key = f"{name}.{k}"
            if key not in self.q:
                continue
            plus = k.endswith("plus")
            tau = vals["tau_plus" if plus else "tau_minus"]
            spikes = pre if plus else post
            old = elig[f"{key}:trace"]
            if k.startswith("a_"):  # d(trace)/dA' = lam d(trace)/dA + spikes
                new_t = trace_step(old, spikes, tau, 1.0)
            else:  # d(trace)/dtau' = lam d(trace)/dtau + trace lam / tau^2
                lam = decay_factor(tau)
                new_t = trace_step(old, tr.x if plus else tr.y, tau, lam / tau**2)
            elig[f"{key}:trace"] = new_t
            zeros_x, zeros_y = torch.zeros_like(tr.x), torch.zeros_like(tr.y)
            de = stdp_update(STDPTraces(new_t, zeros_y) if plus else STDPTraces(zeros_x, new_t), pre, post)
            elig[f"{key}:H"], _ = synaptic_update(elig[f"{key}:H"], de, decay=d)

    # ---- learning signal -----------------------------------------------------------------------------
    def learn(self, state: EpropState, g_y: Tensor) -> EpropState:
        """Add ``sum_j L_j eps^r_j`` for the output gradient ``g_y = dLoss/dy`` ``[B, n_out]`` of the current frame."""
        r = state.r.detach().requires_grad_(True)
        with torch.enable_grad():
            y = self.model.read(r)
            gs = torch.autograd.grad(y, [r, *self.readout], g_y, allow_unused=True)
        L = gs[0]
        grads = dict(state.grads)
        for i, g in enumerate(gs[1:]):
            if g is not None:
                grads[f"readout:{i}"] = grads[f"readout:{i}"] + g
        for key, acc in state.grads.items():
            if key.startswith("readout:"):
                continue
            er = state.elig[f"{key}:r"]
            if er.dim() == 3:
                g = torch.einsum("bj,bji->ji", L, er)
            else:
                g = (L * er).sum(0)
            grads[key] = acc + g.reshape(acc.shape) if g.numel() == acc.numel() else acc + g.sum()
        return state._replace(grads=grads)

    def parameter_grads(self, state: EpropState) -> dict[str, Tensor]:
        """The accumulated gradients carried to the raw parameters (autograd through the maps), by parameter name."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        out: dict[str, Tensor] = {}
        keys = list(self.q)
        if keys:
            with torch.enable_grad():
                vals = [self.q[k]() for k in keys]
                raws = [self.q[k].raw for k in keys]
                gs = torch.autograd.grad(vals, raws, [state.grads[k] for k in keys], allow_unused=True)
            for k, raw, g in zip(keys, raws, gs):
                out[names[id(raw)]] = torch.zeros_like(raw) if g is None else g
        for i, p in enumerate(self.readout):
            out[names[id(p)]] = state.grads[f"readout:{i}"]
        return out


def _col(v: Tensor, syn_shaped: bool) -> Tensor:
    """A decay (scalar or ``[n]``) shaped to multiply ``[B, n]`` or ``[B, n, n_pre]`` tensors."""
    return v.unsqueeze(-1) if syn_shaped and v.dim() == 1 else v


def eprop_run(
    model: EpisodeModel, inputs: Tensor, signal: Callable[[int, Tensor], Tensor | None],
    *, state_bytes: list[int] | None = None, keep_outputs: bool = True,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Run ``model`` on task inputs ``inputs`` ``[T, B, n_in]`` with e-prop (module docstring).

    ``signal(t, y_t)`` gives the learning signal of frame ``t``: ``dLoss/dy_t`` ``[B, n_out]``, or ``None``
    (no loss on that output). Returns the outputs ``[T, B, n_out]`` (detached; the model's forward
    outputs) and the e-prop gradient w.r.t. every trainable parameter, by name. ``state_bytes``: a list
    that receives :func:`eligibility_bytes` of the state after every frame (for measurements).
    """
    run = _Run(model)
    if not isinstance(inputs, Tensor) or inputs.dim() != 3 or inputs.shape[-1] != model.n_in:
        raise ValueError(f"inputs: expected [T, B, {model.n_in}], got {tuple(getattr(inputs, 'shape', ()))}")
    state = run.initial_state(inputs.shape[1])
    outs = []
    s = model.steps_per_frame
    with torch.no_grad():
        for t in range(inputs.shape[0]):
            xs = model.encode(inputs[t:t + 1])
            for k in range(s):
                state = run.step(xs[k], state)
            y = model.read(state.r)
            if keep_outputs or t == inputs.shape[0] - 1:
                outs.append(y)
            g = signal(t, y)
            if g is not None:
                if not isinstance(g, Tensor) or g.shape != y.shape:
                    raise ValueError(f"signal: expected dLoss/dy of shape {tuple(y.shape)} or None at frame {t}, "
                                     f"got {getattr(g, 'shape', g)!r}")
                state = run.learn(state, g.to(y.dtype))
            if state_bytes is not None:
                state_bytes.append(eligibility_bytes(state))
    return torch.stack(outs), run.parameter_grads(state)


def eprop_gradients(
    model: EpisodeModel, inputs: Tensor, loss: Callable[[Tensor], Tensor], *, outputs: str = "all",
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """e-prop for a loss of the *final* output (all supervised tasks of spikeplastic), evaluated at the last
    frame; its gradient w.r.t. the last output is the learning signal.

    ``outputs="all"``: ``loss`` gets every output ``[T, B, n_out]`` (kept during the run), and a loss that
    also depends on earlier outputs raises ``ValueError`` (e-prop would have needed their learning
    signals when those frames ran: use :func:`eprop_run` with a per-step signal). ``"last"``: ``loss``
    gets the final output only, ``[1, B, n_out]`` (the tasks' losses read ``outputs[-1]`` whatever
    ``T'``), and nothing of the episode is kept: memory independent of ``T``.

    Returns ``(outputs as given to loss (detached), loss value, gradients by parameter name)``.
    """
    if outputs not in ("all", "last"):
        raise ValueError(f"outputs: expected 'all' or 'last', got {outputs!r}")
    T = inputs.shape[0]
    prev: list[Tensor] = []
    value: list[Tensor] = []
    keep = outputs == "all"

    def signal(t: int, y: Tensor) -> Tensor | None:
        if keep:
            prev.append(y)
        if t < T - 1:
            return None
        if not keep:
            prev.append(y)
        with torch.enable_grad():
            Y = torch.stack(prev).detach().requires_grad_(True)
            L = loss(Y)
            (g,) = torch.autograd.grad(L, Y, allow_unused=True)
        value.append(L.detach())
        prev[:] = [Y.detach()]
        if g is None:
            return torch.zeros_like(y)
        if g.shape[0] > 1 and bool((g[:-1] != 0).any()):
            raise ValueError("outer='eprop': the loss depends on outputs before the last one; e-prop needs each "
                             "step's learning signal online (eprop_run with a per-step signal)")
        return g[-1]

    _, grads = eprop_run(model, inputs, signal, keep_outputs=False)
    return prev[0], value[0], grads


def eprop_episode(tr: Any) -> tuple[Any, dict[str, Tensor]]:
    """One batch of training episodes of ``tr`` (a :class:`~spikeplastic.meta.trainer.Trainer`) by e-prop:
    ``(EpisodeResult with a detached loss, gradients by parameter name)``."""
    from .episodes import EpisodeResult, slice_episode

    task = tr.task
    assert isinstance(task, SupervisedTask)
    ep = task.sample(tr.config.batch, tr.task_gen, tr.device, **(tr._split_kwargs("train") or {}))
    if tr._part is not None:
        ep = slice_episode(ep, tr._part)
    # the first step of a trainer keeps every output and checks that the loss reads the last one only;
    # later steps keep nothing of the episode (memory independent of T)
    mode = "last" if getattr(tr, "_eprop_checked", False) else "all"
    outputs, loss, grads = eprop_gradients(tr.model, ep.inputs, lambda out: task.loss(out, ep), outputs=mode)
    tr._eprop_checked = True
    metric = task.metric(outputs, ep)
    return EpisodeResult(loss, float(metric)), grads

