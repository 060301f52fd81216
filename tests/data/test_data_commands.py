"""`mm-eureka data check|convert`, and the launcher converting `plugin.data` before Ray starts."""

import json
import logging
from pathlib import Path

import pytest

from mm_eureka_plugin.cli import main
from mm_eureka_plugin.config import RecipeError, load_recipe


def test_check_prints_every_bad_row_and_exits_1(bad_corpus, capsys):
    assert main(["data", "check", str(bad_corpus.mmk12)]) == 1
    lines = capsys.readouterr().out.splitlines()
    expected = bad_corpus.expected["bad-mmk12"]
    assert lines[:-1] == expected
    assert lines[-1] == f"{bad_corpus.mmk12} (mmk12): 18 rows, {18 - len(expected)} valid, {len(expected)} bad"


def test_check_exits_0_on_valid_data_and_2_on_an_unreadable_file(good_data, tmp_path, capsys):
    assert main(["data", "check", str(good_data.mmk12), "--format", "mmk12"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{good_data.mmk12} (mmk12): 3 rows, 3 valid, 0 bad"]
    (tmp_path / "odd.jsonl").write_text('{"x": 1}\n')
    assert main(["data", "check", str(tmp_path / "odd.jsonl")]) == 2
    assert "cannot tell its data format" in capsys.readouterr().err


def test_convert_writes_openrlhf_rows_that_check_clean(good_data, tmp_path, capsys):
    out = tmp_path / "conv" / "train.jsonl"
    argv = ["data", "convert", str(good_data.parquet_hf), "--from", "mmk12-parquet", "--to", "openrlhf", str(out)]
    assert main([*argv, "--system-prompt", "none"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert f"{out}: {len(rows)} rows written, 0 bad rows skipped" in capsys.readouterr().out
    assert len(rows) >= 2
    assert all(m["role"] != "system" for row in rows for m in row["prompt"])
    assert main(["data", "check", str(out)]) == 0


def test_convert_refuses_bad_rows_unless_told_to_skip(bad_corpus, tmp_path, capsys):
    out = tmp_path / "train.jsonl"
    assert main(["data", "convert", str(bad_corpus.mmk12), str(out)]) == 2
    assert "row 2: image 1: image file not found" in capsys.readouterr().err and not out.exists()
    assert main(["data", "convert", str(bad_corpus.mmk12), str(out), "--on-bad-row", "skip"]) == 0
    captured = capsys.readouterr()
    assert "skipped row 2: image 1: image file not found" in captured.err
    assert sum(1 for _ in out.open()) == 18 - len(bad_corpus.expected["bad-mmk12"])


def test_convert_for_a_rollout_executor_adds_its_instructions_and_keeps_source_images(good_data, tmp_path, capsys):
    from PIL import Image

    from mm_eureka_plugin.rollouts.image_tools import instructions

    argv = ["data", "convert", str(good_data.mmk12), "--system-prompt", "none"]
    assert main([*argv, str(tmp_path / "plain.jsonl")]) == 0
    assert (
        main(
            [*argv, str(tmp_path / "tools.jsonl"), "--rollout-executor", "{name: image_tools, coordinates: normalized}"]
        )
        == 0
    )
    plain, tools = ([json.loads(line) for line in (tmp_path / f"{n}.jsonl").open()] for n in ("plain", "tools"))
    names = [[[Path(image).name for image in row["images"]] for row in rows] for rows in (tools, plain)]
    assert names[0] == names[1] and any(names[0])  # the same budgeted images
    for row in tools:
        assert row["prompt"][0] == {"role": "system", "content": [{"type": "text", "text": instructions("normalized")}]}
        sources = json.loads(row["metadata"])["source_images"]
        assert len(sources) == len(row["images"]) and all(Image.open(path).size for path in sources)
    assert all("source_images" not in json.loads(row["metadata"]) for row in plain)
    capsys.readouterr()
    assert main([*argv, str(tmp_path / "bad.jsonl"), "--rollout-executor", "{name: image_tools, max_turns: 0}"]) == 2
    assert "rollout_executor 'image_tools': max_turns must be at least 1" in capsys.readouterr().err
    assert main([*argv, str(tmp_path / "bad.jsonl"), "--rollout-executor", "image_toolz"]) == 2
    assert "image_toolz" in capsys.readouterr().err and not (tmp_path / "bad.jsonl").exists()


def recipe_for(tmp_path, data_path, on_bad_row="error", max_images=2):
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"openrlhf:\n  data.max_images_per_prompt: {max_images}\n  ckpt.output_dir: {tmp_path / 'ckpt'}\n"
        f"plugin:\n  data: {{path: {data_path}, format: mmk12, on_bad_row: {on_bad_row}}}\n"
    )
    return load_recipe(path)


def prepare_data(recipe):
    """What the launcher does before Ray starts: convert the data, point OpenRLHF's flags at it."""
    from mm_eureka_plugin.launch import convert_data
    from mm_eureka_plugin.patches.launch import prepared

    return prepared(recipe, convert_data(recipe))


def test_launcher_converts_once_and_points_openrlhf_at_the_result(good_data, tmp_path):
    recipe = recipe_for(tmp_path, good_data.mmk12)
    flags = prepare_data(recipe).openrlhf
    converted = tmp_path / "ckpt" / "data"
    assert flags["data.prompt_dataset"].startswith(str(converted))
    assert flags["data.label_key"] == "mm_eureka_label" and flags["data.apply_chat_template"] is True
    mtime = (converted / flags["data.prompt_dataset"].rsplit("/", 1)[1]).stat().st_mtime_ns
    assert prepare_data(recipe).openrlhf["data.prompt_dataset"] == flags["data.prompt_dataset"]
    assert (converted / flags["data.prompt_dataset"].rsplit("/", 1)[1]).stat().st_mtime_ns == mtime  # reused
    changed = load_recipe(recipe.path, ["plugin.data.max_pixels=200000"])
    assert prepare_data(changed).openrlhf["data.prompt_dataset"] != flags["data.prompt_dataset"]


def test_launcher_converts_for_image_tools_with_its_instructions_and_source_images(good_data, tmp_path):
    import json

    from mm_eureka_plugin.rollouts.image_tools import instructions

    plain = prepare_data(recipe_for(tmp_path, good_data.mmk12)).openrlhf["data.prompt_dataset"]
    tools = load_recipe(
        recipe_for(tmp_path, good_data.mmk12, max_images=5).path, ["plugin.rollout_executor=image_tools"]
    )
    converted = prepare_data(tools).openrlhf["data.prompt_dataset"]
    assert converted != plain  # its own conversion, not the plain one reused
    row = json.loads(open(converted).readline())
    assert row["prompt"][0]["content"][-1]["text"] == "\n\n" + instructions("pixels")
    assert len(json.loads(row["metadata"])["source_images"]) == len(row["images"])


def test_launcher_stops_on_bad_rows_before_ray_or_skips_and_logs_them(bad_corpus, tmp_path, caplog):
    with pytest.raises(RecipeError, match="(?s)plugin.data.*row 2: image 1: image file not found"):
        prepare_data(recipe_for(tmp_path, bad_corpus.mmk12))
    with caplog.at_level(logging.WARNING):
        prepare_data(recipe_for(tmp_path, bad_corpus.mmk12, on_bad_row="skip"))
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped row")]
    assert len(skipped) == len(bad_corpus.expected["bad-mmk12"])
    assert "skipped row 2 (id m-missing): image 1: image file not found" in skipped[0]
    assert any(f"skipped {len(skipped)} bad row(s)" in r.getMessage() for r in caplog.records)


def test_launcher_refuses_more_images_than_vllm_is_told_to_expect(good_data, tmp_path):
    most = max(len(names) for _, names, _, _ in good_data.expected)
    assert most >= 2
    with pytest.raises(
        RecipeError, match=f"has {most} images: vLLM takes at most {most - 1} in one request. Set it to {most}"
    ):
        prepare_data(recipe_for(tmp_path, good_data.mmk12, max_images=most - 1))
    prepare_data(recipe_for(tmp_path, good_data.mmk12, max_images=most))
    tools = recipe_for(tmp_path, good_data.mmk12, max_images=most).path
    with pytest.raises(
        RecipeError, match=f"has {most} images, and the rollout executor adds up to 2: .* Set it to {most + 2}"
    ):
        prepare_data(load_recipe(tools, ["plugin.rollout_executor={name: image_tools, max_turns: 3}"]))
    prepare_data(load_recipe(tools, ["plugin.rollout_executor={name: image_tools, max_tool_images: 0}"]))
    with pytest.raises(RecipeError, match="'plugin.data.path' is not set"):
        prepare_data(recipe_for(tmp_path, "null"))
