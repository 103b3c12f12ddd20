"""The episode protocol's old home: its names now live in :mod:`spikeplastic.protocol` (re-exported here).

Import them from :mod:`spikeplastic.protocol` (or :mod:`spikeplastic.meta`); importing this module
loads the whole of :mod:`spikeplastic.meta`, the trainer included.
"""
from __future__ import annotations

from ..protocol import (
    LEAN_MODES,
    Episode,
    EpisodeModel,
    RLTask,
    SupervisedTask,
    Task,
    check_lean,
    map_members,
    population_size,
    run_supervised,
)

__all__ = ["Episode", "EpisodeModel", "SupervisedTask", "RLTask", "Task", "run_supervised", "LEAN_MODES", "check_lean",
           "map_members", "population_size"]
