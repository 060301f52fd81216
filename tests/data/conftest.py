"""Small datasets made with PIL in every format, and a corpus of bad rows.

The good dataset is three prompts (one image, two images with placeholders in the text, no image)
written as MM-Eureka jsonl, MMK12 parquet (HF ``Image`` feature, a list of ``{bytes, path}``
structs, plain bytes) and OpenRLHF rows, each with a different kind of image reference.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

SYSTEM = "You are a careful tutor."


def png_bytes(image: Image.Image) -> bytes:
    """``image`` encoded as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def shape(kind: str, size: tuple[int, int], color: str) -> Image.Image:
    """A ``kind`` ("rectangle", "ellipse", "triangle") of ``color`` on white, ``size`` = (width, height)."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    w, h = size
    if kind == "triangle":
        draw.polygon([(0, h - 1), (w // 2, 0), (w - 1, h - 1)], fill=color)
    else:
        getattr(draw, kind)([w // 8, h // 8, w - 1 - w // 8, h - 1 - h // 8], fill=color)
    return image


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as JSON lines."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(name="write_jsonl")
def write_jsonl_fixture():
    """:func:`write_jsonl`, for test modules (conftest is not importable in importlib mode)."""
    return write_jsonl


@dataclass
class GoodData:
    """The good dataset in every format, and what reading it must give."""

    folder: Path
    system: str  # the system prompt inside the mmk12 and openrlhf rows
    images: dict[str, Image.Image]  # name -> the image, as drawn
    mmk12: Path
    parquet_hf: Path  # HF datasets `image` column (Image feature), one image per row
    parquet_structs: Path  # `images` column: list of {bytes, path} structs, written by pyarrow
    parquet_bytes: Path  # `image` column: plain bytes
    openrlhf: Path
    # Per row: (messages without a system message, image names, answer, metadata)
    expected: list[tuple[list[dict], list[str], str, dict]]


def user(*items: str | None) -> list[dict]:
    """User messages with text items, and an image placeholder for each ``None``."""
    return [
        {
            "role": "user",
            "content": [{"type": "image"} if i is None else {"type": "text", "text": i} for i in items],
        }
    ]


@pytest.fixture
def good_data(tmp_path: Path) -> GoodData:
    """Three prompts in every format, in ``tmp_path/src``, images in ``tmp_path/src/img``."""
    folder = tmp_path / "src"
    (folder / "img").mkdir(parents=True)
    images = {
        "rect": shape("rectangle", (64, 48), "red"),
        "circle": shape("ellipse", (30, 30), "blue"),
        "triangle": shape("triangle", (300, 20), "green"),
    }
    for name, image in images.items():
        image.save(folder / "img" / f"{name}.png")
    question_1 = "What color is the rectangle?"
    expected = [
        (user(None, question_1), ["rect"], "red", {"id": "q1", "subject": "art"}),
        (user("Compare", None, "and", None, "Which is wider?"), ["circle", "triangle"], "the second", {"id": "q2"}),
        (user("What is $1+1$?"), [], "2", {"id": "q3", "subject": "math"}),
    ]
    rect_path = (folder / "img" / "rect.png").as_posix()
    mmk12_rows = [
        {
            "id": "q1",
            "message": json.dumps(
                [
                    {"role": "system", "content": SYSTEM},
                    {
                        "role": "user",
                        "content": [
                            {"type": "image", "image": f"file://{rect_path}"},
                            {"type": "text", "text": question_1},
                        ],
                    },
                ]
            ),
            "answer": "red",
            "subject": "art",
        },
        {
            "id": "q2",
            "message": json.dumps(
                [
                    {"role": "system", "content": SYSTEM},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Compare"},
                            {"type": "image", "image": "img/circle.png"},
                            {"type": "text", "text": "and"},
                            {"type": "image", "image": str(folder / "img" / "triangle.png")},
                            {"type": "text", "text": "Which is wider?"},
                        ],
                    },
                ]
            ),
            "answer": "the second",
        },
        {
            "id": "q3",
            "message": json.dumps(
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is $1+1$?"}]
            ),
            "answer": "2",
            "subject": "math",
        },
    ]
    questions = [question_1, "Compare <image> and <image> Which is wider?", "What is $1+1$?"]
    raw = {name: png_bytes(image) for name, image in images.items()}
    parquet = _write_parquets(folder, expected, questions, raw)
    openrlhf_rows = [
        {
            "prompt": f"<image>{question_1}",
            "images": "data:image/png;base64," + base64.b64encode(raw["rect"]).decode(),
            "label": "red",
            "metadata": {"id": "q1", "subject": "art"},
        },
        {
            "prompt": [{"role": "system", "content": SYSTEM}, *user("Compare", None, "and", None, "Which is wider?")],
            "images": ["img/circle.png", base64.b64encode(raw["triangle"]).decode()],
            "label": "the second",
            "metadata": json.dumps({"id": "q2"}),
        },
        {
            "prompt": [{"role": "user", "content": "What is $1+1$?"}],
            "images": [],
            "label": "2",
            "metadata": {"id": "q3"},
            "subject": "math",
        },
    ]
    return GoodData(
        folder=folder,
        system=SYSTEM,
        images=images,
        mmk12=write_jsonl(folder / "mmk12.jsonl", mmk12_rows),
        openrlhf=write_jsonl(folder / "openrlhf.jsonl", openrlhf_rows),
        expected=expected,
        **parquet,
    )


def _write_parquets(folder: Path, expected: list, questions: list[str], raw: dict[str, bytes]) -> dict[str, Path]:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {
        "id": [meta["id"] for *_, meta in expected],
        "question": questions,
        "answer": [answer for _, _, answer, _ in expected],
        "subject": [meta.get("subject") for *_, meta in expected],
    }
    image_lists = [[raw[name] for name in names] for _, names, _, _ in expected]
    # The hub layout holds one image per row: the HF and bytes files hold rows 1 and 3.
    single = {k: [v[0], v[2]] for k, v in columns.items()}
    paths = {
        "parquet_hf": folder / "mmk12-hf.parquet",
        "parquet_structs": folder / "mmk12-structs.parquet",
        "parquet_bytes": folder / "mmk12-bytes.parquet",
    }
    features = datasets.Features(
        id=datasets.Value("string"),
        question=datasets.Value("string"),
        answer=datasets.Value("string"),
        subject=datasets.Value("string"),
        image=datasets.Image(),
    )
    hf_images = [{"bytes": raw["rect"], "path": "rect.png"}, None]
    datasets.Dataset.from_dict({**single, "image": hf_images}, features=features).to_parquet(paths["parquet_hf"])
    structs = [[{"bytes": b, "path": None} for b in images] for images in image_lists]
    pq.write_table(pa.table({**columns, "images": structs}), paths["parquet_structs"])
    pq.write_table(pa.table({**single, "image": pa.array([raw["rect"], None], pa.binary())}), paths["parquet_bytes"])
    return paths


@pytest.fixture(scope="session")
def bomb_png() -> bytes:
    """A 20000x20000 1-bit PNG: 48 kB on disk, 400 M pixels (1.2 GB as RGB) if decoded."""
    return png_bytes(Image.new("1", (20000, 20000)))


@pytest.fixture(scope="session")
def big_png() -> bytes:
    """A 9000x8000 1-bit PNG: under PIL's limit, over the default ``max_image_pixels``."""
    return png_bytes(Image.new("1", (9000, 8000)))


def truncated_png() -> bytes:
    """The first half of a noisy PNG."""
    data = png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))
    return data[: len(data) // 2]


@dataclass
class BadCorpus:
    """A file per format with bad rows, and the exact report lines each must give."""

    mmk12: Path
    parquet: Path
    openrlhf: Path
    expected: dict[str, list[str]]  # file stem -> ["row N: reason", ...]
    ids: dict[str, list[str | None]]  # file stem -> the bad rows' ids


@pytest.fixture
def bad_corpus(tmp_path: Path, bomb_png: bytes, big_png: bytes) -> BadCorpus:
    """Every bad-row reason, in each format where it can occur."""
    img = tmp_path / "img"
    img.mkdir()
    ok = img / "ok.png"
    shape("rectangle", (40, 40), "red").save(ok)
    (img / "bomb.png").write_bytes(bomb_png)
    (img / "big.png").write_bytes(big_png)
    (img / "truncated.png").write_bytes(truncated_png())
    (img / "text.png").write_text("this is not an image\n")
    shape("rectangle", (1000, 4), "red").save(img / "thin.png")
    missing = img / "missing.png"

    def message(*refs, text="Which shape?", system=True):
        content = [{"type": "image", **({} if r is ... else {"image": r})} for r in refs]
        content += [{"type": "text", "text": text}] if text is not None else []
        head = [{"role": "system", "content": SYSTEM}] if system else []
        return json.dumps([*head, {"role": "user", "content": content}])

    mmk12 = [
        {"id": "ok", "message": message(f"file://{ok}"), "answer": "A"},
        {"id": "m-missing", "message": message(f"file://{missing}"), "answer": "A"},
        {"id": "m-text", "message": message("img/text.png"), "answer": "A"},
        {"id": "m-trunc", "message": message("img/truncated.png"), "answer": "A"},
        {"id": "m-bomb", "message": message("img/bomb.png"), "answer": "A"},
        {"id": "m-big", "message": message("img/big.png"), "answer": "A"},
        {"id": "m-json", "message": "{not json", "answer": "A"},
        {"id": "m-dict", "message": json.dumps({"role": "user", "content": "hi"}), "answer": "A"},
        {"id": "m-role", "message": json.dumps([{"role": "bot", "content": "hi"}]), "answer": "A"},
        {"id": "m-count", "message": message(str(ok), ...), "answer": "A"},
        {"id": "m-noanswer", "message": message(str(ok))},
        {"id": "m-emptyanswer", "message": message(str(ok)), "answer": "  "},
        {"id": "m-notext", "message": message(str(ok), text=None), "answer": "A"},
        {"id": "m-reftype", "message": message(42), "answer": "A"},
        {"id": "m-thin", "message": message("img/thin.png"), "answer": "A"},
        {"id": "m-two", "message": message(str(ok), "img/text.png", str(missing)), "answer": "A"},
        {"id": "m-both", "message": message(text=" ", system=False), "answer": None},
        {"id": "m-nomessage", "answer": "A"},
    ]
    corrupt = "truncated or corrupt image data (image file is truncated)"
    bomb = (
        "image is over PIL's decompression-bomb limit (Image size (400000000 pixels) exceeds limit of "
        "178956970 pixels, could be decompression bomb DOS attack.)"
    )
    big = "image is 9000x8000 = 72000000 pixels, over the max_image_pixels limit of 67108864"
    not_image = "not an image, or an unsupported image format"
    expected_mmk12 = [
        f"row 2: image 1: image file not found: {missing}",
        f"row 3: image 1: {not_image}",
        f"row 4: image 1: {corrupt}",
        f"row 5: image 1: {bomb}",
        f"row 6: image 1: {big}",
        "row 7: `message` is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        "row 8: `message` is not a chat message list (got dict)",
        "row 9: `message` is not a chat message list (message 1 has role 'bot', not one of system, user, assistant)",
        "row 10: 2 image placeholder(s) but 1 image(s)",
        "row 11: missing answer",
        "row 12: empty answer",
        "row 13: empty question (no text)",
        "row 14: image 1: unsupported image reference of type int",
        "row 15: image 1: image is 1000x4: absolute aspect ratio must be smaller than 200, got 250.0 "
        "(Qwen2-VL's smart_resize)",
        f"row 16: image 2: {not_image}; image 3: image file not found: {missing}",
        "row 17: empty question (no text); missing answer",
        "row 18: missing `message`",
    ]
    ids_mmk12 = [row["id"] for row in mmk12[1:]]

    raw_ok = png_bytes(shape("rectangle", (40, 40), "red"))
    parquet_rows = [
        ("ok", "Which shape?", "A", [raw_ok]),
        ("p-text", "Which shape?", "A", [b"this is not an image"]),
        ("p-trunc", "Which shape?", "A", [truncated_png()]),
        ("p-bomb", "Which shape?", "A", [bomb_png]),
        ("p-null", "Which shape?", "A", [None]),
        ("p-count", "<image> and <image>?", "A", [raw_ok]),
        ("p-noquestion", None, "A", [raw_ok]),
        ("p-empty", "<image>", "", [raw_ok]),
    ]
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "bad.parquet"
    structs = [[{"bytes": b, "path": None} for b in images] for *_, images in parquet_rows]
    pq.write_table(
        pa.table(
            {
                "id": [r[0] for r in parquet_rows],
                "question": [r[1] for r in parquet_rows],
                "answer": [r[2] for r in parquet_rows],
                "images": structs,
            }
        ),
        parquet,
    )
    expected_parquet = [
        f"row 2: image 1: {not_image}",
        f"row 3: image 1: {corrupt}",
        f"row 4: image 1: {bomb}",
        "row 5: image 1: image reference is empty (null)",
        "row 6: 2 image placeholder(s) but 1 image(s)",
        "row 7: missing `question`",
        "row 8: empty question (no text); empty answer",
    ]

    openrlhf = [
        {"prompt": "<image>Which shape?", "images": [str(ok)], "label": "A", "metadata": {"id": "ok"}},
        {"prompt": "<image>Which shape?", "images": "data:image/png,abc", "label": "A", "metadata": {"id": "o-uri"}},
        {"prompt": "<image>Which shape?", "images": ["!!!!" * 10], "label": "A", "id": "o-b64"},
        {"prompt": "<image>Which shape?", "images": ["http://example.com/x.png"], "label": "A", "id": "o-url"},
        {"prompt": "Which shape?", "images": [str(ok)], "label": "A", "id": "o-count"},
        {"prompt": "<image>Which shape?", "images": [str(ok)], "label": "A", "metadata": "[1, 2]"},
        {"prompt": {"role": "user"}, "images": [], "label": "A", "id": "o-prompt"},
        {"images": [], "label": "A", "id": "o-noprompt"},
        {"prompt": [{"role": "user", "content": [{"type": "video"}]}], "label": "A", "id": "o-item"},
        {"prompt": "<image>Which shape?", "images": [str(ok)], "label": 7, "id": "o-number"},
        {"prompt": "<image>Which shape?", "images": ["data:image/png;base64,abc"], "label": "A", "id": "o-pad"},
    ]
    expected_openrlhf = [
        "row 2: image 1: data URI is not base64-encoded",
        "row 3: image 1: image file not found: " + str(tmp_path / ("!!!!" * 10)),
        "row 4: image 1: remote image URLs are not supported, download the image first: http://example.com/x.png",
        "row 5: 0 image placeholder(s) but 1 image(s)",
        "row 6: `metadata` is not a JSON object",
        "row 7: `prompt` is not a chat message list (got dict)",
        "row 8: missing `prompt`",
        "row 9: `prompt` is not a chat message list (message 1 content item 1 is not a text or image item)",
        "row 11: image 1: invalid base64 image data (Incorrect padding)",
    ]
    return BadCorpus(
        mmk12=write_jsonl(tmp_path / "bad-mmk12.jsonl", mmk12),
        parquet=parquet,
        openrlhf=write_jsonl(tmp_path / "bad-openrlhf.jsonl", openrlhf),
        expected={"bad-mmk12": expected_mmk12, "bad": expected_parquet, "bad-openrlhf": expected_openrlhf},
        ids={
            "bad-mmk12": ids_mmk12,
            "bad": [r[0] for r in parquet_rows[1:]],
            "bad-openrlhf": ["o-uri", "o-b64", "o-url", "o-count", None, "o-prompt", "o-noprompt", "o-item", "o-pad"],
        },
    )
