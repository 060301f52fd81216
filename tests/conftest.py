"""Shared fixtures: a tiny random-weight Qwen2.5-VL built offline, a PRM made from it, and a clean plugin registry."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory):
    """A saved tiny Qwen2.5-VL (real Qwen vocabulary, image-only processor), built once per session."""
    from mm_eureka_plugin.tiny_vlm import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny-qwen2.5-vl"))


@pytest.fixture(scope="session")
def prm_dir(tiny_vlm_dir, tmp_path_factory):
    """A PRM checkpoint (the tiny VLM with the ``<prm>`` tag), built once per session."""
    from mm_eureka_plugin.prm.scorer import make_prm_checkpoint

    return make_prm_checkpoint(tiny_vlm_dir, tmp_path_factory.mktemp("prm"))


@pytest.fixture
def fresh_registry():
    """Rediscover plugins before and after the test, so installed test distributions do not leak."""
    from mm_eureka_plugin import registry

    registry.reload()
    yield registry
    registry.reload()
