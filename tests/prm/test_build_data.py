"""`mm-eureka prm build-data`: root-to-leaf paths of annotated trees as PRM training rows."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from simulated_policy import RIGHT, SCRIPT, ScriptedPolicy, SimulatedPolicy, SimulatedProblem, judge

from mm_eureka_plugin.cli import main
from mm_eureka_plugin.prm.build_data import tree_paths
from mm_eureka_plugin.prm.mcts import OmegaPRM, SearchConfig
from mm_eureka_plugin.prm.steps import TagSplitter


def node(parent, steps, mc):
    return {"parent": parent, "steps": steps, "mc": mc, "rollouts": 16, "visits": 0}


# root -> a (0.5) -> b (0.25) -> wrong (0.0);  a -> c (0.75);  root -> d (1.0)
TREE = {
    "id": "p1",
    "nodes": [
        node(None, [], 0.5),
        node(0, ["s1", "s2"], 0.5),
        node(1, ["s3"], 0.25),
        node(2, ["x4", "wrong"], 0.0),
        node(1, ["s3'"], 0.75),
        node(0, ["t1"], 1.0),
    ],
}


@pytest.fixture
def data(tmp_path):
    rows = []
    for k, pid in enumerate(["p0", "p1", "p2"]):
        Image.new("RGB", (56, 56), (60 * k, 90, 30)).save(tmp_path / f"{pid}.png")
        rows.append(
            {"prompt": f"<image>Question {pid}?", "images": [f"{pid}.png"], "label": "7", "metadata": {"id": pid}}
        )
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_trees(path, *trees):
    path.write_text("".join(json.dumps(tree) + "\n" for tree in trees))
    return path


def build(data, trees, out, capsys, *extra):
    code = main(["prm", "build-data", str(data), str(trees), "--out", str(out), *extra])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    return [json.loads(line) for line in out.read_text().splitlines()], printed.out


def test_paths_run_from_the_root_to_every_leaf_with_each_nodes_mc():
    assert sorted(tree_paths(TREE)) == [
        (["s1\ns2", "s3", "x4\nwrong"], [0.5, 0.25, 0.0]),
        (["s1\ns2", "s3'"], [0.5, 0.75]),
        (["t1"], [1.0]),
    ]


def test_a_path_stops_at_its_first_mc_zero_node_and_trees_with_root_mc_0_or_1_give_none():
    below_zero = {**TREE, "nodes": [*TREE["nodes"], node(3, ["x5"], 0.0), node(3, ["s5"], 0.5)]}
    assert sorted(tree_paths(below_zero)) == sorted(tree_paths(TREE))  # traverse.py: stop at mc <= 0
    for mc in (0.0, 1.0):
        assert tree_paths({**TREE, "nodes": [node(None, [], mc), *TREE["nodes"][1:]]}) == []


def test_a_scripted_search_gives_mm_prms_paths_without_all_zero_tails():
    tree = OmegaPRM(ScriptedPolicy(SCRIPT), judge, TagSplitter(), SearchConfig(k=4)).search(None, RIGHT, "p")
    assert sorted(tree_paths(tree.to_json())) == [
        (["a", "b2\nc2\nd2\nright"], [0.5, 1.0]),
        (["a", "x1"], [0.5, 0.0]),
        (["a", "y1\ny2", "right"], [0.5, 0.5, 1.0]),
        (["a", "y1\ny2", "wrong"], [0.5, 0.5, 0.0]),
        (["a\nb\nc\nd\nright"], [1.0]),
        (["a\nx1\nx2"], [0.0]),  # the first probe, MC 0, under the root
    ]  # no path ends in two zeros: the wrong rollout a x1 x2 x3 wrong is no MC = 0 leaf of its own


def test_paths_of_searched_trees_have_a_zero_label_only_at_their_end():
    tails = 0
    for seed in range(20):
        search = OmegaPRM(SimulatedPolicy(seed), judge, TagSplitter(), SearchConfig(k=8))
        for path, labels in tree_paths(search.search(SimulatedProblem((0.15,) * 6), RIGHT, "p").to_json()):
            assert 0.0 not in labels[:-1], (path, labels)
            tails += labels[-1] == 0.0
    assert tails > 20


def test_rows_carry_the_prompt_images_and_labels_and_duplicates_are_written_once(data, tmp_path, capsys):
    trees = write_trees(tmp_path / "trees.jsonl", TREE, {"id": "p2", "row": 3, "skipped": "bad gold"}, TREE)
    rows, printed = build(data, trees, tmp_path / "rows.jsonl", capsys, "--no-balance")
    assert [(row["steps"], row["labels"]) for row in rows] == sorted(tree_paths(TREE))
    assert all(row["id"] == "p1" and row["prompt"][0]["content"][0] == {"type": "image"} for row in rows)
    (image,) = rows[0]["images"]
    assert image.startswith(str(tmp_path / "rows.images")) and Image.open(image).size == (56, 56)
    assert "2 positive, 1 negative (0 dropped to balance, 3 duplicates" in printed


def test_balance_keeps_as_many_positive_as_negative_paths(data, tmp_path, capsys):
    rows, printed = build(data, write_trees(tmp_path / "t.jsonl", TREE), tmp_path / "rows.jsonl", capsys)
    assert sorted(row["labels"][-1] == 0.0 for row in rows) == [False, True]
    assert "1 positive, 1 negative (1 dropped to balance" in printed


def test_trees_of_a_real_search_become_rows_whose_labels_are_the_node_values(data, tmp_path, capsys):
    search = OmegaPRM(SimulatedPolicy(1), judge, TagSplitter(), SearchConfig(k=8))
    tree = search.search(SimulatedProblem((0.15,) * 5), RIGHT, "p0")
    assert tree.searches
    rows, _ = build(
        data, write_trees(tmp_path / "t.jsonl", tree.to_json()), tmp_path / "r.jsonl", capsys, "--no-balance"
    )
    assert len(rows) == len(tree_paths(tree.to_json()))
    for row in rows:
        prefix = ()
        for step, label in zip(row["steps"], row["labels"], strict=True):
            prefix += tuple(step.split("\n"))
            assert tree.nodes[prefix].mc == label


def test_bad_trees_name_the_line(data, tmp_path, capsys):
    unknown = write_trees(tmp_path / "t.jsonl", {**TREE, "id": "p9"})
    assert main(["prm", "build-data", str(data), str(unknown), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "t.jsonl, line 1: problem id 'p9' is not in" in capsys.readouterr().err
    only_positive = write_trees(tmp_path / "t.jsonl", {**TREE, "nodes": TREE["nodes"][:2]})
    assert main(["prm", "build-data", str(data), str(only_positive), "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "1 positive, 0 negative paths: nothing to balance" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
