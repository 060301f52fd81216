"""check_file / convert_file: OpenRLHF-native output, round trip, bad-row policies, and OpenRLHF's own reader."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from mm_eureka_plugin.checkpoints import load_processor
from mm_eureka_plugin.data import (
    LABEL_COLUMN,
    MAX_PIXELS,
    MIN_PIXELS,
    DataError,
    MMK12Jsonl,
    MMK12Parquet,
    OpenRLHFRows,
    PromptRecord,
    apply_pixel_budget,
    check_file,
    convert_file,
    decode_label,
    detect_format,
    load_image,
)

IMAGE_TOKEN = "<|vision_start|><|image_pad|><|vision_end|>"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def records(fmt, path) -> list[PromptRecord]:
    items = list(fmt.read(path))
    assert all(isinstance(item, PromptRecord) for item in items)
    return items


@pytest.mark.parametrize(
    ("fmt", "file"),
    [
        (MMK12Jsonl(), "mmk12"),
        (MMK12Parquet(), "parquet_hf"),
        (MMK12Parquet(system_prompt="none"), "parquet_structs"),
        (MMK12Parquet(), "parquet_bytes"),
        (OpenRLHFRows(), "openrlhf"),
    ],
)
def test_converted_rows_are_openrlhf_native_and_read_back_as_the_same_records(good_data, tmp_path, fmt, file):
    source = getattr(good_data, file)
    out = tmp_path / "out" / "train.jsonl"

    report = convert_file(source, fmt, out)

    originals = records(fmt, source)
    assert (report.total, report.bad, report.written, report.output) == (len(originals), [], len(originals), out)
    rows = read_jsonl(out)
    assert [list(row) for row in rows] == [["prompt", "images", "label", "metadata", LABEL_COLUMN]] * len(rows)
    for row, original in zip(rows, originals, strict=True):
        assert row["prompt"] == original.messages
        assert row["label"] == original.answer
        assert json.loads(row["metadata"]) == original.metadata
        assert decode_label(row[LABEL_COLUMN]) == (original.answer, original.metadata)
        for path, ref in zip(row["images"], original.images, strict=True):
            assert Path(path).parent == out.parent / "train.images"
            on_disk = Image.open(path)
            assert on_disk.format == "PNG" and on_disk.mode == "RGB"
            assert on_disk.width % 28 == 0 and on_disk.height % 28 == 0
            assert MIN_PIXELS <= on_disk.width * on_disk.height <= MAX_PIXELS
            assert on_disk.tobytes() == apply_pixel_budget(load_image(ref)).tobytes()
    # Round trip: the openrlhf format reads the output back as the same records.
    back = records(OpenRLHFRows(), out)
    assert [(r.messages, r.answer, r.metadata) for r in back] == [(r.messages, r.answer, r.metadata) for r in originals]
    assert [r.images for r in back] == [row["images"] for row in rows]


def test_converting_twice_gives_the_same_rows_and_stores_each_image_once(good_data, tmp_path):
    first, second = tmp_path / "a" / "x.jsonl", tmp_path / "b" / "x.jsonl"
    convert_file(good_data.mmk12, MMK12Jsonl(), first)
    convert_file(first, OpenRLHFRows(), second)

    rows = read_jsonl(first)
    again = read_jsonl(second)
    assert [{**r, "images": [Path(p).name for p in r["images"]]} for r in rows] == [
        {**r, "images": [Path(p).name for p in r["images"]]} for r in again
    ]
    assert len(list((tmp_path / "a" / "x.images").iterdir())) == 3


def test_a_repeated_image_is_stored_once(good_data, tmp_path, write_jsonl):
    twice = write_jsonl(
        tmp_path / "twice.jsonl",
        [{"prompt": f"<image>Q{i}", "images": ["src/img/rect.png"], "label": "A"} for i in range(3)],
    )
    convert_file(twice, OpenRLHFRows(), tmp_path / "out.jsonl")

    paths = {path for row in read_jsonl(tmp_path / "out.jsonl") for path in row["images"]}
    assert len(paths) == 1
    assert [p.name for p in (tmp_path / "out.images").iterdir()] == [Path(paths.pop()).name]


def test_bad_rows_stop_the_conversion_and_nothing_is_written(bad_corpus, tmp_path):
    out = tmp_path / "out" / "train.jsonl"

    with pytest.raises(DataError) as caught:
        convert_file(bad_corpus.mmk12, MMK12Jsonl(), out)

    lines = bad_corpus.expected["bad-mmk12"]
    assert str(caught.value) == (
        f"{bad_corpus.mmk12}: {len(lines)} bad row(s) of 18 (MMK12Jsonl format). Nothing was written.\n"
        + "\n".join(lines)
        + "\nFix these rows, or convert with on_bad_row='skip' to leave them out."
    )
    assert list(out.parent.iterdir()) == []


def test_skipping_bad_rows_writes_the_good_ones_and_reports_the_rest(bad_corpus, tmp_path):
    out = tmp_path / "out.jsonl"

    report = convert_file(bad_corpus.openrlhf, OpenRLHFRows(), out, on_bad_row="skip")

    assert [str(bad) for bad in report.bad] == bad_corpus.expected["bad-openrlhf"]
    assert [bad.id for bad in report.bad] == bad_corpus.ids["bad-openrlhf"]
    assert (report.total, report.written) == (11, 2)
    assert [json.loads(row["metadata"]) for row in read_jsonl(out)] == [{"id": "ok"}, {"id": "o-number"}]


def test_a_file_without_a_good_row_is_an_error_even_when_skipping(tmp_path, write_jsonl):
    rows = [{"id": f"r{i}", "prompt": f"Q{i}", "label": ""} for i in range(25)]
    path = write_jsonl(tmp_path / "empty-labels.jsonl", rows)

    with pytest.raises(DataError) as caught:
        convert_file(path, OpenRLHFRows(), tmp_path / "out.jsonl", on_bad_row="skip")

    lines = [f"row {i}: empty answer" for i in range(1, 21)]
    assert str(caught.value) == "\n".join(
        [f"{path}: 25 bad row(s) of 25 (OpenRLHFRows format). Nothing was written.", *lines, "and 5 more"]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-labels.jsonl"]


def test_on_bad_row_must_be_error_or_skip(good_data, tmp_path):
    with pytest.raises(ValueError, match="on_bad_row must be 'error' or 'skip', got 'warn'"):
        convert_file(good_data.mmk12, MMK12Jsonl(), tmp_path / "out.jsonl", on_bad_row="warn")


def test_check_file_applies_the_pixel_limits(good_data):
    assert check_file(good_data.mmk12, MMK12Jsonl()).ok
    # the circle is 30x30 = 900 pixels, the rectangle 64x48 = 3072, the triangle 300x20 = 6000
    report = check_file(good_data.mmk12, MMK12Jsonl(), max_image_pixels=3072)

    assert [str(b) for b in report.bad] == [
        "row 2: image 2: image is 300x20 = 6000 pixels, over the max_image_pixels limit of 3072"
    ]
    assert check_file(good_data.mmk12, MMK12Jsonl(), max_image_bytes=100).total == 3
    assert len(check_file(good_data.mmk12, MMK12Jsonl(), max_image_bytes=100).bad) == 2


def test_the_budget_sets_the_image_sizes(good_data, tmp_path):
    convert_file(good_data.mmk12, MMK12Jsonl(), tmp_path / "default.jsonl")
    convert_file(good_data.mmk12, MMK12Jsonl(), tmp_path / "small.jsonl", min_pixels=28 * 28, max_pixels=16 * 28 * 28)

    def sizes(name: str) -> list[tuple[int, int]]:
        return [Image.open(p).size for row in read_jsonl(tmp_path / name) for p in row["images"]]

    # rectangle 64x48, circle 30x30 (under the default minimum), triangle 300x20
    assert sizes("default.jsonl") == [(56, 56), (56, 56), (308, 28)]
    assert sizes("small.jsonl") == [(56, 56), (28, 28), (308, 28)]


def test_formats_are_named_through_the_registry_or_detected(good_data, tmp_path):
    report = convert_file(good_data.parquet_hf, "mmk12-parquet", tmp_path / "out.jsonl", system_prompt="Be brief.")

    assert report.format == "mmk12-parquet"
    assert read_jsonl(tmp_path / "out.jsonl")[0]["prompt"][0]["content"][0]["text"] == "Be brief."
    assert check_file(good_data.openrlhf).format == "openrlhf"
    assert check_file(good_data.mmk12, system_prompt="none").format == "mmk12"
    with pytest.raises(ValueError, match="unknown data_format 'mmk'. Valid names: mmk12, mmk12-parquet, openrlhf"):
        check_file(good_data.mmk12, "mmk")
    with pytest.raises(TypeError, match=r"format parameters \['system_prompt'\] need a format name"):
        check_file(good_data.mmk12, MMK12Jsonl(), system_prompt="none")


def test_detect_format_reads_the_columns(good_data, tmp_path, write_jsonl):
    assert detect_format(good_data.mmk12) == "mmk12"
    assert detect_format(good_data.openrlhf) == "openrlhf"
    for path in (good_data.parquet_hf, good_data.parquet_structs, good_data.parquet_bytes):
        assert detect_format(path) == "mmk12-parquet"
    other = write_jsonl(tmp_path / "other.jsonl", [{"text": "hi"}])
    with pytest.raises(DataError, match=r"other\.jsonl: cannot tell its data format from its columns \(text\)"):
        detect_format(other)


def test_progress_shows_rows_per_second(good_data, tmp_path, capsys):
    convert_file(good_data.mmk12, MMK12Jsonl(), tmp_path / "out.jsonl", progress=True)
    assert "Converting mmk12.jsonl" in capsys.readouterr().err
    check_file(good_data.parquet_structs, MMK12Parquet(), progress=True)
    err = capsys.readouterr().err
    assert "Checking mmk12-structs.parquet" in err and "3/3" in err and "row/s" in err
    check_file(good_data.mmk12, MMK12Jsonl())
    assert capsys.readouterr().err == ""


def test_openrlhf_prompt_dataset_gives_one_image_token_block_per_image(good_data, tmp_path, tiny_vlm_dir, monkeypatch):
    import datasets
    from openrlhf.datasets import PromptDataset
    from openrlhf.datasets.utils import blending_datasets
    from openrlhf.utils.vlm_utils import process_prompt_with_images

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    out = tmp_path / "out" / "train.jsonl"
    convert_file(good_data.mmk12, MMK12Jsonl(system_prompt="mm-eureka-7b"), out)
    processor = load_processor(tiny_vlm_dir)[0]
    pad_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    data_args = SimpleNamespace(input_key="prompt", label_key="label", image_key="images", apply_chat_template=True)
    strategy = SimpleNamespace(args=SimpleNamespace(data=data_args), print=lambda *_: None, is_rank_0=lambda: False)

    dataset = PromptDataset(blending_datasets(str(out), None, strategy), processor, strategy)

    assert len(dataset) == 3
    for i, (messages, names, answer, _) in enumerate(good_data.expected):
        _, prompt, label, images = dataset[i]
        assert label == answer
        assert prompt.count("<|image_pad|>") == prompt.count(IMAGE_TOKEN) == len(names)
        assert "Solve the question." in prompt and messages[0]["content"][-1]["text"] in prompt
        token_ids, mm_inputs, pil_images = process_prompt_with_images(processor, prompt, images)
        if not names:
            assert mm_inputs is None
            continue
        grids = mm_inputs["image_grid_thw"].tolist()
        assert grids == [[1, image.height // 14, image.width // 14] for image in pil_images]
        assert token_ids.count(pad_id) == sum(t * h * w for t, h, w in grids) // 4
        assert mm_inputs["pixel_values"].shape[0] == sum(t * h * w for t, h, w in grids)


ROW = {"question": "What is 1 + 1?", "answer": "2", "image": [], "id": "a"}


@pytest.mark.parametrize("content", [b"", b"\n  \n\n"])
def test_a_file_without_rows_is_an_error_for_check_and_convert_alike(tmp_path, content):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(content)
    for fmt in (None, "mmk12"):
        with pytest.raises(DataError, match="no rows \\(the file is empty or holds only blank lines\\)"):
            check_file(path, fmt)
        with pytest.raises(DataError, match="no rows"):
            convert_file(path, fmt, tmp_path / "out.jsonl")


def test_a_line_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(json.dumps(ROW).encode() + b"\n" + b'{"question": "caf\xe9", "answer": "2"}\n')
    for fmt in (None, "mmk12-parquet"):
        with pytest.raises(DataError, match=r"line 2 is not UTF-8 text \(byte 0xe9, byte 18 of the line\)"):
            check_file(path, fmt)


def test_a_utf8_bom_is_read_with_or_without_a_format(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(ROW).encode() + b"\n")
    assert detect_format(path) == "mmk12-parquet"
    for fmt in (None, "mmk12-parquet"):
        report = check_file(path, fmt)
        assert report.ok and report.total == 1


def test_repeated_ids_are_warned_about_with_their_rows(tmp_path, write_jsonl, caplog):
    rows = [ROW, {**ROW, "id": "b"}, ROW, {**ROW, "id": "b"}, {**ROW, "id": "c"}]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    report = check_file(path)
    assert report.ok and report.repeated_ids == {"a": [1, 3], "b": [2, 4]}
    assert "2 id(s) are on more than one row ('a': rows 1, 3; 'b': rows 2, 4)" in caplog.text


def test_an_image_path_that_is_a_directory_says_so(tmp_path, write_jsonl):
    (tmp_path / "pictures").mkdir()
    path = write_jsonl(tmp_path / "rows.jsonl", [{**ROW, "image": ["pictures"]}])
    report = check_file(path)
    assert "image path is a directory, not an image file" in str(report.bad[0])


def test_a_rollout_executors_instructions_and_source_images_are_written_with_the_rows(good_data, tmp_path):
    out = tmp_path / "tools.jsonl"
    convert_file(good_data.mmk12, MMK12Jsonl(), out, system_suffix="Crop with <crop>.", keep_source_images=True)
    plain = read_jsonl(convert_file(good_data.mmk12, MMK12Jsonl(), tmp_path / "plain.jsonl").output)
    rows = read_jsonl(out)
    for row, before in zip(rows, plain, strict=True):
        system = row["prompt"][0]
        assert system["role"] == "system" and before["prompt"][0]["role"] == "system"
        texts = [part["text"] for part in system["content"]]
        assert (
            "".join(texts) == "".join(part["text"] for part in before["prompt"][0]["content"]) + "\n\nCrop with <crop>."
        )
        assert row["prompt"][1:] == before["prompt"][1:]
        assert [Path(p).name for p in row["images"]] == [Path(p).name for p in before["images"]]  # same pixels
        sources = json.loads(row["metadata"])["source_images"]
        assert decode_label(row[LABEL_COLUMN])[1]["source_images"] == sources
        assert len(sources) == len(row["images"])
    # the triangle (300x20 as drawn) is kept at its size; the budget made it 308x28
    sizes = [
        (Image.open(source).size, Image.open(budgeted).size)
        for row in rows
        for source, budgeted in zip(json.loads(row["metadata"])["source_images"], row["images"], strict=True)
    ]
    assert ((300, 20), (308, 28)) in sizes and ((30, 30), (56, 56)) in sizes
    assert "source_images" not in json.loads(plain[0]["metadata"])


def test_instructions_make_a_system_message_where_a_prompt_has_none():
    from mm_eureka_plugin.data.prompts import add_to_system_prompt

    user = {"role": "user", "content": "hi"}
    assert add_to_system_prompt([user], "Tools.") == [
        {"role": "system", "content": [{"type": "text", "text": "Tools."}]},
        user,
    ]
    assert add_to_system_prompt([{"role": "system", "content": "Be brief."}, user], "Tools.")[0]["content"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "\n\nTools."},
    ]
