"""The ``mm-eureka`` command."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from mm_eureka_plugin.config import RecipeError, load_recipe
from mm_eureka_plugin.patches import OpenRLHFVersionError
from mm_eureka_plugin.registry import KINDS, ComponentError, registry


def cmd_plugins(args: argparse.Namespace) -> int:
    """List every registered component by kind, and every plugin that failed to load."""
    reg = registry()
    for kind in KINDS:
        components = sorted(reg.components[kind].values(), key=lambda c: c.name)
        print(f"{kind}:")
        if not components:
            print("  (none)")
        width = max((len(c.name) for c in components), default=0)
        for c in components:
            print(f"  {c.name:<{width}}  [{c.distribution}]  {c.description}")
    if reg.load_errors:
        print("plugins that failed to load:")
        for err in reg.load_errors:
            print(f"  {err.entry_point}  [{err.distribution}]  {err.error}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Validate a recipe and run it through OpenRLHF (or print what would run, with --dry-run)."""
    from mm_eureka_plugin.launch import check_flags, train, use_cpu

    recipe = load_recipe(args.recipe, args.set)
    recipe.validate()
    cpu = use_cpu(recipe.plugin)
    check_flags(recipe, cpu)
    if args.dry_run:
        print("# OpenRLHF command")
        print(recipe.command())
        print("# plugin config")
        print(json.dumps(recipe.plugin.to_dict(), indent=2, sort_keys=True))
        return 0
    if cpu:
        # OpenRLHF asks Ray for GPU bundles: on CPU its actors would wait for them forever.
        raise RecipeError(
            f"{recipe.where}no CUDA device here (plugin.device: {recipe.plugin.device}), and OpenRLHF's "
            "training loop does not run on CPU yet. Validate with --dry-run here and train on a GPU machine."
        )
    train(recipe, cpu)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mm-eureka", description="Multimodal rule-based RL (MM-Eureka, CPGD, MM-PRM) on OpenRLHF."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    plugins = sub.add_parser("plugins", help="list registered components by kind")
    plugins.set_defaults(func=cmd_plugins)

    train = sub.add_parser("train", help="run a recipe through OpenRLHF's PPO trainer")
    train.add_argument("recipe", help="recipe YAML file")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value: openrlhf.FLAG=VALUE or plugin.KEY[.PARAM]=VALUE (repeatable)",
    )
    train.add_argument("--dry-run", action="store_true", help="validate, print the command and config, and exit")
    train.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    # torch imports pynvml, which OpenRLHF requires, and warns about it on every command.
    warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (RecipeError, ComponentError, OpenRLHFVersionError) as exc:
        print(f"mm-eureka: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
