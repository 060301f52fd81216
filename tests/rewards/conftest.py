"""Fixtures for the reward tests: one accuracy reward (and its worker pool) for the session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# mm_eureka_baseline.py sits beside the tests; workers get this sys.path too.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def accuracy():
    """An AccuracyReward with 2 workers and a 2 s timeout, started; its pool is closed at the end."""
    from mm_eureka_plugin.rewards import AccuracyReward
    from mm_eureka_plugin.rewards.pool import close_shared_pools

    reward = AccuracyReward(timeout=2.0, workers=2)
    assert reward.pool().wait_ready(timeout=60)
    yield reward
    close_shared_pools()


@pytest.fixture
def ready(accuracy):
    """The session's accuracy reward, with both workers idle (after other tests killed some)."""
    assert accuracy.pool().wait_ready(timeout=60)
    return accuracy
