"""SubtractLIF: CUBA LIF with snnTorch's delayed subtractive reset (float CPU model only).

Per step (spikeplastic's ``lif_step`` with ``reset="subtract"``, same operation order)::

    u = u*(1-du) + a_in
    v = v*(1-dv) + u + bias - vth*s_prev
    s = v > vth;  s_prev = s                       (v is not reset otherwise)

Lava's built-in LIF resets to zero; this model exists so that networks trained with a subtractive
reset still run in Lava's CPU simulator. There is no fixed-point or Loihi model.
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


class SubtractLIF(AbstractProcess):
    """LIF population with a delayed subtractive reset; ``du, dv, vth, bias`` scalars or ``[n]``."""

    def __init__(self, *, shape: tuple[int, ...], du=1.0, dv=0.1, vth=1.0, bias=0.0, name: str | None = None) -> None:
        super().__init__(shape=shape, name=name)
        n = shape
        self.a_in = InPort(shape=n)
        self.s_out = OutPort(shape=n)
        self.u = Var(shape=n, init=0.0)
        self.v = Var(shape=n, init=0.0)
        self.s_prev = Var(shape=n, init=0.0)
        self.du = Var(shape=n, init=np.broadcast_to(np.asarray(du, dtype=float), n).copy())
        self.dv = Var(shape=n, init=np.broadcast_to(np.asarray(dv, dtype=float), n).copy())
        self.vth = Var(shape=n, init=np.broadcast_to(np.asarray(vth, dtype=float), n).copy())
        self.bias = Var(shape=n, init=np.broadcast_to(np.asarray(bias, dtype=float), n).copy())


@implements(proc=SubtractLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySubtractLIFFloat(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    s_prev: np.ndarray = LavaPyType(np.ndarray, float)
    du: np.ndarray = LavaPyType(np.ndarray, float)
    dv: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        a = self.a_in.recv()
        self.u[:] = self.u * (1 - self.du) + a
        self.v[:] = self.v * (1 - self.dv) + self.u + self.bias - self.s_prev * self.vth
        s = self.v > self.vth
        self.s_prev[:] = s
        self.s_out.send(s.astype(float))
