"""``mm-eureka prm build-data``: PRM training rows from ``mm-eureka prm annotate`` trees.

A row is one path of a problem's tree from the root down, as MM-PRM's ``data_pipeline/traverse.py``
(``traverse``, ModalMinds/MM-PRM b914fd66) walks it::

    {"id": ..., "prompt": [chat messages with {"type": "image"}], "images": ["/abs/out.images/<sha256>.png"],
     "steps": ["<node 1's steps>", ...], "labels": [MC of node 1, ...]}

Each node on the path (the root excluded) is one PRM step: its steps (those after its parent's)
joined by newlines, labelled with its Monte Carlo value, the soft target of training (MM-PRM:
a ``<prm>`` tag after each node). A path ends at the first node with MC 0 (a negative: it ends in
a wrong step) or at a leaf (a positive). Only trees whose root MC is strictly between 0 and 1 give
paths (MM-PRM's ``traverse.py`` keeps only those; the others were not searched). With ``balance``
the larger class is subsampled (seeded) to the size of the smaller. A path seen twice (same
problem, same steps) is written once. Images are the data file's, on the pixel budget, written as
PNGs into ``<out stem>.images/``; the output appears only when complete. Trees of skipped problems
and trees without a path give no rows.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mm_eureka_plugin.data.convert import detect_format, load_record_images, publish_staged, stage_image
from mm_eureka_plugin.data.images import ImageError
from mm_eureka_plugin.eval.inputs import EvalError, read_problems
from mm_eureka_plugin.registry import resolve
from mm_eureka_plugin.runfiles import read_done


@dataclass
class BuildSummary:
    """Rows written by class, paths dropped as duplicates or to balance, trees without paths."""

    positives: int = 0
    negatives: int = 0
    duplicates: int = 0
    dropped_to_balance: int = 0
    trees_without_paths: int = 0


def tree_paths(tree: dict[str, Any]) -> list[tuple[list[str], list[float]]]:
    """Every path of a tree row as (node step texts, node MC values), root excluded, depth first:
    from the root down to the first node with MC 0, or to a leaf. No paths when the root MC is 0 or 1."""
    nodes = tree["nodes"]
    roots = [i for i, node in enumerate(nodes) if node["parent"] is None]
    if not roots or not 0.0 < float(nodes[roots[0]]["mc"]) < 1.0:
        return []
    children: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        if node["parent"] is not None:
            children.setdefault(node["parent"], []).append(i)
    paths = []
    stack = [(child, [], []) for child in reversed(children.get(roots[0], []))]
    while stack:
        at, steps, labels = stack.pop()
        steps = [*steps, "\n".join(nodes[at]["steps"])]
        labels = [*labels, float(nodes[at]["mc"])]
        if labels[-1] <= 0.0 or at not in children:  # traverse.py stops at mc <= THRESHOLD (0.0)
            paths.append((steps, labels))
        else:
            stack.extend((child, steps, labels) for child in reversed(children[at]))
    return paths


def build_data(
    data: str | Path,
    trees: str | Path,
    out: str | Path,
    *,
    data_format: str | None = None,
    format_params: dict[str, Any] | None = None,
    balance: bool = True,
    seed: int = 0,
) -> BuildSummary:
    """Write the training rows of every tree in ``trees`` (problems read from ``data``) to ``out``.

    Raises ``EvalError`` for a tree line that is not a tree, or whose id is not in ``data``, and for
    an image that cannot be loaded, naming the line or row.
    """
    data, trees, out = Path(data), Path(trees), Path(out).resolve()
    if not trees.is_file():
        raise EvalError(f"{trees}: no such trees file (write it with mm-eureka prm annotate).")
    records = read_problems(data, resolve("data_format", data_format or detect_format(data), **(format_params or {})))
    summary = BuildSummary()
    rows: dict[str, list[dict[str, Any]]] = {"positive": [], "negative": []}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for where, tree in read_done(trees, "searched"):
        if not isinstance(tree, dict) or not isinstance(tree.get("id"), str):
            raise EvalError(f"{where}: not a tree row; is this an mm-eureka prm annotate output?")
        if "skipped" in tree:
            continue
        if tree["id"] not in records:
            raise EvalError(
                f"{where}: problem id {tree['id']!r} is not in {data}; give the data file it was annotated from."
            )
        paths = tree_paths(tree)
        summary.trees_without_paths += not paths
        for steps, labels in paths:
            if (tree["id"], tuple(steps)) in seen:
                summary.duplicates += 1
                continue
            seen.add((tree["id"], tuple(steps)))
            kind = "negative" if labels[-1] == 0.0 else "positive"
            rows[kind].append({"id": tree["id"], "steps": steps, "labels": labels})
    if balance:
        keep = min(len(rows["positive"]), len(rows["negative"]))
        if keep == 0:
            counts = ", ".join(f"{len(found)} {kind}" for kind, found in rows.items())
            raise EvalError(f"{trees}: {counts} paths: nothing to balance; write them all with balance off.")
        rng = random.Random(seed)
        for kind, found in rows.items():
            summary.dropped_to_balance += len(found) - keep
            rows[kind] = [found[i] for i in sorted(rng.sample(range(len(found)), keep))]
    summary.positives, summary.negatives = len(rows["positive"]), len(rows["negative"])
    order = {pid: i for i, pid in enumerate(records)}

    image_dir = out.with_name(out.stem + ".images")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent))
    try:
        images: dict[str, list[str]] = {}
        with (staging / "rows.jsonl").open("w", encoding="utf-8") as lines:
            for row in sorted(rows["positive"] + rows["negative"], key=lambda r: (order[r["id"]], r["steps"])):
                record = records[row["id"]]
                if row["id"] not in images:
                    try:
                        loaded = load_record_images(record)
                    except ImageError as exc:
                        raise EvalError(f"{data}, row {record.row}: {exc}") from None
                    images[row["id"]] = [stage_image(image, staging, image_dir) for image in loaded]
                full = {"id": row["id"], "prompt": record.messages, "images": images[row["id"]], **row}
                lines.write(json.dumps(full, ensure_ascii=False) + "\n")
        publish_staged(staging, image_dir, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary
