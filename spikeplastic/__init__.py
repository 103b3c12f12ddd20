"""spikeplastic: spiking neural networks with meta-learned synaptic plasticity, exportable to Lava.

The core never imports Lava; the exporter lives in :mod:`spikeplastic.export` and loads it on use.
"""
# NumPy first: torch's C extension imports NumPy from C and clears any error doing so, a Ctrl-C
# included, leaving NumPy half-imported (the program then ignores the Ctrl-C or fails later with a
# misleading AttributeError); imported here, a Ctrl-C during it is an ordinary KeyboardInterrupt.
import numpy  # noqa: F401

from . import functional, ir, quant
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
