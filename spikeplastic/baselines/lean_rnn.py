"""The memory-lean path of :class:`~spikeplastic.baselines.PlasticRNN` (``rule="hebb"``): the model's
episode through :func:`spikeplastic.lean.hebb_rnn`, same parameters, outputs and gradients.

Defined next to the model in :mod:`.rate_plastic` (whose ``lean_forward`` uses it; one import
direction, no cycle); this module is their public home."""
from __future__ import annotations

from .rate_plastic import LeanPlasticRNN, check_plastic_rnn, plastic_rnn_forward

__all__ = ["check_plastic_rnn", "plastic_rnn_forward", "LeanPlasticRNN"]
