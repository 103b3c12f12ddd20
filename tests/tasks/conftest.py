"""Shared fixtures for the task tests."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


@pytest.fixture
def gen() -> Callable[[int], torch.Generator]:
    """``gen(seed)`` -> a fresh seeded CPU ``torch.Generator``."""

    def make(seed: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    return make
