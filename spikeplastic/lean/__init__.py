r"""Memory-lean whole-episode ops: BPTT through plastic networks without storing ``H`` per step.

Meta-learning backpropagates through every step of an episode, and every sample owns plastic
weights ``H`` ``[B, n_post, n_pre]``; plain autograd keeps such tensors per step (``O(T*B*N^2)``).
The ops here are custom :class:`torch.autograd.Function`\ s whose forward runs the time loop under
``no_grad`` with ``H`` updated in place, saving only per-step vectors (spikes as bits, input
currents when cheaper than one more ``H``, the rate net's activations) and chunk-start copies of the
small state; their backward runs backwards in time and gets ``H[t]`` back from ``H[t+1]`` by
**reverse** reconstruction ``H[t] = (H[t+1] - e[t]) / gamma`` (with exact copies bounding the
rounding amplification) or, where the update is not invertible, by chunked **recompute**
(:mod:`.plan`). Peak per plastic projection: about three ``B*N^2`` tensors (the final ``H``, the
backward's working copy, its adjoint; one more buffer for eager per-synapse alpha). A backward never
writes into what the graph saved, so a second one (``retain_graph=True``) repeats it bit for bit.

=================================  ==========================================================
:func:`plastic_lif_layer`           input spikes -> (pair-STDP or static) projection -> CUBA LIF
                                    population, optional (plastic) recurrent projection, with the
                                    core ``Network``'s timing ``a[t] = (w + alpha*H[t-2]) @ s_pre[t-1]``
:func:`network_forward`,            a core :class:`~spikeplastic.network.Network` that is a chain
:class:`LeanNetwork`                of such layers (:func:`check_network`)
:func:`hebb_rnn`                    the Hebbian rate recurrence ``y_t = tanh((W + alpha*H) y_{t-1}
                                    + x_t)``, ``H_t = (1-eta) H_{t-1} + eta * outer(y_t, y_{t-1})``
                                    (for ``PlasticRNN``: :mod:`spikeplastic.baselines.lean_rnn`)
:func:`fused_stdp_step`             one no-grad fused plastic step (input + traces + update)
=================================  ==========================================================

Backends (``backend=``): ``"reference"`` composes each step from :mod:`spikeplastic.functional`
(forward bit-identical to the core model; used by the tests); ``"inplace"`` updates ``H`` in place
(``addcmul_``, vector x matrix ``bmm``; no ``B*N^2`` allocation per step); ``"compile"`` compiles
each whole step (projections + LIF) with :func:`torch.compile` so a forward step reads and writes
``H`` once (C++/OpenMP on CPU, Triton on CUDA); ``"auto"`` picks ``"compile"`` from
``AUTO_COMPILE_MIN_ELEMENTS`` and ``"inplace"`` below; a failed compile warns once and falls back to
``"inplace"``. The fast backends agree with the core to rounding.

Modules: :mod:`.backend` (choice, compile cache), :mod:`.plan` (memory plan), :mod:`.stdp` and
:mod:`.hebb` (kernels), :mod:`.params`, :mod:`.layer_step`, :mod:`.layer_fwd`, :mod:`.layer_chunk`,
:mod:`.layer_bwd`, :mod:`.layer` (the spiking layer op), :mod:`.rnn` (the Hebbian rate op),
:mod:`.network` (the core ``Network`` adapter).

Example::

    >>> net = Network.feedforward([64, 32], rule="stdp")
    >>> rec, state = lean.network_forward(net, torch.bernoulli(torch.full((100, 4, 64), 0.1)))
    >>> rec.spikes["l1"].shape
    torch.Size([100, 4, 32])
"""
from __future__ import annotations

from .backend import _COMPILE_BROKEN, _COMPILED, AUTO_COMPILE_MIN_ELEMENTS, BACKENDS, MAX_AMPLIFICATION
from .rnn import hebb_rnn
from .layer import fused_stdp_step, plastic_lif_layer
from .network import LeanNetwork, check_network, network_forward
from .params import LayerOutput, LayerState, LeanLIF, LeanProjection, STDPParams

__all__ = [
    "BACKENDS",
    "MAX_AMPLIFICATION",
    "STDPParams",
    "LeanProjection",
    "LeanLIF",
    "LayerState",
    "LayerOutput",
    "plastic_lif_layer",
    "fused_stdp_step",
    "hebb_rnn",
    "network_forward",
    "check_network",
    "LeanNetwork",
]
