"""Registry of small baseline configurations shared by the generic suites (imported by the tests)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spikeplastic.baselines import LSTM, RNN, Backpropamine, OneShotPlastic, PlasticRNN
from spikeplastic.protocol import EpisodeModel


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], EpisodeModel]
    plastic: bool


CASES: list[Case] = [
    Case("plastic_hebb", lambda: PlasticRNN(6, bias_unit=True), True),
    Case("plastic_oja_shared", lambda: PlasticRNN(6, rule="oja", alpha="shared"), True),
    Case("plastic_clamp", lambda: PlasticRNN(6, clamp=True, bias_unit=True), True),
    Case(
        "plastic_linear_io",
        lambda: PlasticRNN(5, 3, n_hidden=7, readout="linear", bias_unit=True),
        True,
    ),
    Case("bpa_simple", lambda: Backpropamine(5, 3, n_hidden=7, mode="simple"), True),
    Case("bpa_retroactive", lambda: Backpropamine(5, 3, n_hidden=7, mode="retroactive"), True),
    Case("bpa_none", lambda: Backpropamine(5, 3, n_hidden=7, mode="none"), True),
    Case("rnn", lambda: RNN(5, 3, n_hidden=7), False),
    Case("lstm", lambda: LSTM(5, 3, n_hidden=7), False),
    Case("oneshot", lambda: OneShotPlastic(7 * 7, 3, channels=4, n_conv=2), True),
    Case("oneshot_padded", lambda: OneShotPlastic(8 * 8, 3, channels=4, padding=1), True),
]
CASE_IDS = [c.name for c in CASES]
