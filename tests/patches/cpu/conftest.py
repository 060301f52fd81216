"""Tests of the CPU patches run with them installed, as in a CPU run's processes."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True, scope="module")
def cpu_patches():
    from mm_eureka_plugin.patches import install

    install(cpu=True)


@pytest.fixture(scope="session")
def smoke_train():
    """``argv(sets, *extra)``: the command ``mm-eureka train recipes/smoke-cpu.yaml`` with a
    ``--set KEY=VALUE`` for each item of ``sets`` and ``extra`` after them (run it from ``REPO``)."""

    def argv(sets: dict, *extra: str) -> list[str]:
        command = [sys.executable, "-m", "mm_eureka_plugin.cli", "train", str(REPO / "recipes" / "smoke-cpu.yaml")]
        for key, value in sets.items():
            command += ["--set", f"{key}={value}"]
        return command + list(extra)

    return argv
