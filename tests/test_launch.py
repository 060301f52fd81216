"""The launcher's run bookkeeping: a new run's metrics file."""

import json

from mm_eureka_plugin.config import load_recipe
from mm_eureka_plugin.launch import start_metrics_file


def recipe_in(tmp_path, *overrides):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"openrlhf:\n  ckpt.output_dir: {tmp_path / 'run'}\n")
    return load_recipe(path, list(overrides))


def test_a_new_run_keeps_the_earlier_runs_metrics_beside_its_own(tmp_path):
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.parent.mkdir()
    earlier = json.dumps({"step": 1, "kind": "train", "time": 0.0, "metrics": {"reward": 0.5}}) + "\n"
    metrics.write_text(earlier)

    start_metrics_file(recipe_in(tmp_path, "openrlhf.ckpt.load_enable=true"))  # --resume appends
    assert metrics.read_text() == earlier

    start_metrics_file(recipe_in(tmp_path))
    assert not metrics.exists()
    (kept,) = metrics.parent.glob("metrics-*.jsonl")
    assert kept.read_text() == earlier

    start_metrics_file(recipe_in(tmp_path))  # nothing to keep
    assert len(list(metrics.parent.glob("metrics*"))) == 1
