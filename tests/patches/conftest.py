"""Fixtures for tests of OpenRLHF with the patches installed (CPU: stand-ins for flash_attn and vllm)."""

import pytest


@pytest.fixture
def plugin_env(monkeypatch):
    """Choose plugin components for OpenRLHF code in this process, as the launcher would."""
    from mm_eureka_plugin.config import CONFIG_ENV, parse_plugin_section
    from mm_eureka_plugin.patches import install

    install(cpu=True)

    def choose(section: dict) -> None:
        monkeypatch.setenv(CONFIG_ENV, parse_plugin_section(section).to_json())

    return choose


@pytest.fixture
def openrlhf_args():
    """OpenRLHF 0.11.2's real PPO arguments (its parser, its defaults), hierarchised."""
    from openrlhf.utils.config import hierarchize

    from mm_eureka_plugin.patches.train_ppo_ray import parse_flags

    def build(*flags: str):
        args = hierarchize(parse_flags(list(flags)))
        if args.actor.eps_clip_low_high is None:  # as train_ppo_ray does right after parsing
            args.actor.eps_clip_low_high = (args.actor.eps_clip, args.actor.eps_clip)
        return args

    return build
