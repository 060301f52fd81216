"""Hub datasets as data sources: a local folder laid out as the FanqingM/MMK12 hub repo, and the hub
name itself read from a datasets cache built locally, all offline (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from mm_eureka_plugin.cli import main
from mm_eureka_plugin.data import DataError, MMK12Parquet, check_file, detect_format
from mm_eureka_plugin.data.formats import DataSource, absolute_source, data_source

HUB_NAME = "FanqingM/MMK12"
README = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: test
    path: data/test-*
---
# MMK12 (a local stand-in: the hub repo's layout, a few rows)
"""
# (id, subject, image colour, question, answer) per split, with MMK12's columns:
# fill-in-the-blank problems in train, multiple-choice questions in test.
ROWS = {
    "train": [
        ("train-1", "math", "red", "The side of the red square is 2. Its area is ____.", "4"),
        ("train-2", "physics", "blue", "A ball falls for 1 s (g = 10 m/s^2). Its speed is ____ m/s.", "10"),
        ("train-3", "chemistry", "green", "How many atoms are in one H2O molecule? ____", "3"),
    ],
    "test": [
        ("test-1", "math", "yellow", "Which number is prime?\nA. 4\nB. 6\nC. 7\nD. 9", "C"),
        ("test-2", "biology", "white", "Which organelle makes ATP?\nA. Nucleus\nB. Mitochondrion", "B"),
    ],
}


def png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (56, 84), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Offline as a user sets it (HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1), the datasets cache in
    ``tmp_path/hf-datasets``; ``datasets`` reads these at import, so its constants are set too."""
    import datasets
    import huggingface_hub.constants

    cache = tmp_path / "hf-datasets"
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", cache / "downloads")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", cache / "downloads" / "extracted")
    monkeypatch.chdir(tmp_path)  # no local folder named like the hub dataset
    return cache


@pytest.fixture
def mmk12_repo(tmp_path):
    """A folder laid out as the FanqingM/MMK12 hub repo: README.md with its ``configs:``, and
    ``data/{train,test}-00000-of-00001.parquet`` with an HF ``Image`` column of PNG bytes."""
    import datasets

    repo = tmp_path / "MMK12"
    (repo / "data").mkdir(parents=True)
    (repo / "README.md").write_text(README)
    features = datasets.Features(
        id=datasets.Value("string"),
        subject=datasets.Value("string"),
        image=datasets.Image(),
        question=datasets.Value("string"),
        answer=datasets.Value("string"),
    )
    for split, rows in ROWS.items():
        columns = {
            "id": [r[0] for r in rows],
            "subject": [r[1] for r in rows],
            "image": [{"bytes": png(r[2]), "path": None} for r in rows],
            "question": [r[3] for r in rows],
            "answer": [r[4] for r in rows],
        }
        table = datasets.Dataset.from_dict(columns, features=features)
        table.to_parquet(str(repo / "data" / f"{split}-00000-of-00001.parquet"))
    return repo


def cache_as_if_read_from_the_hub(repo: Path, name: str, cache_dir: Path) -> None:
    """Build locally, from ``repo`` (a copy of the hub repo ``name``), the datasets cache that
    ``load_dataset(name)`` leaves after reading it online:
    ``<cache_dir>/<owner>___<snake-case name>/default/0.0.0/<commit>/`` with one Arrow file per split."""
    from datasets.data_files import DataFilesDict
    from datasets.packaged_modules.parquet.parquet import Parquet

    owner, dataset_name = name.split("/")
    files = DataFilesDict.from_patterns({split: [f"data/{split}-*"] for split in ROWS}, base_path=str(repo))
    builder = Parquet(
        cache_dir=str(cache_dir),
        dataset_name=dataset_name,
        config_name="default",
        config_id="default",
        hash="0" * 40,  # the commit an online read records
        data_files=files,
    )
    builder.download_and_prepare()
    snake_name = Path(builder.cache_dir).parents[2].name  # what the Hub loader names it: mmk12
    (cache_dir / snake_name).rename(cache_dir / f"{owner}___{snake_name}")


def expected_ids(split):
    return [row[0] for row in ROWS[split]]


def test_data_sources_are_files_folders_or_hub_names(tmp_path, mmk12_repo):
    (tmp_path / "rows.jsonl").write_text("{}\n")
    cases = {
        str(mmk12_repo): DataSource("folder", str(mmk12_repo)),
        f"{mmk12_repo}:test": DataSource("folder", str(mmk12_repo), "test"),
        str(tmp_path / "rows.jsonl"): DataSource("file", str(tmp_path / "rows.jsonl")),
        "missing/train.jsonl": DataSource("file", "missing/train.jsonl"),
        HUB_NAME: DataSource("hub", HUB_NAME),
        f"{HUB_NAME}:test[:1]": DataSource("hub", HUB_NAME, "test[:1]"),
        "./MMK12x": DataSource("file", "./MMK12x"),
        "/no/such/dir": DataSource("file", "/no/such/dir"),
        "/no/such/dir:test": DataSource("file", "/no/such/dir:test"),
        "owner/name/more": DataSource("file", "owner/name/more"),
    }
    for text, expected in cases.items():
        assert data_source(text, tmp_path) == expected, text
    assert data_source("MMK12:test", tmp_path) == DataSource("folder", "MMK12", "test")  # relative to base_dir
    assert absolute_source("MMK12:test", tmp_path) == f"{mmk12_repo}:test"
    assert absolute_source(f"{HUB_NAME}:test", tmp_path) == f"{HUB_NAME}:test"


def test_a_hub_layout_folder_is_read_by_split_offline(offline, mmk12_repo):
    for source, split in [(f"{mmk12_repo}:test", "test"), (str(mmk12_repo), "train")]:
        records = list(MMK12Parquet().read(source))
        assert [r.metadata["id"] for r in records] == expected_ids(split)
        assert [r.row for r in records] == list(range(1, len(ROWS[split]) + 1))  # rows of the split, from 1
        assert [r.answer for r in records] == [row[4] for row in ROWS[split]]
        assert all(isinstance(r.images[0], bytes) and r.images[0].startswith(b"\x89PNG") for r in records)
        assert records[0].metadata["subject"] == ROWS[split][0][1]
        assert detect_format(source) == "mmk12-parquet"
    assert offline.is_dir()  # read through (and into) the datasets cache, not next to the data
    assert sorted(p.name for p in mmk12_repo.rglob("*")) == [
        "README.md",
        "data",
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]


def test_data_check_and_convert_read_a_hub_layout_folder(offline, mmk12_repo, tmp_path, capsys):
    assert main(["data", "check", f"{mmk12_repo}:test"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{mmk12_repo}:test (mmk12-parquet): 2 rows, 2 valid, 0 bad"]
    out = tmp_path / "converted" / "train.jsonl"
    assert main(["data", "convert", str(mmk12_repo), str(out), "--from", "mmk12-parquet"]) == 0
    assert f"{out}: 3 rows written, 0 bad rows skipped (mmk12-parquet)" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [json.loads(row["metadata"])["id"] for row in rows] == expected_ids("train")
    assert all(Path(row["images"][0]).is_file() for row in rows)
    assert main(["data", "check", str(out)]) == 0


def test_a_hub_name_is_read_offline_from_a_datasets_cache_built_locally(offline, mmk12_repo, capsys):
    import datasets

    cache_as_if_read_from_the_hub(mmk12_repo, HUB_NAME, offline)
    # datasets itself finds the name in its cache while offline (CachedDatasetModuleFactory)
    test = datasets.load_dataset(HUB_NAME, split="test")
    assert test["id"] == expected_ids("test")
    assert f"{Path(offline) / 'FanqingM___mmk12'}" in test.cache_files[0]["filename"]

    records = list(MMK12Parquet().read(f"{HUB_NAME}:test"))
    assert [(r.row, r.metadata["id"], r.answer) for r in records] == [(1, "test-1", "C"), (2, "test-2", "B")]
    assert [r.metadata["id"] for r in MMK12Parquet().read(HUB_NAME)] == expected_ids("train")
    report = check_file(f"{HUB_NAME}:test")
    assert (report.format, report.total, report.ok) == ("mmk12-parquet", 2, True)
    assert main(["data", "check", f"{HUB_NAME}:test"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{HUB_NAME}:test (mmk12-parquet): 2 rows, 2 valid, 0 bad"]


def test_eval_and_prm_build_data_take_a_hub_name(offline, mmk12_repo, tmp_path, capsys):
    cache_as_if_read_from_the_hub(mmk12_repo, HUB_NAME, offline)
    candidates = tmp_path / "candidates.jsonl"
    answers = {"test-1": ["C", "A"], "test-2": ["A", "A"]}
    candidates.write_text(
        "".join(
            json.dumps({"id": pid, "responses": [f"<think>.</think><answer>{a}</answer>" for a in given]}) + "\n"
            for pid, given in answers.items()
        )
    )
    out = tmp_path / "eval"
    assert main(["eval", f"{HUB_NAME}:test", "--candidates", str(candidates), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["overall"]["pass@1"] == pytest.approx(0.25) and report["counts"]["overall"] == 2
    assert json.loads((out / "eval.json").read_text())["benchmark"] == f"{HUB_NAME}:test"

    node = {"parent": None, "steps": [], "mc": 0.5, "rollouts": 4, "visits": 0}
    tree = {"id": "test-2", "nodes": [node, {**node, "parent": 0, "steps": ["s1"], "mc": 1.0}]}
    trees = tmp_path / "trees.jsonl"
    trees.write_text(json.dumps(tree) + "\n")
    rows = tmp_path / "prm" / "rows.jsonl"
    assert main(["prm", "build-data", f"{HUB_NAME}:test", str(trees), "--out", str(rows), "--no-balance"]) == 0
    assert len(rows.read_text().splitlines()) == 1, capsys.readouterr().err


def test_a_split_that_is_not_there_lists_the_splits(offline, mmk12_repo):
    with pytest.raises(DataError) as err:
        list(MMK12Parquet().read(f"{mmk12_repo}:validation"))
    assert str(err.value).startswith(
        f"{mmk12_repo}:validation: no split 'validation'; the splits there are train, test."
    )
    cache_as_if_read_from_the_hub(mmk12_repo, HUB_NAME, offline)
    with pytest.raises(DataError, match=r"^FanqingM/MMK12:dev: no split 'dev'; the splits there are train, test\. "):
        detect_format(f"{HUB_NAME}:dev")


def test_a_hub_name_not_cached_offline_says_how_to_get_it(offline, capsys):
    with pytest.raises(DataError) as err:
        list(MMK12Parquet().read("FanqingM/MMK12:test"))
    message = str(err.value)
    assert message.startswith("FanqingM/MMK12:test: no such local file or folder, and the hub dataset")
    assert f"is not in the datasets cache ({offline}) while offline mode is on" in message
    assert "Read it once online" in message and "hf download FanqingM/MMK12 --repo-type dataset" in message
    assert main(["data", "check", "FanqingM/MMK12:test"]) == 2
    assert "is not in the datasets cache" in capsys.readouterr().err


def test_local_file_errors_are_unchanged_and_an_empty_folder_is_named(offline, tmp_path):
    with pytest.raises(DataError, match=r"nowhere\.parquet: no such file\.$"):
        list(MMK12Parquet().read(tmp_path / "nowhere.parquet"))
    with pytest.raises(DataError, match=r"/no/such/dir: no such file\.$"):
        list(MMK12Parquet().read("/no/such/dir"))
    with pytest.raises(DataError, match=r"nowhere\.jsonl: no such file\.$"):
        detect_format(tmp_path / "nowhere.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: cannot read it with datasets"):
        list(MMK12Parquet().read(tmp_path / "empty"))


def test_the_launcher_converts_a_hub_source_and_dry_run_takes_it(offline, mmk12_repo, tmp_path):
    from mm_eureka_plugin.config import load_recipe
    from mm_eureka_plugin.launch import check_data_path, convert_data

    cache_as_if_read_from_the_hub(mmk12_repo, HUB_NAME, offline)
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(
        f"openrlhf:\n  ckpt.output_dir: {tmp_path / 'ckpt'}\n"
        f"plugin:\n  data: {{path: '{HUB_NAME}:test', format: mmk12-parquet}}\n"
    )
    recipe = load_recipe(recipe_path)
    assert recipe.plugin.data.path == f"{HUB_NAME}:test"
    check_data_path(recipe)
    converted = convert_data(recipe)
    assert converted.parent == tmp_path / "ckpt" / "data" and converted.name.startswith("MMK12-test-")
    assert len(converted.read_text().splitlines()) == 2
    folder = load_recipe(recipe_path, ["plugin.data.path=MMK12"])  # relative to the recipe's folder
    assert folder.plugin.data.path == str(mmk12_repo)
    assert convert_data(folder).name.startswith("MMK12-train-")
