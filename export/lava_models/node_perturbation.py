"""PerturbationFactor: node perturbation's noise current and learning signals, for one projection.

Each step ``t`` (1-based, Lava's ``time_step``), in this order and with no delay::

    a_out[t] = noise[:, t-1]                      perturbation of this step -> the post LIF's a_in
    m[t]     = m_in[t]                            (external: the third factor from a RingBuffer)
             = tanh(weight @ s_src[t] + bias)     (source spikes: the learned third factor)
    y1[t]    = noise[:, t]                        the next step's perturbation (what the spikes of
                                                  step t meet in the post input at t + 1)
    y2[t]    = m[t] - b,  b += eta_b * (m[t] - b) (baseline on; else y2 = m)

``noise`` ``[n_post, T + 1]`` is ``sigma * xi`` precomputed by the exporter from the counter-based
stream of :func:`spikeplastic.functional.perturbation_noise`, so Lava injects exactly the torch
noise. ``a_out`` is sent before anything is received, so a recurrent loop through the post
population cannot deadlock. Float CPU model only.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class PerturbationFactor(AbstractProcess):
    """Sends the perturbation current (``a_out``), ``y1`` (next perturbation) and ``y2`` (gate).

    Args:
        n_post: postsynaptic population size. n_src: size of ``m_in``.
        noise: ``[n_post, T + 1]`` perturbation currents (column ``k``: torch step ``k``).
        external: True: ``m = m_in`` (``n_src == n_post``); False: ``m = tanh(weight @ m_in + bias)``.
        weight: ``[n_post, n_src]`` (ignored when external). bias: ``[n_post]``.
        baseline: subtract the running baseline (rate ``eta_b``) from ``m``.
    """

    def __init__(self, *, n_post: int, n_src: int, noise: np.ndarray, external: bool, weight=None, bias=None,
                 baseline: bool = True, eta_b: float = 0.0, name: str | None = None) -> None:
        noise = np.asarray(noise, dtype=float)
        weight = np.zeros((n_post, n_src)) if weight is None else np.asarray(weight, dtype=float)
        bias = np.zeros(n_post) if bias is None else np.asarray(bias, dtype=float)
        super().__init__(n_post=n_post, n_src=n_src, external=external, name=name)
        self.m_in = InPort(shape=(n_src,))
        self.a_out = OutPort(shape=(n_post,))
        self.y1 = OutPort(shape=(n_post,))
        self.y2 = OutPort(shape=(n_post,))
        self.noise = Var(shape=noise.shape, init=noise)
        self.weight = Var(shape=(n_post, n_src), init=weight)
        self.bias = Var(shape=(n_post,), init=bias)
        self.external = Var(shape=(1,), init=int(bool(external)))
        self.use_baseline = Var(shape=(1,), init=int(bool(baseline)))
        self.eta_b = Var(shape=(1,), init=float(eta_b))
        self.baseline = Var(shape=(n_post,), init=0.0)


@implements(proc=PerturbationFactor, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPerturbationFactorFloat(PyLoihiProcessModel):
    m_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    y1: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    y2: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    noise: np.ndarray = LavaPyType(np.ndarray, float)
    weight: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    external: np.ndarray = LavaPyType(np.ndarray, int)
    use_baseline: np.ndarray = LavaPyType(np.ndarray, int)
    eta_b: np.ndarray = LavaPyType(np.ndarray, float)
    baseline: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        t = self.time_step
        self.a_out.send(self.noise[:, t - 1].copy())  # first: the post population waits for it
        src = self.m_in.recv()
        m = np.asarray(src, dtype=float) if self.external[0] else np.tanh(self.weight @ src + self.bias)
        if self.use_baseline[0]:
            # the same operations as spikeplastic.functional.reward_baseline_step
            d = m - self.baseline
            self.baseline[:] = self.baseline + self.eta_b[0] * d
            m = d
        self.y1.send(self.noise[:, t].copy())
        self.y2.send(m)
