"""Tests of the CPU patches run with them installed, as in a CPU run's processes."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def cpu_patches():
    from mm_eureka_plugin.patches import install

    install(cpu=True)
