"""`mm-eureka prm annotate` with the tiny colour-task policy on CPU: trees, resume, bad golds, a judge that is down."""

from __future__ import annotations

import json

import pytest

from mm_eureka_plugin.cli import main

SEARCH = ["--k", "16", "--max-rollouts", "48", "--max-new-tokens", "1", "--splitter", "blank_line"]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    from mm_eureka_plugin.synthetic import build_colour_task

    return build_colour_task(tmp_path_factory.mktemp("colours") / "task", seed=0, train_size=8, eval_size=4)


def annotate(data, task, out, capsys, *extra):
    argv = ["prm", "annotate", str(data), "--policy", str(task.model), "--out", str(out), *SEARCH, *extra]
    code = main([*argv, "--backend", "transformers"])
    return code, capsys.readouterr()


def trees(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_problem_gets_a_tree_and_a_rerun_resumes_it_identically(task, tmp_path, capsys):
    out = tmp_path / "trees.jsonl"
    code, printed = annotate(task.train, task, out, capsys)
    assert code == 0, printed.err
    rows = trees(out)
    assert [row["id"] for row in rows] == [f"train-{i:05d}" for i in range(8)] and [r["row"] for r in rows] == list(
        range(1, 9)
    )
    searched = [row for row in rows if row["searches"]]
    assert searched, "no problem with a root MC strictly between 0 and 1: pick another task seed"
    for row in rows:
        root = row["nodes"][0]
        assert root["parent"] is None and root["rollouts"] == 16 and row["rollouts"] <= 48
        assert bool(row["searches"]) == (0 < root["mc"] < 1)  # only mixed problems are searched
    for row in rows:
        # one-word answers are one step: no probe is rolled out; the children of the root are its
        # distinct correct answers (MC 1) and, when searched, its distinct wrong ones (MC 0, judged)
        assert all(node["parent"] == 0 and node["rollouts"] == 0 for node in row["nodes"][1:])
        assert all(search["first_error"] == 1 for search in row["searches"])
        wrong = [node for node in row["nodes"][1:] if node["mc"] == 0.0]
        assert len(wrong) == len(row["searches"])  # each searched rollout is a labelled finished state
        assert all(node["mc"] in (0.0, 1.0) for node in row["nodes"][1:])
    assert f"searched 8 problems ({sum(len(r['nodes']) - 1 for r in rows)} labelled states" in printed.out

    # The trees become PRM training rows: one per root-to-leaf path, with the problem's image.
    assert (
        main(["prm", "build-data", str(task.train), str(out), "--out", str(tmp_path / "rows.jsonl"), "--no-balance"])
        == 0
    )
    paths = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    # one-word answers: every path is one answer, a searched wrong one (label 0) or a correct one (label 1),
    # of a problem whose root MC is strictly between 0 and 1
    negatives = sum(len(row["searches"]) for row in searched)
    positives = sum(node["mc"] == 1.0 for row in searched for node in row["nodes"][1:])
    assert sorted(p["labels"] for p in paths) == [[0.0]] * negatives + [[1.0]] * positives
    assert all(len(p["steps"]) == 1 and len(p["images"]) == 1 for p in paths)
    capsys.readouterr()

    # Killed while writing the second tree: the rerun drops the partial line and writes the same trees.
    text = out.read_text()
    lines = text.splitlines(keepends=True)
    out.write_text(lines[0] + lines[1][:20])
    code, printed = annotate(task.train, task, out, capsys)
    assert code == 0 and out.read_text() == text
    assert "1 already in" in printed.out


def test_a_problem_whose_gold_the_judge_cannot_parse_is_reported_and_skipped(task, tmp_path, capsys, caplog):
    rows = [json.loads(line) for line in task.train.read_text().splitlines()[:2]]
    rows[1]["label"] = "\\frac{"
    rows[1]["images"] = [str(task.train.parent / image) for image in rows[1]["images"]]
    rows[0]["images"] = [str(task.train.parent / image) for image in rows[0]["images"]]
    data = tmp_path / "bad.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    code, printed = annotate(data, task, tmp_path / "t.jsonl", capsys)
    assert code == 0, printed.err
    first, second = trees(tmp_path / "t.jsonl")
    assert "nodes" in first and second == {
        "id": "train-00001",
        "row": 2,
        "skipped": "math-verify cannot parse the gold answer '\\\\frac{'",
    }
    assert "problem train-00001 (row 2) skipped: math-verify cannot parse" in caplog.text
    assert "skipped 1" in printed.out


def test_a_judge_that_is_down_stops_the_run_and_keeps_the_finished_trees(task, tmp_path, capsys):
    lines = task.train.read_text().splitlines(keepends=True)
    data = task.train.parent / "first-two.jsonl"  # beside the images it names
    data.write_text("".join(lines[:2]))
    out = tmp_path / "t.jsonl"
    assert annotate(data, task, out, capsys)[0] == 0
    finished = out.read_text()
    data.write_text("".join(lines[:4]))
    down = ["--judge", "openai_compatible", "--judge-arg", "url=http://127.0.0.1:9/v1", "--judge-arg", "model=m"]
    code, printed = annotate(data, task, out, capsys, *down, "--judge-arg", "retries=0")
    assert code == 2
    assert "judge http://127.0.0.1:9/v1/chat/completions failed 1 times" in printed.err
    assert f"Finished trees are kept in {out}; rerun to continue." in printed.err
    assert out.read_text() == finished


def test_bad_search_settings_name_the_setting(task, tmp_path, capsys):
    code, printed = annotate(task.train, task, tmp_path / "t.jsonl", capsys, "--alpha", "0")
    assert code == 2 and "search settings: alpha must be in (0, 1]" in printed.err
    code, printed = annotate(task.train, task, tmp_path / "t.jsonl", capsys, "--judge-arg", "nonsense")
    assert code == 2 and "expected KEY=VALUE" in printed.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--top-p", "0"], "--top-p must be in (0, 1], got 0.0."),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0."),
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1, got 0."),
    ],
)
def test_bad_sampling_settings_name_the_flag_before_anything_runs(flags, message, tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    argv = ["prm", "annotate", str(tmp_path / "none.jsonl"), "--policy", str(tmp_path), "--out", str(out)]
    assert main([*argv, *flags]) == 2
    assert capsys.readouterr().err == f"mm-eureka: error: {message}\n"
    assert not out.exists()
