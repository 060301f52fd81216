"""mm-eureka-plugin: MM-Eureka, CPGD and MM-PRM for OpenRLHF 0.11.2.

Plugins implement the hooks in :mod:`mm_eureka_plugin.hookspecs`, marked with :data:`hookimpl`.
"""

import pluggy

PROJECT_NAME = "mm_eureka"
"""The pluggy project name and the entry point group plugins register under."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marks a plugin's hook implementation: ``@hookimpl def mm_eureka_rewards(): ...``."""

__version__ = "0.1.0"
__all__ = ["PROJECT_NAME", "hookimpl", "__version__"]
