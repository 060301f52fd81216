"""The data formats: good rows in every layout, system prompts, mixed-type columns, and every bad-row reason."""

from __future__ import annotations

import pytest

from mm_eureka_plugin.data import (
    SYSTEM_PROMPTS,
    BadRow,
    DataError,
    MMK12Jsonl,
    MMK12Parquet,
    OpenRLHFRows,
    PromptRecord,
    check_file,
    load_image,
)

SEVEN_B = [{"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPTS["mm-eureka-7b"]}]}]


def system(text: str) -> list[dict]:
    return [{"role": "system", "content": [{"type": "text", "text": text}]}]


def assert_images(record: PromptRecord, names: list[str], drawn: dict) -> None:
    """The record's image references load to exactly the drawn images."""
    assert len(record.images) == len(names)
    for ref, name in zip(record.images, names, strict=True):
        image = load_image(ref)
        assert image.size == drawn[name].size
        assert image.tobytes() == drawn[name].tobytes()


def test_mmk12_keeps_the_data_system_prompt_and_reads_every_image_reference(good_data):
    records = list(MMK12Jsonl().read(good_data.mmk12))

    assert [r.row for r in records] == [1, 2, 3]
    for record, (messages, names, answer, metadata) in zip(records, good_data.expected, strict=True):
        assert record.messages == system(good_data.system) + messages
        assert record.answer == answer
        assert record.metadata == metadata
        assert_images(record, names, good_data.images)
    # file:// URL, relative path (against the data file's folder), absolute path: all absolute paths now
    assert records[0].images == [str(good_data.folder / "img" / "rect.png")]
    assert records[1].images == [str(good_data.folder / "img" / n) for n in ("circle.png", "triangle.png")]


@pytest.mark.parametrize(
    ("fmt", "file", "rows"),
    [
        (MMK12Jsonl(system_prompt="mm-eureka-7b"), "mmk12", [0, 1, 2]),
        (MMK12Parquet(), "parquet_hf", [0, 2]),
        (MMK12Parquet(), "parquet_structs", [0, 1, 2]),
        (MMK12Parquet(), "parquet_bytes", [0, 2]),
        (OpenRLHFRows(system_prompt="mm-eureka-7b"), "openrlhf", [0, 1, 2]),
    ],
)
def test_every_format_reads_the_same_prompts(good_data, fmt, file, rows):
    records = list(fmt.read(getattr(good_data, file)))

    assert all(isinstance(r, PromptRecord) for r in records)
    assert len(records) == len(rows)
    for record, i in zip(records, rows, strict=True):
        messages, names, answer, metadata = good_data.expected[i]
        assert record.messages == SEVEN_B + messages
        assert record.answer == answer
        assert record.metadata == metadata
        assert_images(record, names, good_data.images)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("none", []),
        ("mm-eureka-32b", system(SYSTEM_PROMPTS["mm-eureka-32b"])),
        ("Think step by step.", system("Think step by step.")),
    ],
)
def test_system_prompt_keeps_removes_or_replaces_the_system_message(good_data, value, expected):
    expected = system(good_data.system) if expected is None else expected
    first = next(iter(MMK12Jsonl(system_prompt=value).read(good_data.mmk12)))
    parquet = next(iter(MMK12Parquet(system_prompt=value or "none").read(good_data.parquet_structs)))

    assert first.messages == expected + good_data.expected[0][0]
    assert parquet.messages[:-1] == (expected if value else [])  # parquet data has no system prompt


def test_system_prompt_is_prepended_where_the_data_has_none(good_data):
    third = list(OpenRLHFRows(system_prompt="Be brief.").read(good_data.openrlhf))[2]

    assert third.messages == system("Be brief.") + good_data.expected[2][0]


def test_empty_system_prompt_is_refused():
    with pytest.raises(ValueError, match="use 'none'"):
        MMK12Jsonl(system_prompt=" ")


def test_mixed_type_columns_are_read_and_answers_keep_their_text(tmp_path, write_jsonl):
    rows = [
        {"id": 1, "prompt": "Say 3.", "label": "3", "metadata": {"k": 1}},
        {"id": "b", "prompt": [{"role": "user", "content": "Say x."}], "label": "x", "metadata": '{"k": 2}'},
        {"id": 2.5, "prompt": "Say 3.", "label": 3, "extra": [1, "a"]},
        {"prompt": "Say true.", "label": "true", "images": None},
    ]
    records = list(OpenRLHFRows().read(write_jsonl(tmp_path / "mixed.jsonl", rows)))

    assert [r.answer for r in records] == ["3", "x", "3", "true"]
    assert [r.metadata for r in records] == [
        {"id": 1, "k": 1},
        {"id": "b", "k": 2},
        {"id": 2.5, "extra": [1, "a"]},
        {},
    ]
    assert records[1].messages == [{"role": "user", "content": [{"type": "text", "text": "Say x."}]}]


def test_a_file_datasets_cannot_read_is_an_error_naming_it(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a", "label": "1"}\n{"prompt": [1,\n')

    with pytest.raises(DataError, match=r"broken\.jsonl: line 2 is not valid JSON \(.*\)\. Every line must be"):
        list(OpenRLHFRows().read(broken))
    broken.write_text('{"prompt": "a", "label": "1"}\n["prompt", "b"]\n')
    with pytest.raises(DataError, match=r"broken\.jsonl: line 2 is a JSON list, not an object"):
        list(OpenRLHFRows().read(broken))
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DataError, match=r"truncated\.parquet: cannot read it as Parquet"):
        list(MMK12Parquet().read(truncated))
    with pytest.raises(DataError, match=r"nowhere\.parquet: no such file"):
        list(MMK12Parquet().read(tmp_path / "nowhere.parquet"))


def test_reading_writes_nothing_next_to_the_data(good_data):
    before = sorted(good_data.folder.rglob("*"))
    for fmt, path in [(MMK12Jsonl(), good_data.mmk12), (MMK12Parquet(), good_data.parquet_hf)]:
        list(fmt.read(path))

    assert sorted(good_data.folder.rglob("*")) == before


@pytest.mark.parametrize(
    ("fmt", "file"), [(MMK12Jsonl(), "mmk12"), (MMK12Parquet(), "parquet"), (OpenRLHFRows(), "openrlhf")]
)
def test_every_bad_row_is_reported_with_its_reason(bad_corpus, fmt, file):
    path = getattr(bad_corpus, file)
    report = check_file(path, fmt)

    assert [str(bad) for bad in report.bad] == bad_corpus.expected[path.stem]
    assert [bad.id for bad in report.bad] == bad_corpus.ids[path.stem]
    assert all(isinstance(bad, BadRow) for bad in report.bad)
    assert report.total == len(report.bad) + (2 if file == "openrlhf" else 1)


def test_a_number_label_is_a_good_answer_and_image_problems_wait_for_the_check(bad_corpus):
    records = [r for r in OpenRLHFRows().read(bad_corpus.openrlhf) if isinstance(r, PromptRecord)]

    # rows 2-4 and 11 are read: their images are loaded (and refused) by check_file / convert_file
    assert {r.row: r.answer for r in records} == {1: "A", 2: "A", 3: "A", 4: "A", 10: "7", 11: "A"}
