"""``openrlhf.cli.train_ppo_ray``: its real argument parser, to validate a recipe's flags early.

OpenRLHF builds the parser inside ``if __name__ == "__main__"``; :func:`parse_flags` runs the
module as main with ``ArgumentParser.parse_args`` intercepted, so nothing after parsing runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import runpy

MODULE = "openrlhf.cli.train_ppo_ray"


class FlagError(ValueError):
    """OpenRLHF's parser rejected the flags; the message is its own."""


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        self.namespace = namespace


def parse_flags(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` with OpenRLHF 0.11.2's PPO parser; raise :class:`FlagError` on bad flags."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(parser, args=None, namespace=None):
        def error(message):
            raise FlagError(message)

        parser.error = error
        namespace, unknown = parser.parse_known_args(argv, namespace)
        if unknown:
            raise FlagError(f"unrecognized OpenRLHF arguments: {' '.join(unknown)}")
        raise _Parsed(namespace)

    argparse.ArgumentParser.parse_args = parse_args
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            runpy.run_module(MODULE, run_name="__main__")
    except _Parsed as parsed:
        return parsed.namespace
    finally:
        argparse.ArgumentParser.parse_args = original
    raise RuntimeError(f"{MODULE} did not parse its arguments")
