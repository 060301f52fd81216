"""Data pipeline speed: `data check` and `data convert` rows/s, and what the pixel-budget resize costs.

Generates ``--rows`` rows in OpenRLHF's format (``prompt`` with an ``<image>``, ``images``,
``label``), each naming one of ``--images`` PNGs of 560x420 (on Qwen's 28-pixel grid, 235k pixels,
inside the default budget). Then, median of ``--repeats`` interleaved runs each:

- ``check_file`` (read, load every image, apply the budget, report bad rows);
- ``convert_file`` with the default budget (no image changes size: the baseline);
- ``convert_file`` with ``max_pixels`` 256*28*28 (every image resized, bicubic, to 448x336).

The ratio resize / baseline is what the budget costs when every image needs it.

    .venv/bin/python benchmarks/data_pipeline.py [--rows 10000] [--images 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import machine_line, timed
from PIL import Image

from mm_eureka_plugin.data.convert import check_file, convert_file

RESIZED_MAX_PIXELS = 256 * 28 * 28


def make_data(folder: Path, rows: int, images: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    for i in range(images):
        image = Image.new("RGB", (560, 420), tuple(rng.randrange(256) for _ in range(3)))
        image.putpixel((i % 560, 0), (i % 256, 0, 0))  # distinct pixels: distinct hashes
        image.save(folder / f"{i}.png")
    path = folder / "rows.jsonl"
    with path.open("w") as out:
        for r in range(rows):
            row = {
                "prompt": f"<image>Question {r}: what is the area?",
                "images": [f"{r % images}.png"],
                "label": str(r),
            }
            out.write(json.dumps(row) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = make_data(folder, args.rows, args.images)
        out = folder / "out" / "converted.jsonl"

        def convert(**budget) -> None:
            shutil.rmtree(out.parent, ignore_errors=True)
            report = convert_file(data, "openrlhf", out, **budget)
            assert report.written == args.rows, report

        warm = folder / "warm.jsonl"  # first calls import transformers' resize code: not timed
        warm.write_text("".join(data.read_text().splitlines(keepends=True)[:2]))
        check_file(warm, "openrlhf"), convert_file(warm, "openrlhf", folder / "warm-out.jsonl")
        runs: dict[str, list[float]] = {"check": [], "convert": [], "convert_resize": []}
        for _ in range(args.repeats):
            runs["check"].append(timed(lambda: check_file(data, "openrlhf"))[0])
            runs["convert"].append(timed(convert)[0])
            runs["convert_resize"].append(timed(lambda: convert(max_pixels=RESIZED_MAX_PIXELS))[0])
    median = {key: statistics.median(values) for key, values in runs.items()}
    rate = {key: args.rows / seconds for key, seconds in median.items()}
    print(machine_line("one process"))
    print(f"{args.rows} rows, {args.images} distinct 560x420 PNGs, median of {args.repeats} runs\n")
    print("| step | rows/s | s |")
    print("|---|---|---|")
    print(f"| data check | {rate['check']:.0f} | {median['check']:.2f} |")
    print(
        f"| data convert, images already on the budget (baseline) | {rate['convert']:.0f} | {median['convert']:.2f} |"
    )
    print(
        f"| data convert, every image resized to 448x336 | {rate['convert_resize']:.0f} "
        f"| {median['convert_resize']:.2f} |"
    )
    print(f"\nratio resize / no resize (time): {median['convert_resize'] / median['convert']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
