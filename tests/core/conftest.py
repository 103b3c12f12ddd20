"""Shared fixtures of the core tests."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def default_f64() -> Iterator[None]:
    """Build modules in float64, so Python-float constants are not rounded to float32 first."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
