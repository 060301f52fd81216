"""MMK12's test split as MM-Eureka evaluates it: multiple-choice rows (options inline in the question,
the gold a letter) judged by the offline choice-letter rule (the default accuracy reward), or, with
``--judge``, by a judge shown each answer as the paper's ``eval/mmk12/extract_calculate.py`` extracts
it: ``math_verify`` offline, and ``openai_compatible`` against a local chat-completions endpoint."""

from __future__ import annotations

import io
import json
import random
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from mm_eureka_plugin.cli import main
from mm_eureka_plugin.eval.run import recorded_judge
from mm_eureka_plugin.rewards.answers import mmk12_eval_answer

# id, subject, question (options inline, as MMK12's test split), gold letter, a greedy response, and
# whether the letter rule finds it right. Two rows per subject, as the split has 500 of each.
ROWS = [
    (
        "m1",
        "math",
        "Which number is prime?\nA. 4\nB. 7\nC. 8\nD. 9",
        "B",
        "<think>7 has no divisor but 1 and 7.</think><answer>\\boxed{B}</answer>",
        True,
    ),
    (
        "m2",
        "math",
        "What is 2 + 2?\nA. 3\nB. 5\nC. 4\nD. 6",
        "C",
        "<think>2 + 2 = 4, which is option C.</think><answer>The answer is (C)</answer>",
        True,
    ),
    (
        "p1",
        "physics",
        "Which way does the dropped ball move?\nA. Down\nB. Up\nC. Left\nD. Right",
        "A",
        "Gravity pulls the ball towards the ground, so B is wrong. The answer is \\boxed{A}",  # no tags
        True,
    ),
    (
        "p2",
        "physics",
        "Which unit measures force?\nA. Joule\nB. Newton\nC. Watt\nD. Pascal",
        "B",
        "<think>Pressure is force per area.</think><answer>\\boxed{D}</answer>",  # a wrong letter
        False,
    ),
    (
        "c1",
        "chemistry",
        "Which is the lightest noble gas listed?\nA. Neon\nB. Oxygen\nC. Argon\nD. Iron",
        "A",
        "<think>Neon and argon are noble gases.</think><answer>A and C</answer>",  # two letters
        False,
    ),
    (
        "c2",
        "chemistry",
        "How many atoms are in one H2O molecule?\nA. 1\nB. 2\nC. 4\nD. 3",
        "D",
        "<think>Two hydrogens and one oxygen.</think><answer>D</answer>",
        True,
    ),
    (
        "b1",
        "biology",
        "Which organelle makes most of a cell's ATP?\nA. Nucleus\nB. Ribosome\nC. Mitochondrion\nD. Vacuole",
        "C",
        "<think>Respiration happens there.</think><answer>Mitochondrion</answer>",  # the option, not its letter
        False,
    ),
    (
        "b2",
        "biology",
        "How many chambers has a human heart?\nA. 2\nB. 3\nC. 5\nD. 4",
        "D",
        "<think>Two atria and two ventricles.</think><answer>$\\boxed{\\text{D}}$</answer>",
        True,
    ),
]
SUBJECTS = ["biology", "chemistry", "math", "physics"]
# Responses where the paper's extraction and the accuracy reward's part ways: the paper reads the
# first <answer> span (the reward the last), and the last \boxed{} of an untagged response (the
# reward reads every boxed letter, and two distinct ones pick nothing).
PAPER_ONLY = {
    "p2": "<think>Newton.</think><answer>B</answer> Or is it pressure? <answer>D</answer>",
    "c1": "Neon or argon: \\boxed{C}? No, neon is lighter: \\boxed{A}",
}
# What the judge is shown for each row's response (with PAPER_ONLY's in place of theirs).
EXTRACTED = {
    "m1": "\\boxed{B}",
    "m2": "The answer is (C)",
    "p1": "A",
    "p2": "B",
    "c1": "A",
    "c2": "D",
    "b1": "Mitochondrion",
    "b2": "$\\boxed{\\text{D}}$",
}


def png(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (56, 84), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(params=["parquet", "jsonl"])
def mmk12_test(request, tmp_path):
    """The rows as MMK12's test split holds them (id, subject, question, image, answer): a parquet
    file with an HF ``Image`` column, or a jsonl file whose ``image`` is a PNG beside it."""
    import datasets

    colours = ["red", "green", "blue", "yellow", "white", "black", "gray", "orange"]
    if request.param == "parquet":
        features = datasets.Features(
            id=datasets.Value("string"),
            subject=datasets.Value("string"),
            question=datasets.Value("string"),
            image=datasets.Image(),
            answer=datasets.Value("string"),
        )
        columns = {
            "id": [row[0] for row in ROWS],
            "subject": [row[1] for row in ROWS],
            "question": [row[2] for row in ROWS],
            "image": [{"bytes": png(colour), "path": None} for colour in colours],
            "answer": [row[3] for row in ROWS],
        }
        path = tmp_path / "test-00000-of-00001.parquet"
        datasets.Dataset.from_dict(columns, features=features).to_parquet(str(path))
        return path
    lines = []
    for (pid, subject, question, gold, *_), colour in zip(ROWS, colours):
        (tmp_path / f"{pid}.png").write_bytes(png(colour))
        row = {"id": pid, "subject": subject, "question": question, "image": f"{pid}.png", "answer": gold}
        lines.append(json.dumps(row) + "\n")
    path = tmp_path / "mmk12-test.jsonl"
    path.write_text("".join(lines))
    return path


def candidates(path, replace=None):
    """One greedy response per row (``replace``: other responses by id)."""
    rows = [{"id": pid, "responses": [(replace or {}).get(pid, response)]} for pid, _, _, _, response, _ in ROWS]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def results(out):
    return {row["id"]: row for row in map(json.loads, (out / "results.jsonl").read_text().splitlines())}


def subject_accuracy(right: dict[str, bool]) -> dict[str, float]:
    return {s: sum(right[row[0]] for row in ROWS if row[1] == s) / 2 for s in SUBJECTS}


def check_report(out, right: dict[str, bool]) -> None:
    """report.json and report.md hold the accuracy (pass@1 with one greedy response) overall and per subject."""
    report = json.loads((out / "report.json").read_text())
    assert report["overall"]["pass@1"] == pytest.approx(sum(right.values()) / len(ROWS), abs=1e-12)
    assert report["counts"] == {"overall": 8, **{s: 2 for s in SUBJECTS}}
    table = (out / "report.md").read_text()
    for subject, accuracy in subject_accuracy(right).items():
        assert report["by_category"][subject]["pass@1"] == pytest.approx(accuracy, abs=1e-12)
        assert f"| {subject} | 2 | {100 * accuracy:.1f} |" in table


# ---------------------------------------------------------------------------------------------
# The paper's extraction


@pytest.mark.parametrize(
    "response, answer",
    [
        ("<think>x</think><answer> \\boxed{B} </answer>", "\\boxed{B}"),
        ("<answer>B</answer> wait <answer>C</answer>", "B"),  # the first span, not the last
        ("<answer>\nline one\nline two\n</answer>", "line one\nline two"),  # across lines
        ("<answer></answer>", ""),
        ("<answer>unclosed \\boxed{C}", "C"),  # no whole span: the last \boxed{}
        ("first \\boxed{A}, then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # balanced braces
        ("\\boxed{x + \\boxed{y}}", "x + \\boxed{y}"),  # a nested \boxed is part of the outer one
        ("\\boxed{A} then \\boxed{B", "A"),  # an unclosed last one is skipped
        ("\\boxed{x \\boxed{y}", "y"),  # an unclosed outer one: the scan resumes inside it
        ("\\boxed{}", ""),
        ("\\boxed {A}", "\\boxed {A}"),  # a space after \boxed is no match: the whole response
        ("</think> The answer is D. ", "</think> The answer is D. "),  # the whole response, unchanged
    ],
)
def test_the_papers_extraction(response, answer):
    assert mmk12_eval_answer(response) == answer


def test_the_extraction_matches_the_papers_regexes_on_random_text():
    """extract_calculate.py's own code (``re`` for the answer span, the ``regex`` package's recursive
    pattern for \\boxed{}) against ours, on text built from the tokens that matter."""
    regex = pytest.importorskip("regex")

    def paper(response):  # build_zh_exam_k12_gpt4_prompt, MM-EUREKA eval/mmk12/extract_calculate.py
        match = re.search(r"<answer>(.*?)</answer>", response, re.DOTALL)
        if match:
            return match.group(1).strip()
        found = regex.findall(r"\\boxed\{((?:[^{}]+|(?P<BRACES>\{(?:[^{}]+|(?P>BRACES))*\}))*)\}", response, re.DOTALL)
        return found[-1][0].strip() if found else response

    tokens = ["\\boxed{", "\\boxed", "{", "}", "<answer>", "</answer>", "x", " ", "\n", "B"]
    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 14)))
        assert mmk12_eval_answer(text) == paper(text), text


# ---------------------------------------------------------------------------------------------
# Without --judge: the accuracy reward's choice-letter rule


def test_the_letter_rule_on_mmk12_test_rows_per_subject(mmk12_test, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["eval", str(mmk12_test), "--candidates", str(candidates(tmp_path / "c.jsonl")), "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    right = {row[0]: row[5] for row in ROWS}
    assert {pid: row["candidates"][0]["correct"] for pid, row in results(out).items()} == right
    assert {pid: row["category"] for pid, row in results(out).items()} == {row[0]: row[1] for row in ROWS}
    check_report(out, right)  # 5 of 8; math 100, the others 50
    settings = json.loads((out / "eval.json").read_text())
    assert settings["format"] == "mmk12-parquet" and settings["category_key"] == "subject"
    assert settings["reward"] == "accuracy" and "judge" not in settings

    # The reward reads the last answer span and every boxed letter, where the paper reads the first
    # span and the last \boxed{}: these responses stay wrong without a judge.
    other = tmp_path / "paper-only"
    argv = ["eval", str(mmk12_test), "--candidates", str(candidates(tmp_path / "p.jsonl", PAPER_ONLY))]
    assert main([*argv, "--out", str(other)]) == 0
    assert not any(results(other)[pid]["candidates"][0]["correct"] for pid in PAPER_ONLY)


# ---------------------------------------------------------------------------------------------
# --judge math_verify (offline)


def test_math_verify_judges_the_papers_extracted_answers(mmk12_test, tmp_path, capsys):
    out = tmp_path / "out"
    cands = candidates(tmp_path / "c.jsonl", PAPER_ONLY)
    argv = ["eval", str(mmk12_test), "--candidates", str(cands), "--out", str(out)]
    argv += ["--judge", "math_verify", "--judge-arg", "workers=1"]
    assert main(argv) == 0, capsys.readouterr().err
    right = {row[0]: row[5] or row[0] in PAPER_ONLY for row in ROWS}  # 7 of 8: only b1 names no letter
    rows = results(out)
    assert {pid: row["candidates"][0]["correct"] for pid, row in rows.items()} == right
    assert {pid: row["candidates"][0]["answer"] for pid, row in rows.items()} == {
        pid: answer.strip() for pid, answer in EXTRACTED.items()
    }
    check_report(out, right)
    settings = json.loads((out / "eval.json").read_text())
    assert settings["judge"] == {"name": "math_verify", "params": {"workers": 1}} and settings["reward"] is None


def test_a_gold_the_judge_cannot_judge_stops_the_run_before_it_starts(tmp_path, capsys):
    rows = [{"id": "q1", "subject": "math", "question": "Simplify.", "answer": "\\sqrt{"}]
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cands = tmp_path / "c.jsonl"
    cands.write_text(json.dumps({"id": "q1", "responses": ["<answer>2</answer>"]}) + "\n")
    out = tmp_path / "out"
    argv = ["eval", str(bench), "--candidates", str(cands), "--out", str(out), "--judge", "math_verify"]
    assert main([*argv, "--judge-arg", "workers=1"]) == 2
    err = capsys.readouterr().err
    assert "the judge cannot judge 1 problem(s):\nrow 1 (id q1): math-verify cannot parse the gold answer" in err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# --judge openai_compatible, against a chat-completions endpoint in this process


def normalised(answer: str) -> str:
    """What the stand-in LLM compares: the answer without \\boxed, \\text, $, "The answer is", brackets."""
    for token in ("\\boxed", "\\text", "The answer is", "$", "{", "}", "(", ")", "."):
        answer = answer.replace(token, "")
    return answer.strip()


class ChatCompletions(BaseHTTPRequestHandler):
    """An OpenAI-compatible judge: reads the reference answer and the solution from the judge's
    prompt and answers "Yes" when they are the same after :func:`normalised`; a 500 for any
    request whose reference answer is in ``down_for``."""

    down_for: set = set()
    asked: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        content = body["messages"][0]["content"]
        if content.startswith("You are given a question"):  # the paper's prompt (prompt=mmk12)
            part = {name: content.split(f"{name}:\n")[1].split("\n-----")[0] for name in ("Question", "Correct Answer")}
            gold, solution = part["Correct Answer"], content.split("Model's Answer:\n")[1].split("\n-----")[0]
            type(self).questions.append(part["Question"])
        else:
            gold = content.split("Reference answer: ")[1].split("\n")[0]
            solution = content.split("Solution:\n")[1].split("\n\nIs the final answer")[0]
        type(self).asked.append((gold, solution, body["model"]))
        if gold in type(self).down_for:
            self.send_response(500)
            self.end_headers()
            return
        verdict = "Yes" if normalised(solution) == gold else "No"
        reply = json.dumps({"choices": [{"message": {"content": verdict}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    ChatCompletions.asked, ChatCompletions.down_for, ChatCompletions.questions = [], set(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatCompletions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def judge_flags(url, model="gpt-4o"):
    return ["--judge", "openai_compatible", "--judge-arg", f"url={url}", "--judge-arg", f"model={model}"] + [
        "--judge-arg",
        "retries=0",
        "--judge-arg",
        "timeout_s=5",
    ]


def test_an_llm_judge_is_asked_about_each_extracted_answer_and_the_gold(mmk12_test, endpoint, tmp_path, capsys):
    out = tmp_path / "out"
    cands = candidates(tmp_path / "c.jsonl", PAPER_ONLY)
    argv = ["eval", str(mmk12_test), "--candidates", str(cands), "--out", str(out), *judge_flags(endpoint)]
    assert main(argv) == 0, capsys.readouterr().err
    golds = {row[0]: row[3] for row in ROWS}
    assert sorted(ChatCompletions.asked) == sorted((golds[pid], EXTRACTED[pid], "gpt-4o") for pid in golds)
    right = {pid: normalised(EXTRACTED[pid]) == golds[pid] for pid in golds}
    assert sum(right.values()) == 7
    assert {pid: row["candidates"][0]["correct"] for pid, row in results(out).items()} == right
    check_report(out, right)
    settings = json.loads((out / "eval.json").read_text())
    assert settings["judge"] == {
        "name": "openai_compatible",
        "params": {"url": endpoint, "model": "gpt-4o", "retries": 0, "timeout_s": 5},
    }


def test_the_papers_judge_prompt_shows_the_question(mmk12_test, endpoint, tmp_path, capsys):
    out = tmp_path / "out"
    cands = candidates(tmp_path / "c.jsonl", PAPER_ONLY)
    argv = ["eval", str(mmk12_test), "--candidates", str(cands), "--out", str(out), *judge_flags(endpoint)]
    assert main([*argv, "--judge-arg", "prompt=mmk12"]) == 0, capsys.readouterr().err
    golds = {row[0]: row[3] for row in ROWS}
    assert sorted(ChatCompletions.asked) == sorted((golds[pid], EXTRACTED[pid], "gpt-4o") for pid in golds)
    questions = {row[2] for row in ROWS}
    assert len(ChatCompletions.questions) == len(ROWS)
    assert all(any(q in asked for q in questions) for asked in ChatCompletions.questions)


def test_a_failing_judge_stops_the_eval_and_a_rerun_resumes(mmk12_test, endpoint, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["eval", str(mmk12_test), "--candidates", str(candidates(tmp_path / "c.jsonl")), "--out", str(out)]
    argv += judge_flags(endpoint)
    ChatCompletions.down_for = {"D"}  # c2 and b2 cannot be judged
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "mm-eureka: error: the judge is unavailable (judge " in err
    assert "/v1/chat/completions failed 1 times; last: HTTPError: 500" in err
    assert f"stopped. 6 of 8 problems are judged and kept in {out / 'results.jsonl'}: rerun the same command" in err
    assert sorted(results(out)) == sorted(pid for pid, _, _, gold, *_ in ROWS if gold != "D")
    assert not (out / "report.json").exists()  # no report from a part of the benchmark

    ChatCompletions.down_for, ChatCompletions.asked = set(), []
    assert main(argv) == 0, capsys.readouterr().err
    assert sorted(ChatCompletions.asked) == [("D", "$\\boxed{\\text{D}}$", "gpt-4o"), ("D", "D", "gpt-4o")]
    check_report(out, {row[0]: row[5] for row in ROWS})  # as the letter rule here: 5 of 8


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_judge_stops_the_eval_and_no_secret_is_recorded(mmk12_test, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    url = f"http://user:pa55word@127.0.0.1:{closed_port()}/v1?key=s3cret-in-query"
    out = tmp_path / "out"
    argv = ["eval", str(mmk12_test), "--candidates", str(candidates(tmp_path / "c.jsonl")), "--out", str(out)]
    assert main([*argv, *judge_flags(url)]) == 2
    err = capsys.readouterr().err
    assert "the judge is unavailable (judge http://127.0.0.1:" in err and "ConnectionError" in err
    assert "stopped. 0 of 8 problems are judged" in err
    recorded = (out / "eval.json").read_text()
    for secret in ("pa55word", "sk-from-the-environment", "s3cret-in-query"):
        assert secret not in err and secret not in recorded
    assert json.loads(recorded)["judge"]["params"]["url"] == url.replace("user:pa55word@", "").split("?")[0]

    assert main([*argv, *judge_flags(url, model="gpt-4o-mini")]) == 2  # another judge: refused
    err = capsys.readouterr().err
    assert "holds an evaluation with other settings (judge: " in err and "'gpt-4o-mini'" in err
    assert main(argv) == 2  # no judge (the accuracy reward) is another setting too
    assert "holds an evaluation with other settings (judge: " in capsys.readouterr().err


def test_recorded_judge_params_never_hold_a_secret():
    params = {"url": "https://me:pw@api.example.com/v1?api-key=k", "api_key": "sk-x", "token": "t", "model": "gpt-4o"}
    params["api_key_env"] = "OPENAI_API_KEY"  # the name of a variable, not a secret
    assert recorded_judge("my_judge", params) == {
        "name": "my_judge",
        "params": {
            "url": "https://api.example.com/v1",
            "api_key": "<redacted>",
            "token": "<redacted>",
            "model": "gpt-4o",
            "api_key_env": "OPENAI_API_KEY",
        },
    }


def test_judge_flags_are_checked(mmk12_test, tmp_path, capsys):
    argv = ["eval", str(mmk12_test), "--candidates", str(candidates(tmp_path / "c.jsonl")), "--out", str(tmp_path)]
    assert main([*argv, "--judge", "math_verify", "--reward", "format"]) == 2
    assert "--judge math_verify and --reward format: give one of them" in capsys.readouterr().err
    assert main([*argv, "--judge-arg", "model=gpt-4o"]) == 2
    assert "--judge-arg without --judge" in capsys.readouterr().err
    assert main([*argv, "--judge", "no_such_judge"]) == 2
    assert "no_such_judge" in capsys.readouterr().err
    assert main([*argv, "--judge", "math_verify", "--judge-arg", "workers"]) == 2
    assert "--judge-arg 'workers': expected KEY=VALUE." in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The README's command

# evaluate_mmk12.py's SYSTEM_PROMPT_32B (MM-EUREKA @ 17132c2), the Python literal as it stands there.
PAPER_SYSTEM_PROMPT = "Solve the question. The user asks a question, and you solves it. You first thinks about the reasoning process in the mind and then provides the user with the answer. The answer is in latex format and wrapped in $...$. The final answer must be wrapped using the \\\\boxed{} command. Th answer should be enclosed within <answer> </answer> tags, i.e., Since $1+1=2$, so the answer is $2$. <answer> The answer is $\\\\boxed{2}$ </answer>, which means the final answer assistant's output should start with <answer> and end with </answer>."  # noqa: E501


def test_the_readme_command_runs_the_papers_evaluation():
    import shlex
    from pathlib import Path

    from mm_eureka_plugin.cli import build_parser
    from mm_eureka_plugin.data.prompts import SYSTEM_PROMPTS

    assert SYSTEM_PROMPTS["mmk12-eval"] == PAPER_SYSTEM_PROMPT
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### MMK12 test, as the paper evaluates it\n")[1]
    command = section.split("\nmm-eureka eval ")[1].split("\n```")[0].replace("\\\n", " ")
    args = build_parser().parse_args(["eval", *shlex.split(command)])
    assert (args.benchmark, args.n, args.temperature, args.top_p, args.max_new_tokens) == (
        "FanqingM/MMK12:test",
        1,
        0.0,
        1.0,
        4096,
    )
    assert (args.system_prompt, args.category_key, args.reward) == ("mmk12-eval", "subject", "accuracy")
    assert (args.judge, args.judge_arg) == (
        "openai_compatible",
        ["url=https://api.openai.com/v1", "model=gpt-4o", "prompt=mmk12"],
    )
