"""Recorder: a sink that writes a Var (read through a RefPort) or an OutPort's messages, every step, to a
``.npy`` file.

Why not ``lava.proc.monitor.Monitor``: reading a Monitor's data back goes through
``Runtime.get_var``, which transfers one element per message; for a 100x100 weight matrix over 1000
steps (10^7 values) that takes minutes. A Recorder writes into a memory-mapped ``.npy`` that the
host reads after the run, so recording costs what the per-step RefPort read costs (as for Monitor).

``Recorder(shape=..., num_steps=T, path=..., source="var")`` then ``rec.ref.connect_var(var)``, or
``source="port"`` and ``out_port.connect(rec.inp)``. The file must exist (``numpy.lib.format.open_memmap``
with shape ``(T,) + shape``) before the run.

``blocks=c`` (a ``[c*n, c*m]`` matrix Var of a network replicated ``c`` times, see
:func:`spikeplastic.export.replicate`) stores only the diagonal blocks, ``[c, n, m]`` per step (the
file then has shape ``(T, c, n, m)``): the off-diagonal blocks are zeros, and ``c`` times the data.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyRefPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, RefPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class Recorder(AbstractProcess):
    """Records one Var or OutPort for ``num_steps`` steps into the ``.npy`` file at ``path``."""

    def __init__(self, *, shape: tuple[int, ...], num_steps: int, path: str, source: str, blocks: int = 1,
                 name: str | None = None) -> None:
        if source not in ("var", "port"):
            raise ValueError(f"source must be 'var' or 'port', got {source!r}")
        if blocks != 1 and (source != "var" or len(shape) != 2 or shape[0] % blocks or shape[1] % blocks):
            raise ValueError(f"blocks={blocks} needs a matrix Var whose dims it divides, got {source} of shape {shape}")
        super().__init__(shape=tuple(shape), num_steps=int(num_steps), path=str(path), source=source,
                         blocks=int(blocks), name=name)
        self.ref = RefPort(shape=tuple(shape))
        self.inp = InPort(shape=tuple(shape))


@implements(proc=Recorder, protocol=LoihiProtocol)
@requires(CPU)
class PyRecorderModel(PyLoihiProcessModel):
    ref: PyRefPort = LavaPyType(PyRefPort.VEC_DENSE, float)
    inp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)

    def __init__(self, proc_params) -> None:  # noqa: ANN001 - Lava's signature
        super().__init__(proc_params)
        self._var = proc_params["source"] == "var"
        self._n = proc_params["num_steps"]
        self._mm = np.lib.format.open_memmap(proc_params["path"], mode="r+")
        self._blocks = proc_params.get("blocks", 1)

    def _store(self, value) -> None:  # noqa: ANN001
        t = self.time_step - 1
        if t < self._n:
            if self._blocks != 1:  # [c*n, c*m] -> its diagonal blocks [c, n, m]
                c = self._blocks
                n, m = value.shape[0] // c, value.shape[1] // c
                k = np.arange(c)
                value = value.reshape(c, n, c, m)[k, :, k, :]
            self._mm[t] = value
            if t == self._n - 1:
                self._mm.flush()

    def run_spk(self) -> None:
        if not self._var:
            self._store(self.inp.recv())

    def post_guard(self) -> bool:
        return self._var

    def run_post_mgmt(self) -> None:
        self._store(self.ref.read())
