"""Pure step functions: tensors and NamedTuple states in, tensors and new states out."""
from .lif import LIFState, lif_step
from .plasticity import (
    STDPTraces,
    decay_factor,
    hebb_increment,
    oja_increment,
    eligibility_step,
    hebb_step,
    oja_step,
    outer,
    stdp_traces_step,
    stdp_update,
    stdp_window,
    trace_step,
)
from .synapse import modulation_signal, plastic_current, plastic_part, synaptic_update

__all__ = [
    "LIFState",
    "lif_step",
    "STDPTraces",
    "trace_step",
    "stdp_traces_step",
    "stdp_update",
    "hebb_step",
    "oja_step",
    "eligibility_step",
    "outer",
    "stdp_window",
    "decay_factor",
    "hebb_increment",
    "oja_increment",
    "plastic_current",
    "plastic_part",
    "synaptic_update",
    "modulation_signal",
]
