"""spikeplastic: spiking neural networks with meta-learned synaptic plasticity, exportable to Lava.

The core never imports Lava; the exporter lives in :mod:`spikeplastic.export` and loads it on use.
"""
from . import _imports

_imports.import_numpy_torch()  # first, with Ctrl-C held back: their C start-up code mishandles it

from . import functional, ir, quant  # noqa: E402
from .functional import LIFState, STDPTraces
from .interop import from_snntorch
from .modulation import Neuromodulation
from .network import Network, NetworkState, Record, StepOutput
from .neurons import LIF, LIFParams
from .plastic import PlasticLinear, PlasticState
from .rules import STDP, Hebb, Oja, PlasticityRule
from .simulate import simulate
from .surrogate import Surrogate, surrogate

__version__ = "0.1.0"

__all__ = [
    "LIF",
    "LIFParams",
    "LIFState",
    "STDP",
    "STDPTraces",
    "Hebb",
    "Oja",
    "PlasticityRule",
    "Neuromodulation",
    "PlasticLinear",
    "PlasticState",
    "Network",
    "NetworkState",
    "Record",
    "StepOutput",
    "Surrogate",
    "surrogate",
    "simulate",
    "from_snntorch",
    "functional",
    "ir",
    "quant",
    "__version__",
]
