"""Prompt preparation in rollout: a prompt's images processed once per group of n samples.

OpenRLHF 0.11.2's rollout actor (``RolloutRayActor.generate_responses``) runs its executor once
per sample, and each run loads the prompt's images and runs the processor on them. With the
plugin's patches the actor does that once per prompt and shares the result with the group's n
samples. Both are timed here on the same batch: ``--prompts`` prompts with one PNG of ``--size``
each (random pixels, as photos do not compress either), ``--n`` samples per prompt, the
processor of a Qwen2.5-VL with the MM-Eureka recipes' pixel budget (4 to 640 patches of 28x28), all
prompts of the batch in flight at once as the actor receives them. The engine answers at once
(a fake: no vLLM here), so the time is the preparation alone: OpenRLHF's own
``SingleTurnAgentExecutor`` tokenising, loading and processing. Median of ``--repeats`` runs.

Bytes per group: what Ray pickles to send one prompt's n samples back (the samples' pixel
tensors are sent once when shared), and the distinct pixel-tensor bytes the group holds.

    .venv/bin/python benchmarks/rollout_prompts.py [--prompts 16] [--n 8] [--size 1024x768] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import pickle
import statistics
import sys
import tempfile
import types
from functools import partial
from pathlib import Path

import numpy as np
from common import machine_line, timed
from PIL import Image

MIN_PIXELS, MAX_PIXELS = 4 * 28 * 28, 640 * 28 * 28


class FakeEngine:
    """The rollout actor's ``self``: OpenRLHF's executor, and an engine that answers one token at
    once (no vLLM on this machine; generation is not what is measured)."""

    def __init__(self) -> None:
        from openrlhf.utils.agent import SingleTurnAgentExecutor

        self.executor = SingleTurnAgentExecutor()

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        await asyncio.sleep(0)
        output = types.SimpleNamespace(token_ids=[11], text=",", finish_reason="stop", logprobs=None)
        return types.SimpleNamespace(outputs=[output])


def actor_classes():
    """(OpenRLHF's RolloutRayActor class, the patched one), from an unpatched copy of its module."""
    from mm_eureka_plugin.patches import install, vllm_engine

    install(cpu=importlib.util.find_spec("vllm") is None)  # the vllm stand-in where vLLM is absent
    spec = importlib.util.find_spec("openrlhf.trainer.ray.vllm_engine")
    location = importlib.util.spec_from_file_location("openrlhf.trainer.ray.upstream_copy", spec.origin)
    copy = importlib.util.module_from_spec(location)
    location.loader.exec_module(copy)
    upstream = copy.RolloutRayActor.__ray_actor_class__
    vllm_engine.patch(copy)
    return upstream, copy.RolloutRayActor.__ray_actor_class__


def batch(actor_class, processor, prompts: list[tuple[str, list[str]]], n: int) -> list[list[dict]]:
    from vllm import SamplingParams

    async def run():
        engine, params = FakeEngine(), SamplingParams(max_tokens=4)
        return await asyncio.gather(
            *(
                actor_class.generate_responses(engine, text, "1", params, 4096, processor, num_samples=n, images=images)
                for text, images in prompts
            )
        )

    return asyncio.run(run())


def pixel_bytes(group: list[dict]) -> int:
    tensors = {id(t): t for sample in group for t in (sample["mm_train_inputs"] or {}).values()}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--size", default="1024x768", help="image width x height")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    width, height = map(int, args.size.split("x"))

    from mm_eureka_plugin.checkpoints import load_processor
    from mm_eureka_plugin.tiny_vlm import build_tiny_qwen2_5_vl

    upstream, patched = actor_classes()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        processor = load_processor(
            build_tiny_qwen2_5_vl(folder / "model", min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
        )[0]
        prompts = []
        for i in range(args.prompts):
            path = folder / f"{i}.png"
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Question {i}?"}]}]
            prompts.append(
                (processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), [str(path)])
            )
        for actor_class in (upstream, patched):  # warm: not timed
            batch(actor_class, processor, prompts[:1], 2)
        runs: dict[str, list[float]] = {"upstream": [], "ours": []}
        groups: dict[str, list[dict]] = {}
        for _ in range(args.repeats):
            for name, actor_class in (("upstream", upstream), ("ours", patched)):
                seconds, result = timed(partial(batch, actor_class, processor, prompts, args.n))
                groups[name] = result[0]
                runs[name].append(seconds)
    for ours, theirs in zip(groups["ours"], groups["upstream"], strict=True):
        assert ours["observation_tokens"] == theirs["observation_tokens"], "the patched actor changed the prompt"
    median = {name: statistics.median(values) for name, values in runs.items()}
    grid = groups["ours"][0]["mm_train_inputs"]["image_grid_thw"][0].tolist()
    print(machine_line("one process"))
    print(
        f"{args.prompts} prompts x {args.n} samples, one {width}x{height} PNG each (processed to a "
        f"{grid[1]}x{grid[2]} patch grid), median of {args.repeats} runs\n"
    )
    print("| rollout actor | s per batch | samples/s | pickled bytes per group | pixel bytes per group |")
    print("|---|---|---|---|---|")
    for name, label in (("upstream", "OpenRLHF, per sample (baseline)"), ("ours", "patched, once per group (ours)")):
        group = groups[name]
        print(
            f"| {label} | {median[name]:.3f} | {args.prompts * args.n / median[name]:.0f} "
            f"| {len(pickle.dumps(group)):,} | {pixel_bytes(group):,} |"
        )
    print(f"\nratio ours / baseline (time per batch): {median['ours'] / median['upstream']:.3f}")
    print(f"speed-up: {median['upstream'] / median['ours']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
