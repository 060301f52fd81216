"""The ``mm-eureka`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

from mm_eureka_plugin.config import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, load_recipe, parse_key_value
from mm_eureka_plugin.errors import RunInterrupted, UserError
from mm_eureka_plugin.eval.generate import BACKENDS, Policy, SamplingConfig
from mm_eureka_plugin.eval.inputs import EvalError
from mm_eureka_plugin.registry import KINDS, registry

DATA_SOURCE_HELP = (
    "a data file (.jsonl, .json, .parquet), a folder laid out as a hub dataset repo, or a hub dataset "
    "name such as FanqingM/MMK12; a folder or name may end in :SPLIT (default: train)"
)


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
    from mm_eureka_plugin.launch import dry_run, train, use_cpu
    from mm_eureka_plugin.patches.flags import RESUME
    from mm_eureka_plugin.patches.launch import check_recipe
    from mm_eureka_plugin.patches.placement import parse_cluster

    recipe = load_recipe(args.recipe, [*args.set, *([f"openrlhf.{RESUME}=true"] if args.resume else [])])
    cpu = use_cpu(recipe)
    flags = check_recipe(recipe, cpu, dry_run=args.dry_run)
    if args.cluster is not None and not args.dry_run:
        raise UserError("--cluster is for --dry-run; a launch places the run on the Ray cluster it starts or joins.")
    if args.dry_run:
        print(dry_run(recipe, flags, cpu, None if args.cluster is None else parse_cluster(args.cluster)))
        return 0
    train(recipe, cpu, flags)
    return 0


def _format_params(args: argparse.Namespace) -> dict:
    return {} if args.system_prompt is None else {"system_prompt": args.system_prompt}


def cmd_data_check(args: argparse.Namespace) -> int:
    """Print ``row N: reason`` for every bad row and a summary; exit 0 when every row is valid, else 1."""
    from mm_eureka_plugin.data import check_file

    report = check_file(
        args.file,
        args.format,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        progress=sys.stderr.isatty(),
        **_format_params(args),
    )
    for bad in report.bad:
        print(bad)
    valid = report.total - len(report.bad)
    print(f"{args.file} ({report.format}): {report.total} rows, {valid} valid, {len(report.bad)} bad")
    return 0 if report.ok else 1


def cmd_data_convert(args: argparse.Namespace) -> int:
    """Convert a data source to OpenRLHF's native prompt rows, images resized onto the pixel budget
    (and, with ``--rollout-executor``, with what that executor asks of the data)."""
    from mm_eureka_plugin.config import build_component
    from mm_eureka_plugin.data import convert_file
    from mm_eureka_plugin.data.convert import executor_settings

    executor = args.rollout_executor and build_component(
        "rollout_executor", args.rollout_executor, "--rollout-executor"
    )
    report = convert_file(
        args.input,
        args.source_format,
        args.output,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        on_bad_row=args.on_bad_row,
        progress=True,
        **(executor_settings(executor) if executor else {}),
        **_format_params(args),
    )
    for bad in report.bad:
        print(f"skipped {bad}", file=sys.stderr)
    print(f"{report.output}: {report.written} rows written, {len(report.bad)} bad rows skipped ({report.format})")
    return 0


def cmd_reward_score(args: argparse.Namespace) -> int:
    """Score a jsonl of responses; print one JSON object per row (``reward`` and each component)."""
    from mm_eureka_plugin.rewards import score_file

    names = [name.strip() for name in args.reward.split(",") if name.strip()]
    unscored = 0
    for row in score_file(args.file, names):
        print(json.dumps(row, ensure_ascii=False), flush=True)
        if "row" in row:
            unscored += 1
            print(f"mm-eureka: {row['error']}", file=sys.stderr)
    if unscored:
        print(f"mm-eureka: {unscored} row(s) could not be scored (their lines say why)", file=sys.stderr)
    return 1 if unscored else 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Judge a benchmark's candidates, pre-generated or sampled from ``--policy``, by the reward or
    ``--judge`` (and score them with a PRM); print the Best-of-N table."""
    from mm_eureka_plugin.eval.run import PRMSettings, run_evaluation

    policy = None if args.policy is None else Policy(args.policy, args.n, sampling_config(args))
    prm = None
    if args.prm is not None:
        aggregators = None if args.aggregators.strip() == "all" else args.aggregators.split(",")
        prm = PRMSettings(args.prm, args.splitter, aggregators)
    report = run_evaluation(
        args.benchmark,
        args.out,
        candidates=args.candidates,
        policy=policy,
        data_format=args.format,
        format_params=_format_params(args),
        reward=args.reward,
        judge=args.judge,
        judge_params=dict(parse_key_value(item, "--judge-arg", EvalError) for item in args.judge_arg),
        prm=prm,
        category_key=args.category_key,
        batch_size=args.batch_size,
        progress=True,
    )
    print(report.to_markdown(), end="")
    return 0


def cmd_prm_annotate(args: argparse.Namespace) -> int:
    """Label steps of every problem with OmegaPRM; print what was done."""
    from mm_eureka_plugin.prm.annotate import annotate
    from mm_eureka_plugin.prm.judges import JudgeUnavailable
    from mm_eureka_plugin.prm.mcts import SearchConfig

    try:
        search = SearchConfig(
            k=args.k,
            alpha=args.alpha,
            beta=args.beta,
            length_scale=args.length_scale,
            c_puct=args.c_puct,
            max_searches=args.max_searches,
            max_rollouts=args.max_rollouts,
        )
    except ValueError as exc:
        raise EvalError(f"search settings: {exc}") from None
    try:
        summary = annotate(
            args.data,
            args.out,
            policy=args.policy,
            sampling=sampling_config(args),
            search=search,
            data_format=args.format,
            format_params=_format_params(args),
            judge=args.judge,
            judge_params=dict(parse_key_value(item, "--judge-arg", EvalError) for item in args.judge_arg),
            splitter=args.splitter,
            progress=True,
        )
    except JudgeUnavailable as exc:
        print(f"mm-eureka: error: {exc}. Finished trees are kept in {args.out}; rerun to continue.", file=sys.stderr)
        return 2
    print(
        f"searched {summary.searched} problems ({summary.labelled_nodes} labelled states, {summary.rollouts} "
        f"rollouts), skipped {summary.skipped}, {summary.already_done} already in {args.out}"
    )
    return 0


def cmd_prm_build_data(args: argparse.Namespace) -> int:
    """Write PRM training rows from annotated trees; print the counts."""
    from mm_eureka_plugin.prm.build_data import build_data

    summary = build_data(
        args.data,
        args.trees,
        args.out,
        data_format=args.format,
        format_params=_format_params(args),
        balance=not args.no_balance,
        seed=args.seed,
    )
    print(
        f"wrote {summary.positives + summary.negatives} paths to {args.out}: {summary.positives} positive, "
        f"{summary.negatives} negative ({summary.dropped_to_balance} dropped to balance, {summary.duplicates} "
        f"duplicates, {summary.trees_without_paths} trees without a path)"
    )
    return 0


def cmd_prm_train(args: argparse.Namespace) -> int:
    """Train a PRM from a recipe; print where the checkpoint is."""
    from mm_eureka_plugin.prm.train import load_config, train

    config = load_config(args.recipe, args.set)
    losses = train(config)
    print(f"PRM checkpoint in {config.output_dir} (loss {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps)")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """Draw a run's metrics.jsonl as a PNG of small panels; print the PNG's path."""
    from mm_eureka_plugin.plot import plot_run

    print(plot_run(args.run_dir, args.out))
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    """Print the samples a run logged (samples.jsonl) readably."""
    from mm_eureka_plugin.samples import format_sample, read_samples, select

    rows = read_samples(args.run_dir)
    order = "worst" if args.worst else "best" if args.best else None
    chosen = select(rows, step=args.step, order=order, limit=args.limit)
    if not chosen:
        where = f"step {args.step}" if args.step is not None else "the file"
        steps = sorted({row["step"] for row in rows})
        known = f"; logged steps: {steps[0]}..{steps[-1]}" if steps else ""
        print(f"mm-eureka: no samples for {where}{known}", file=sys.stderr)
        return 1
    print("\n\n".join(format_sample(row) for row in chosen))
    return 0


def add_sampling_flags(parser: argparse.ArgumentParser, scope: str, batch_size: int, batch_size_help: str) -> None:
    """Add the flags of a :class:`SamplingConfig` to ``parser``: ``scope`` opens their help (when
    they apply), ``batch_size`` is the default of ``--batch-size`` and ``batch_size_help`` its help."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help=f"{scope}: vllm, transformers, or auto: vllm where it is installed and CUDA is available (default)",
    )
    parser.add_argument("--temperature", type=float, default=1.0, help=f"{scope}; 0 is greedy (default: 1.0)")
    parser.add_argument("--top-p", type=float, default=1.0, help=f"{scope} (default: 1.0)")
    parser.add_argument("--max-new-tokens", type=int, default=1024, help=f"{scope} (default: 1024)")
    parser.add_argument(
        "--seed", type=int, default=0, help=f"{scope}; each problem is seeded from (seed, its index) (default: 0)"
    )
    parser.add_argument("--batch-size", type=int, default=batch_size, help=f"{batch_size_help} (default: {batch_size})")


def sampling_config(args: argparse.Namespace) -> SamplingConfig:
    """The :class:`SamplingConfig` of the flags :func:`add_sampling_flags` added; ``EvalError`` naming a bad one."""
    return SamplingConfig(
        backend=args.backend,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=args.batch_size,
    )


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
    train.add_argument(
        "--dry-run", action="store_true", help="validate, print the command, config and GPU placement, and exit"
    )
    train.add_argument(
        "--cluster",
        metavar="NODESxGPUS",
        help="with --dry-run: check the placement on this cluster, e.g. 6x8, or the GPUs of each node, e.g. 8,8,4",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in openrlhf ckpt.path (sets ckpt.load_enable)",
    )
    train.set_defaults(func=cmd_train)

    data = sub.add_parser("data", help="check and convert multimodal training data").add_subparsers(
        dest="data_command", required=True
    )
    check = data.add_parser("check", help="list every bad row of a data source; exit 1 if there is one")
    check.add_argument("file", help=DATA_SOURCE_HELP)
    check.add_argument("--format", help="data_format name (default: detected from the columns)")
    convert = data.add_parser("convert", help="convert a data source to OpenRLHF's prompt/images/label jsonl")
    convert.add_argument("input", help=DATA_SOURCE_HELP)
    convert.add_argument("--from", dest="source_format", help="data_format name (default: detected)")
    convert.add_argument("--to", choices=["openrlhf"], default="openrlhf", help="output format")
    convert.add_argument("output", help="output .jsonl (images go to OUTPUT_STEM.images/ beside it)")
    convert.add_argument("--on-bad-row", choices=["error", "skip"], default="error", help="default: error")
    convert.add_argument(
        "--rollout-executor",
        metavar="SPEC",
        help="convert for this rollout executor, written as plugin.rollout_executor is (e.g. image_tools, or "
        "'{name: image_tools, coordinates: normalized}'): its tool instructions and source images, as training data gets",
    )
    for command in (check, convert):
        command.add_argument(
            "--system-prompt", help="mm-eureka-7b, mm-eureka-32b, none, or literal text (default: the format's)"
        )
        command.add_argument("--min-pixels", type=int, default=DEFAULT_MIN_PIXELS, help="default: 4*28*28")
        command.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="default: 640*28*28")
    check.set_defaults(func=cmd_data_check)
    convert.set_defaults(func=cmd_data_convert)

    reward = sub.add_parser("reward", help="debug rewards before training").add_subparsers(
        dest="reward_command", required=True
    )
    score = reward.add_parser("score", help="score rows with response and answer (optional prompt, images)")
    score.add_argument("file", help="jsonl with response, answer and optionally prompt, images, metadata, id")
    score.add_argument("--reward", required=True, help="reward names or references, comma-separated")
    score.set_defaults(func=cmd_reward_score)

    ev = sub.add_parser(
        "eval",
        help="Best-of-N evaluation of candidates (given, or sampled from a policy): pass@1, maj@N, pass@N, PRM picks",
    )
    ev.add_argument("benchmark", help=f"the benchmark: {DATA_SOURCE_HELP}. A problem's id is metadata id, else its row")
    source = ev.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--candidates",
        metavar="CANDIDATES.jsonl",
        help='jsonl, one line per problem: {"id": ..., "responses": [str, ...]}',
    )
    source.add_argument(
        "--policy",
        metavar="POLICY_DIR",
        help="policy checkpoint: sample --n candidates per problem into OUT_DIR/candidates.jsonl (resumable)",
    )
    ev.add_argument(
        "--out",
        required=True,
        metavar="OUT_DIR",
        help="output dir: results.jsonl (a rerun resumes), eval.json, report.md/.json/.png",
    )
    ev.add_argument("--format", help="data_format name of the benchmark (default: detected from the columns)")
    ev.add_argument(
        "--system-prompt", help="mm-eureka-7b, mm-eureka-32b, none, or literal text (default: the format's)"
    )
    ev.add_argument(
        "--reward",
        default="accuracy",
        help="reward (name or reference) judging a candidate: correct when its score, else reward, is >= 1 "
        "(default: accuracy; --judge replaces it)",
    )
    ev.add_argument(
        "--judge",
        help="judge (name or reference) deciding instead of the reward, as MM-Eureka's MMK12 evaluation does: "
        "asked whether each candidate's answer (the first <answer> span, else the last \\boxed{}, else the "
        "whole response) matches the gold, e.g. openai_compatible (GPT-4o: the paper's judge) or math_verify",
    )
    ev.add_argument(
        "--judge-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="judge parameter, repeatable, e.g. --judge openai_compatible --judge-arg url=https://api.openai.com/v1 "
        "--judge-arg model=gpt-4o (the key is read from $OPENAI_API_KEY, never recorded)",
    )
    ev.add_argument(
        "--prm", metavar="PRM_DIR", help="PRM checkpoint directory; without it, only pass@1, maj@N and pass@N"
    )
    ev.add_argument("--splitter", default="tags", help="step_splitter for the PRM (default: tags)")
    ev.add_argument(
        "--aggregators", default="all", help="prm_aggregator names, comma-separated, or all (default) for --prm"
    )
    ev.add_argument("--category-key", default="subject", help="metadata key of a problem's category (default: subject)")
    ev.add_argument("--n", type=int, default=8, help="candidates per problem with --policy (default: 8)")
    add_sampling_flags(
        ev, "with --policy", 8, "solutions per PRM forward pass, and sequences per generate call with --policy"
    )
    ev.set_defaults(func=cmd_eval)

    prm = sub.add_parser("prm", help="MM-PRM data: step labels by Monte Carlo tree search").add_subparsers(
        dest="prm_command", required=True
    )
    ann = prm.add_parser("annotate", help="OmegaPRM search per problem: one tree per line of OUT (resumable)")
    ann.add_argument("data", help=f"problems with gold answers: {DATA_SOURCE_HELP}")
    ann.add_argument("--policy", required=True, metavar="POLICY_DIR", help="policy checkpoint that writes rollouts")
    ann.add_argument("--out", required=True, metavar="TREES.jsonl", help="output: one JSON tree per problem")
    ann.add_argument("--format", help="data_format of the problems (default: detected from the columns)")
    ann.add_argument("--system-prompt", help="mm-eureka-7b, mm-eureka-32b, none, or literal text")
    ann.add_argument("--judge", default="math_verify", help="judge of final answers (default: math_verify)")
    ann.add_argument(
        "--judge-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="judge parameter, repeatable, e.g. --judge openai_compatible --judge-arg url=http://host:8000/v1 "
        "--judge-arg model=qwen",
    )
    ann.add_argument("--splitter", default="tags", help="step_splitter of the policy's solutions (default: tags)")
    ann.add_argument("--k", type=int, default=16, help="rollouts per Monte Carlo estimate (default: 16)")
    ann.add_argument("--alpha", type=float, default=0.5, help="Q = alpha^(1-MC) * beta^(words/L) (default: 0.5)")
    ann.add_argument("--beta", type=float, default=0.9, help="see --alpha (default: 0.9)")
    ann.add_argument("--length-scale", type=float, default=2000.0, help="L, in words (default: 2000)")
    ann.add_argument("--c-puct", type=float, default=0.125, help="exploration weight of U (default: 0.125)")
    ann.add_argument("--max-searches", type=int, default=200, help="binary searches per problem (default: 200)")
    ann.add_argument("--max-rollouts", type=int, default=1000, help="rollouts per problem (default: 1000)")
    add_sampling_flags(ann, "rollout sampling", 16, "sequences per transformers call")
    ann.set_defaults(func=cmd_prm_annotate)
    build = prm.add_parser("build-data", help="PRM training rows (a path per line, MC labels) from annotate's trees")
    build.add_argument("data", help="the problems (data source) that were annotated")
    build.add_argument("trees", help="mm-eureka prm annotate output")
    build.add_argument("--out", required=True, metavar="ROWS.jsonl", help="training rows; images go to ROWS.images/")
    build.add_argument("--format", help="data_format of the problems (default: detected from the columns)")
    build.add_argument("--system-prompt", help="mm-eureka-7b, mm-eureka-32b, none, or literal text")
    build.add_argument(
        "--no-balance", action="store_true", help="keep every path (default: as many positive as negative paths)"
    )
    build.add_argument("--seed", type=int, default=0, help="seed of the balancing subsample (default: 0)")
    build.set_defaults(func=cmd_prm_build_data)
    prm_train = prm.add_parser(
        "train", help="soft-label PRM training on build-data rows (one process; torchrun for several GPUs)"
    )
    prm_train.add_argument("recipe", help="PRM training recipe, e.g. recipes/mm-prm-qwen2.5vl-7b.yaml")
    prm_train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    prm_train.set_defaults(func=cmd_prm_train)

    plot = sub.add_parser("plot", help="draw a training run's metrics.jsonl as a PNG")
    plot.add_argument("run_dir", help="run directory holding metrics.jsonl")
    plot.add_argument("--out", help="PNG to write (default: RUN_DIR/metrics.png)")
    plot.set_defaults(func=cmd_plot)

    samples = sub.add_parser("samples", help="print the samples a training run logged (samples.jsonl)")
    samples.add_argument("run_dir", help="run directory holding samples.jsonl, or the file")
    samples.add_argument("--step", type=int, help="this step's samples (default: the last step's)")
    ranked = samples.add_mutually_exclusive_group()
    ranked.add_argument("--worst", action="store_true", help="lowest reward first (of every step, or of --step)")
    ranked.add_argument("--best", action="store_true", help="highest reward first (of every step, or of --step)")
    samples.add_argument("--limit", type=int, default=10, help="samples shown with --worst/--best (default: 10)")
    samples.set_defaults(func=cmd_samples)
    return parser


def main(argv: list[str] | None = None) -> int:
    # torch imports pynvml, which OpenRLHF requires, and warns about it on every command.
    warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="mm-eureka: %(message)s")
    # bitsandbytes (imported by OpenRLHF and PEFT) warns at import that an optional 4-bit CPU
    # kernel package is missing; the plugin never runs 4-bit ops, and a user reads it as an error.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"mm-eureka: error: {exc}", file=sys.stderr)
        return 2
    except RunInterrupted as exc:
        print(f"mm-eureka: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
