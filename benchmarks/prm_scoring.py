"""PRM scoring: one forward pass per solution (tags after every step) against one per step prefix.

Both score the same solutions with the same :class:`~mm_eureka_plugin.prm.scorer.PRMScorer` on a
tiny random-weight Qwen2.5-VL made into a PRM; the baseline scores each prefix ``steps[:k]``
separately and keeps its last tag's score (the per-step way), ours scores the whole solution
once. Reports tokens processed and the median time of ``--repeats`` runs, and the ratios.

    .venv/bin/python benchmarks/prm_scoring.py [--solutions 16] [--steps 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from common import machine_line, timed
from PIL import Image

from mm_eureka_plugin.prm.scorer import PRMInput, PRMScorer, make_prm_checkpoint
from mm_eureka_plugin.tiny_vlm import build_tiny_qwen2_5_vl


def solutions(count: int, steps: int) -> list[PRMInput]:
    """``count`` solutions of ``steps`` steps (~20 words each), each with one 112x112 image."""
    return [
        PRMInput(
            f"Problem {i}: find the area of the shaded region.",
            [
                f"Step {k + 1}: the side is {i + k} so the area grows by {(i + k) ** 2} square units " * 2
                for k in range(steps)
            ],
            [Image.new("RGB", (112, 112), (40 * (i % 6), 90, 160))],
        )
        for i in range(count)
    ]


def tokens(scorer: PRMScorer, items: list[PRMInput]) -> int:
    return sum(
        int(
            scorer.processor(text=[scorer.text(item)], images=list(item.images), return_tensors="pt")[
                "attention_mask"
            ].sum()
        )
        for item in items
    )


def median_seconds(scorer: PRMScorer, items: list[PRMInput], repeats: int) -> float:
    """Median seconds of ``repeats`` runs of scoring ``items``."""
    return statistics.median(timed(lambda: scorer.score(items))[0] for _ in range(repeats))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solutions", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        prm = make_prm_checkpoint(build_tiny_qwen2_5_vl(os.path.join(tmp, "base")), os.path.join(tmp, "prm"))
        scorer = PRMScorer(prm, batch_size=args.batch_size)
        ours = solutions(args.solutions, args.steps)
        prefixes = [PRMInput(s.prompt, s.steps[: k + 1], s.images) for s in ours for k in range(len(s.steps))]
        scorer.score(ours[:1])  # warm-up
        ours_tokens, base_tokens = tokens(scorer, ours), tokens(scorer, prefixes)
        ours_time = median_seconds(scorer, ours, args.repeats)
        base_time = median_seconds(scorer, prefixes, args.repeats)
    print(machine_line("no GPU use (tiny model on CPU)"))
    print(f"{args.solutions} solutions x {args.steps} steps, batch {args.batch_size}, median of {args.repeats} runs\n")
    print("| method | forwards | tokens processed | median s |")
    print("|---|---|---|---|")
    print(f"| one forward per step prefix (baseline) | {len(prefixes)} | {base_tokens} | {base_time:.3f} |")
    print(f"| one forward per solution (ours) | {len(ours)} | {ours_tokens} | {ours_time:.3f} |")
    print(f"\nratio ours / baseline: tokens {ours_tokens / base_tokens:.3f}, time {ours_time / base_time:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
