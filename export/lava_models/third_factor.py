"""ThirdFactor: the learning signals of a three-factor (neuromodulated) rule, for one projection.

Lava's ``LearningDense`` with a ``Loihi3FLearningRule`` reads the postsynaptic traces ``y1, y2, y3``
from its ``s_in_y1/2/3`` ports instead of computing them; Lava's own ``LearningLIF`` models never
send on those ports (a network wired as in the tutorial hangs). This process sends, each step ``t``
and in the same step (no delay)::

    y1[t] = y1[t-1]*exp(-1/tau) + impulse*s_post[t]          (STDP post trace, with this step's spike)
    y2[t] = m[t] = tanh(weight @ s_src[t] + bias)             (source="spikes")
    y2[t] = m[t] = ext[t]                                     (source="external": ext from a RingBuffer)

Ports: ``s_post`` (postsynaptic spikes, connect the post population's ``s_out``), ``m_in`` (source
spikes or the external signal), ``y1``/``y2`` (connect to ``LearningDense.s_in_y1/2``).
Float CPU model only.
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


class ThirdFactor(AbstractProcess):
    """Sends ``y1`` (post trace) and ``y2`` (third factor) to a three-factor ``LearningDense``.

    Args:
        n_post: postsynaptic population size. n_src: size of ``m_in``.
        external: True: ``m = m_in`` (then ``n_src == n_post``); False: ``m = tanh(weight @ m_in + bias)``.
        weight: ``[n_post, n_src]`` (ignored when external). bias: ``[n_post]``.
        y1_impulse, y1_tau: post trace parameters (``y1_impulse = 0``: ``y1`` stays 0).
    """

    def __init__(self, *, n_post: int, n_src: int, external: bool, weight=None, bias=None,
                 y1_impulse: float = 0.0, y1_tau: float = 1e300, name: str | None = None) -> None:
        weight = np.zeros((n_post, n_src)) if weight is None else np.asarray(weight, dtype=float)
        bias = np.zeros(n_post) if bias is None else np.asarray(bias, dtype=float)
        super().__init__(n_post=n_post, n_src=n_src, external=external, name=name)
        self.s_post = InPort(shape=(n_post,))
        self.m_in = InPort(shape=(n_src,))
        self.y1 = OutPort(shape=(n_post,))
        self.y2 = OutPort(shape=(n_post,))
        self.trace = Var(shape=(n_post,), init=0.0)
        self.weight = Var(shape=(n_post, n_src), init=weight)
        self.bias = Var(shape=(n_post,), init=bias)
        self.external = Var(shape=(1,), init=int(bool(external)))
        self.y1_impulse = Var(shape=(1,), init=float(y1_impulse))
        self.y1_tau = Var(shape=(1,), init=float(y1_tau))


@implements(proc=ThirdFactor, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyThirdFactorFloat(PyLoihiProcessModel):
    s_post: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    m_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    y1: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    y2: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    trace: np.ndarray = LavaPyType(np.ndarray, float)
    weight: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    external: np.ndarray = LavaPyType(np.ndarray, int)
    y1_impulse: np.ndarray = LavaPyType(np.ndarray, float)
    y1_tau: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        s = self.s_post.recv()
        src = self.m_in.recv()
        # same operation order as Lava's own float traces: exp(-1/tau) * trace, then + impulse
        self.trace[:] = np.exp(-1.0 / self.y1_tau[0]) * self.trace + self.y1_impulse[0] * s
        if self.external[0]:
            m = np.asarray(src, dtype=float)
        else:
            m = np.tanh(self.weight @ src + self.bias)
        self.y1.send(self.trace.copy())
        self.y2.send(m)
