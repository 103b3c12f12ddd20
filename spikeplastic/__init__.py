"""spikeplastic: spiking neural networks with meta-learned synaptic plasticity, exportable to Lava.

The core never imports Lava; the exporter lives in :mod:`spikeplastic.export` and loads it on use.
Tasks and models by id: ``spikeplastic.make_task("pattern")``, ``spikeplastic.make_model("rate-hebb", task)``
(:func:`spikeplastic.tasks.make_task`, :func:`spikeplastic.models.make_model`; loaded on first use).
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
from .rules import STDP, Hebb, NodePerturbation, Oja, PlasticityRule
from .simulate import simulate
from .surrogate import Surrogate, surrogate
from ._version import __version__

__all__ = [
    "LIF",
    "LIFParams",
    "LIFState",
    "STDP",
    "STDPTraces",
    "Hebb",
    "Oja",
    "NodePerturbation",
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
    "make_task",
    "make_model",
    "__version__",
]


def __getattr__(name: str) -> object:
    """The registries' resolvers, loaded on first use (``import spikeplastic`` loads neither the tasks nor
    the models): ``make_task(id, **config_overrides)``, ``make_model(id, task, **kw)``."""
    if name == "make_task":
        from .tasks import make_task as value
    elif name == "make_model":
        from .models import make_model as value
    else:
        raise AttributeError(f"module 'spikeplastic' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
