"""`mm-eureka eval`: pre-generated candidates judged, scored by a tiny PRM, resumed, and refused when wrong."""

from __future__ import annotations

import json
import logging

import pytest
from PIL import Image

from mm_eureka_plugin.cli import main
from mm_eureka_plugin.prm.steps import TagSplitter

# id -> (subject, gold, question, image colours, answers of the 3 candidates)
PROBLEMS = {
    "p1": ("math", "3", "What is 1 + 2?", ["red"], ["3", "3", "4"]),  # right, right, wrong
    "p2": ("physics", "B", "Which arrow shows the force? A or B", ["blue", "green"], ["A", "A", "B"]),
    "p3": ("math", "12", "How many edges has a cube?", ["yellow"], ["11", "13", "14"]),  # all wrong
    "p4": ("physics", "0.5", "What is the probability of heads?", ["white"], ["0.5", "0.25", "0.5"]),
}
# Worked out per problem (pass@1, maj@3, pass@3), majority = the most frequent answer, ties to the first:
#   p1 (2/3, 1, 1)   p2 (1/3, 0 ("A" wins), 1)   p3 (0, 0, 0)   p4 (2/3, 1, 1)
EXPECTED = {
    "overall": {"pass@1": 5 / 12, "maj@N": 2 / 4, "pass@N": 3 / 4},
    "by_category": {
        "math": {"pass@1": 1 / 3, "maj@N": 1 / 2, "pass@N": 1 / 2},
        "physics": {"pass@1": 1 / 2, "maj@N": 1 / 2, "pass@N": 1.0},
    },
    "counts": {"overall": 4, "math": 2, "physics": 2},
    "n_min": 3,
    "n_max": 3,
}


def response(answer: str, steps: int = 0) -> str:
    body = "".join(f"<step>Step {k + 1}: look at the figure again.</step>" for k in range(steps))
    return f"<think>{body or 'Thinking.'}</think><answer>{answer}</answer>"


@pytest.fixture
def benchmark(tmp_path):
    """An `openrlhf`-format benchmark with PNG images next to it."""
    rows = []
    for pid, (subject, gold, question, colours, _) in PROBLEMS.items():
        images = []
        for k, colour in enumerate(colours):
            Image.new("RGB", (56, 84), colour).save(tmp_path / f"{pid}-{k}.png")
            images.append(f"{pid}-{k}.png")
        prompt = "<image>" * len(colours) + question
        rows.append({"prompt": prompt, "images": images, "label": gold, "metadata": {"id": pid, "subject": subject}})
    path = tmp_path / "bench.jsonl"
    write_jsonl(path, rows)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def candidates_file(path, steps=None):
    """One line per problem; ``steps[pid]`` gives each candidate's number of <step>s (default none)."""
    rows = []
    for pid, (*_, answers) in PROBLEMS.items():
        counts = (steps or {}).get(pid, [0] * len(answers))
        rows.append({"id": pid, "responses": [response(a, n) for a, n in zip(answers, counts)]})
    return write_jsonl(path, rows)


def results(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_baselines_per_subject_are_exact_and_the_report_is_written(benchmark, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["eval", str(benchmark), "--candidates", str(candidates_file(tmp_path / "c.jsonl")), "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report.keys() == EXPECTED.keys()
    assert report["overall"] == pytest.approx(EXPECTED["overall"], abs=1e-12)
    for subject, values in EXPECTED["by_category"].items():
        assert report["by_category"][subject] == pytest.approx(values, abs=1e-12)
    assert {key: report[key] for key in ("counts", "n_min", "n_max")} == {
        key: EXPECTED[key] for key in ("counts", "n_min", "n_max")
    }
    table = (out / "report.md").read_text()
    assert table in capsys.readouterr().out
    assert "| overall | 4 | 41.7 | 50.0 | 75.0 |" in table and "bon/" not in table
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = results(out)
    assert [row["id"] for row in rows] == list(PROBLEMS)
    assert rows[1] == {
        "id": "p2",
        "category": "physics",
        "candidates": [
            {"answer": "A", "correct": False, "step_scores": []},
            {"answer": "A", "correct": False, "step_scores": []},
            {"answer": "B", "correct": True, "step_scores": []},
        ],
    }
    settings = json.loads((out / "eval.json").read_text())
    assert settings["reward"] == "accuracy" and settings["prm"] is None and settings["format"] == "openrlhf"


def test_the_prm_scores_every_step_and_its_picks_are_reported(benchmark, prm_dir, tmp_path, capsys):
    steps = {"p1": [2, 1, 0], "p2": [0, 2, 1], "p3": [1, 1, 3], "p4": [3, 2, 0]}
    cands = candidates_file(tmp_path / "c.jsonl", steps)
    rows = [json.loads(line) for line in cands.read_text().splitlines()]
    rows[0]["responses"][2] = ""  # a wrong candidate without steps: no step scores, min scores it 0 (MM-PRM)
    write_jsonl(cands, rows)
    out = tmp_path / "out"
    argv = ["eval", str(benchmark), "--candidates", str(cands), "--out", str(out), "--prm", str(prm_dir)]
    argv += ["--aggregators", "min,last", "--batch-size", "2", "--system-prompt", "Answer in <answer> tags."]
    assert main(argv) == 0, capsys.readouterr().err

    split = TagSplitter()
    for row, candidates in zip(results(out), rows):
        for result, text in zip(row["candidates"], candidates["responses"]):
            assert len(result["step_scores"]) == len(split(text))  # the <step>s and the answer
            assert all(0 < s < 1 for s in result["step_scores"])
    assert results(out)[0]["candidates"][2]["step_scores"] == []

    report = json.loads((out / "report.json").read_text())
    assert list(report["overall"]) == ["pass@1", "maj@N", "pass@N", "bon/min", "bon/last"]
    assert all(0 <= report["overall"][key] <= 1 for key in ("bon/min", "bon/last"))
    assert report["overall"]["pass@1"] == pytest.approx(EXPECTED["overall"]["pass@1"])  # the PRM changes no baseline

    def min_pick_correct(row):
        candidates = row["candidates"]
        return max(candidates, key=lambda c: min(c["step_scores"], default=0))["correct"]  # the first of ties

    expected = sum(min_pick_correct(row) for row in results(out)) / len(PROBLEMS)
    assert report["overall"]["bon/min"] == pytest.approx(expected, abs=1e-12)
    assert "bon/min | bon/last |" in (out / "report.md").read_text()


COUNTING_REWARD = '''
import pathlib

LOG = pathlib.Path(__file__).with_name("judged.txt")


def factory():
    """Exact match of the <answer> with the gold; logs the id of every sample it judges."""

    def reward(samples):
        with LOG.open("a") as log:
            log.writelines(sample.metadata["id"] + "\\n" for sample in samples)
        return [float(s.response.split("<answer>")[-1].split("</answer>")[0] == s.label) for s in samples]

    return reward
'''


def test_a_killed_run_resumes_with_the_unfinished_problems_only(benchmark, tmp_path, capsys, caplog):
    (tmp_path / "counting.py").write_text(COUNTING_REWARD)
    judged = tmp_path / "judged.txt"
    cands = candidates_file(tmp_path / "c.jsonl")

    def run(out, reward=f"{tmp_path / 'counting.py'}:factory"):
        return main(["eval", str(benchmark), "--candidates", str(cands), "--out", str(out), "--reward", reward])

    assert run(tmp_path / "full") == 0
    assert judged.read_text().split() == [pid for pid in PROBLEMS for _ in range(3)]
    full_report = json.loads((tmp_path / "full" / "report.json").read_text())
    assert full_report["overall"] == pytest.approx(EXPECTED["overall"], abs=1e-12)

    # Killed while writing p3: p1 and p2 finished, p3's line cut short.
    lines = (tmp_path / "full" / "results.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "resumed").mkdir()
    (tmp_path / "resumed" / "results.jsonl").write_text(lines[0] + lines[1] + lines[2][:25])
    judged.unlink()
    with caplog.at_level(logging.WARNING):
        assert run(tmp_path / "resumed") == 0, capsys.readouterr().err
    assert "line 3: dropping a truncated last line" in caplog.text
    assert judged.read_text().split() == ["p3"] * 3 + ["p4"] * 3
    assert [row["id"] for row in results(tmp_path / "resumed")] == list(PROBLEMS)
    assert json.loads((tmp_path / "resumed" / "report.json").read_text()) == full_report

    judged.unlink()
    assert run(tmp_path / "resumed") == 0  # all done: only the report is written again
    assert not judged.exists()
    capsys.readouterr()
    assert run(tmp_path / "resumed", reward="accuracy") == 2
    err = capsys.readouterr().err
    assert err.startswith("mm-eureka: error: ") and "holds an evaluation with other settings (reward: " in err
    assert "Use another --out, or delete" in err


def test_results_of_another_benchmark_are_refused(benchmark, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    write_jsonl(out / "results.jsonl", [{"id": "q7", "category": None, "candidates": []}])
    argv = ["eval", str(benchmark), "--candidates", str(candidates_file(tmp_path / "c.jsonl")), "--out", str(out)]
    assert main(argv) == 2
    assert "line 1: no 'candidates' list" in capsys.readouterr().err
    row = {"id": "q7", "category": None, "candidates": [{"answer": "1", "correct": True, "step_scores": []}]}
    write_jsonl(out / "results.jsonl", [row])
    assert main(argv) == 2
    assert "1 problem id(s) not in the benchmark" in capsys.readouterr().err


def edit_candidates(rows, path):
    """Candidate-file lines after an edit: drop p4; an unknown id; a bad JSON line; no responses."""
    return {
        "missing": lambda: write_jsonl(path, rows[:3]),
        "unknown": lambda: write_jsonl(path, [*rows, {"id": "p9", "responses": ["x"]}]),
        "bad-json": lambda: path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]) + "{oops\n"),
        "no-responses": lambda: write_jsonl(path, [*rows[:3], {"id": "p4", "responses": []}]),
        "not-a-string": lambda: write_jsonl(path, [*rows[:3], {"id": "p4", "responses": ["a", 3]}]),
        "duplicate": lambda: write_jsonl(path, [*rows, rows[0]]),
    }


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no candidates for 1 benchmark problem(s): p4. Every problem"),
        ("unknown", "1 id(s) not in the benchmark"),
        ("bad-json", "c.jsonl, line 3: not valid JSON"),
        ("no-responses", "c.jsonl, line 4: 'responses' must be a non-empty list of strings, got an empty list"),
        ("not-a-string", "c.jsonl, line 4: response 1 is a int, not a string"),
        ("duplicate", "c.jsonl, line 5: id p1 again (first on line 1)"),
    ],
)
def test_bad_candidates_are_refused_naming_the_line_or_the_ids(case, message, benchmark, tmp_path, capsys):
    cands = candidates_file(tmp_path / "c.jsonl")
    edit_candidates([json.loads(line) for line in cands.read_text().splitlines()], cands)[case]()
    out = tmp_path / "out"
    assert main(["eval", str(benchmark), "--candidates", str(cands), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mm-eureka: error: ") and message in err
    if case == "unknown":
        assert "p9 (line 5)" in err
    assert not out.exists()  # nothing starts before the inputs are checked


def test_a_bad_benchmark_row_is_an_error_not_a_skipped_problem(benchmark, tmp_path, capsys):
    rows = [json.loads(line) for line in benchmark.read_text().splitlines()]
    del rows[1]["label"]
    write_jsonl(benchmark, rows)
    cands = candidates_file(tmp_path / "c.jsonl")
    assert main(["eval", str(benchmark), "--candidates", str(cands), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{benchmark}: 1 bad row(s)" in err and "row 2: missing answer" in err
