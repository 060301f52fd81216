"""Step splitters: exact step texts and offsets into the original solution."""

from __future__ import annotations

import time

import pytest

from mm_eureka_plugin import registry
from mm_eureka_plugin.prm.steps import STEP_MARKER, BlankLineSplitter, Step, StepKSplitter, TagSplitter

SPLITTERS = [TagSplitter(), TagSplitter(include_answer=False), BlankLineSplitter(), StepKSplitter()]
SPLITTER_IDS = ["tags", "tags-no-answer", "blank_line", "step_k"]


def texts(solution: str, steps: list[Step]) -> list[str]:
    """The step texts, after checking every step's offsets against the solution."""
    for step in steps:
        assert solution[step.start : step.end] == step.text
        assert step.text and step.text == step.text.strip()
    return [step.text for step in steps]


# ----- tags


def test_tags_gives_each_step_then_the_answer_with_exact_offsets():
    solution = "<step> Area = 3*4 </step>\n<step>\n= 12\n</step>\n<answer> 12 </answer>"
    assert TagSplitter()(solution) == [Step("Area = 3*4", 7, 17), Step("= 12", 33, 37), Step("12", 55, 57)]
    assert texts(solution, TagSplitter()(solution)) == ["Area = 3*4", "= 12", "12"]


def test_tags_without_answer():
    solution = "<step>a</step><step>b</step><answer>5</answer>"
    assert texts(solution, TagSplitter(include_answer=False)(solution)) == ["a", "b"]


def test_tags_multi_line_step_keeps_inner_newlines():
    solution = "<step>\nline one\n\nline two\n</step><answer>x</answer>"
    assert texts(solution, TagSplitter()(solution)) == ["line one\n\nline two", "x"]


def test_tags_takes_the_last_answer_only():
    solution = "<step>a</step><answer>4</answer> no wait <answer>5</answer>"
    assert texts(solution, TagSplitter()(solution)) == ["a", "5"]


@pytest.mark.parametrize(
    ("solution", "expected"),
    [
        ("<step>a</step><step>b", ["a", "b"]),  # unclosed last step runs to the end
        ("<step>a</step><step>b <answer>5</answer>", ["a", "b", "5"]),  # ... or to the answer
        ("<step>a<step>b</step></step>", ["a", "b"]),  # a nested <step> closes the open one
        ("</step>a</step><step>b</step>", ["b"]),  # stray closing tags are ignored
        ("<step></step><step>  </step><step>c</step>", ["c"]),  # empty steps are dropped
        ("<step>a</step><answer>5", ["a", "5"]),  # unclosed answer runs to the end
        ("<step>a</step><answer></answer>", ["a"]),  # empty answer is no step
        ("<answer>5</answer><step>a</step>", ["a", "5"]),  # the answer always comes last
        ("<STEP>a</STEP>", ["<STEP>a</STEP>"]),  # tags are lower case: no steps, whole solution
        ("  plain text, no tags \n", ["plain text, no tags"]),
        ("<answer>7</answer>", ["7"]),
    ],
)
def test_tags_odd_inputs(solution, expected):
    assert texts(solution, TagSplitter()(solution)) == expected


def test_tags_answer_only_without_include_answer_falls_back_to_the_whole_solution():
    solution = " <answer>7</answer> "
    assert TagSplitter(include_answer=False)(solution) == [Step("<answer>7</answer>", 1, 19)]


# ----- blank_line


def test_blank_line_paragraphs_with_exact_offsets():
    solution = "  First, x = 2.\nSo 2x = 4.\n\n \t \nThen y = 1.\n\n\n\nAnswer: 5  "
    steps = BlankLineSplitter()(solution)
    assert steps == [
        Step("First, x = 2.\nSo 2x = 4.", 2, 26),
        Step("Then y = 1.", 32, 43),
        Step("Answer: 5", 47, 56),
    ]
    assert texts(solution, steps) == ["First, x = 2.\nSo 2x = 4.", "Then y = 1.", "Answer: 5"]


def test_blank_line_windows_line_ends_and_leading_blank_lines():
    solution = "\r\n\r\na\r\n\r\nb\r\n"
    assert texts(solution, BlankLineSplitter()(solution)) == ["a", "b"]


def test_blank_line_single_newlines_do_not_split():
    solution = "a\nb\n c"
    assert texts(solution, BlankLineSplitter()(solution)) == ["a\nb\n c"]


# ----- step_k


def test_step_k_markers_with_exact_offsets():
    solution = "Let us solve it.\nStep 1: x = 2.\nStep 2. y = 3\nso x + y = 5.\n"
    steps = StepKSplitter()(solution)
    assert steps == [Step("Step 1: x = 2.", 17, 31), Step("Step 2. y = 3\nso x + y = 5.", 32, 59)]
    texts(solution, steps)


def test_step_k_markdown_decorations_and_case():
    solution = (
        "Intro\n"
        "**Step 1:** read\n"
        "### Step 2 - draw\n"
        "  step 3) solve\n"
        "**Step 4**: check\n"
        "- **STEP 5.** done\n"
        "__Step 6__\n"
        "answer 5"
    )
    assert texts(solution, StepKSplitter()(solution)) == [
        "**Step 1:** read",
        "### Step 2 - draw",
        "step 3) solve",
        "**Step 4**: check",
        "- **STEP 5.** done",
        "__Step 6__\nanswer 5",
    ]


@pytest.mark.parametrize(
    "line",
    ["Step 1: a", "step 12. a", "**Step 3:** a", "**Step 3**: a", "### Step 4 - a", "Step 5", "**Step 6**\r", "Step7:"],
)
def test_step_marker_matches(line):
    assert STEP_MARKER.match(line)


@pytest.mark.parametrize(
    "line", ["Step 1 is to draw", "The Step 1: a", "Steps 1: a", "Step one: a", "Stepping 1: a", "Step: a"]
)
def test_step_marker_does_not_match(line):
    assert not STEP_MARKER.match(line)


def test_step_k_marker_mid_line_is_not_a_step_and_no_marker_gives_the_whole_solution():
    solution = "\n We did Step 1: and then Step 2: too.\n"
    assert StepKSplitter()(solution) == [Step("We did Step 1: and then Step 2: too.", 2, 38)]


def test_step_k_drops_empty_steps():
    solution = "Step 1:\nStep 2: b"
    assert texts(solution, StepKSplitter()(solution)) == ["Step 1:", "Step 2: b"]


# ----- every splitter


@pytest.mark.parametrize("splitter", SPLITTERS, ids=SPLITTER_IDS)
@pytest.mark.parametrize("solution", ["", " ", "\n\n \t\r\n"])
def test_empty_solution_gives_no_steps(splitter, solution):
    assert splitter(solution) == []


@pytest.mark.parametrize("splitter", SPLITTERS, ids=SPLITTER_IDS)
@pytest.mark.parametrize(
    "solution",
    [
        "<step>",
        "</step>",
        "<answer>",
        "</answer><answer>",
        "<step><answer></step></answer>",
        "Step 1:",
        "**",
        "\n\n",
        "\x00<step>\ud800</step>",
        "é <step>ü\u2028ß</step> 数学",
        "<step>a\n\nStep 1: b</step>\n\n<answer>c",
    ],
)
def test_never_raises_and_offsets_hold(splitter, solution):
    steps = splitter(solution)
    texts(solution, steps)
    if solution.strip():
        assert steps  # non-whitespace text always yields at least one step


@pytest.mark.parametrize("splitter", SPLITTERS, ids=SPLITTER_IDS)
@pytest.mark.parametrize(
    "solution",
    [
        "<step>" * 20_000,
        "Step 1:" * 15_000,
        "Step 1:\n" * 15_000,
        "\n" + " " * 100_000 + "x",
        "Step 1" + " " * 100_000 + "x",
        "Step 1" + "*" * 100_000,
        "#" * 100_000 + "x",
        "\n" * 100_000,
        "<step>x</step>" * 10_000 + "<answer>5",
    ],
    ids=lambda s: repr(s[:16]),
)
def test_long_adversarial_solutions_are_split_quickly(splitter, solution):
    began = time.perf_counter()
    steps = splitter(solution)
    # ~0.05 s on 2 cores; backtracking would take minutes on 100 KB (4.7 s on 20 KB): a loose
    # bound, so a loaded CI machine does not fail it
    assert time.perf_counter() - began < 3.0
    for step in steps[:50] + steps[-50:]:
        assert solution[step.start : step.end] == step.text


def test_registered_splitters_build_through_the_registry():
    assert registry.names("step_splitter") == ["blank_line", "step_k", "tags"]
    splitter = registry.resolve("step_splitter", "tags", include_answer=False)
    assert isinstance(splitter, TagSplitter)
    assert splitter("<step>a</step><answer>5</answer>") == [Step("a", 6, 7)]
    assert isinstance(registry.resolve("step_splitter", "step_k"), StepKSplitter)
    assert isinstance(registry.resolve("step_splitter", "blank_line"), BlankLineSplitter)


@pytest.mark.parametrize(
    ("name", "steps", "rest", "more"),
    [
        ("tags", ["a = 1", "so b = 2"], "<step>c = 3</step><answer>3</answer>", 2),
        ("blank_line", ["a = 1", "so b = 2"], "c = 3\n\nThe answer is 3.", 2),
        ("step_k", ["Step 1: a = 1", "Step 2: so b = 2"], "Step 3: c = 3, answer 3.", 1),
    ],
)
def test_join_writes_steps_that_split_back_as_the_first_steps(name, steps, rest, more):
    from mm_eureka_plugin.registry import resolve

    splitter = resolve("step_splitter", name)
    assert [s.text for s in splitter(splitter.join(steps) + rest)][: len(steps)] == steps
    assert len(splitter(splitter.join(steps) + rest)) == len(steps) + more
