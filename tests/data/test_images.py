"""Image loading (every reference kind, bounded) and the pixel budget against the real Qwen2-VL processor."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image, ImageFile
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from mm_eureka_plugin.checkpoints import load_processor
from mm_eureka_plugin.data import (
    MAX_PIXELS,
    MIN_PIXELS,
    ImageError,
    apply_pixel_budget,
    budget_size,
    load_image,
)
from mm_eureka_plugin.data.images import resolve_image_ref

IMAGE_TOKEN = "<|vision_start|><|image_pad|><|vision_end|>"


def drawn() -> Image.Image:
    image = Image.new("RGB", (37, 23), "navy")
    image.putpixel((5, 7), (250, 10, 20))
    return image


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def corrupted_png() -> bytes:
    """A noisy PNG with 30 bytes of its compressed pixel data overwritten."""
    data = bytearray(encoded(Image.effect_noise((64, 64), 50).convert("RGB")))
    start = data.index(b"IDAT") + 40
    data[start : start + 30] = b"\xff" * 30
    return bytes(data)


@pytest.fixture
def png_file(tmp_path):
    path = tmp_path / "a b.png"  # a space: file URLs quote it
    drawn().save(path)
    return path


def test_every_reference_kind_loads_the_same_pixels(png_file):
    raw = png_file.read_bytes()
    b64 = base64.b64encode(raw).decode()
    refs = [
        str(png_file),
        png_file,
        png_file.as_uri(),
        f"file://{png_file}",
        raw,
        bytearray(raw),
        b64,
        b64[:40] + "\n" + b64[40:],
        f"data:image/png;base64,{b64}",
        {"bytes": raw, "path": "ignored.png"},
        {"bytes": None, "path": str(png_file)},
        drawn(),
    ]
    for ref in refs:
        image = load_image(ref)
        assert image.mode == "RGB"
        assert image.tobytes() == drawn().tobytes(), ref


def test_relative_paths_resolve_against_the_data_folder(png_file, tmp_path):
    b64 = base64.b64encode(png_file.read_bytes()).decode()

    assert resolve_image_ref("a b.png", tmp_path) == str(png_file)
    assert resolve_image_ref("file://a%20b.png", tmp_path) == str(png_file)
    assert resolve_image_ref("sub/none.png", tmp_path) == str(tmp_path / "sub" / "none.png")
    assert resolve_image_ref(b64, tmp_path) == b64
    assert resolve_image_ref({"bytes": b"x", "path": "a.png"}, tmp_path) == b"x"
    assert resolve_image_ref({"bytes": None, "path": "a b.png"}, tmp_path) == str(png_file)


def test_transparency_is_composited_on_white_and_other_modes_become_rgb():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 9, 9, 9])
    palette.info["transparency"] = 0

    loaded = load_image(encoded(rgba))
    assert loaded.getpixel((0, 0)) == (255, 0, 0)
    assert loaded.getpixel((1, 1)) == (255, 255, 255)
    assert load_image(encoded(palette)).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(encoded(Image.new("L", (3, 3), 200))).getpixel((0, 0)) == (200, 200, 200)
    assert load_image(Image.new("CMYK", (3, 3))).mode == "RGB"


def from_values(mode: str, values: list[list[float]], dtype: str) -> Image.Image:
    array = np.array(values, dtype=dtype)
    return Image.frombytes(mode, (array.shape[1], array.shape[0]), array.tobytes())


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        # 16-bit grayscale, each byte order: 0..65535 -> 0..255 (PIL's convert clips to 0/255)
        (from_values("I;16", [[0, 1000, 32768, 65535]], "<u2"), [0, 4, 128, 255]),
        (from_values("I;16L", [[0, 1000, 32768, 65535]], "<u2"), [0, 4, 128, 255]),
        (from_values("I;16B", [[0, 1000, 32768, 65535]], ">u2"), [0, 4, 128, 255]),
        # 32-bit integers: 16-bit values, 8-bit values, and any other range stretched
        (from_values("I", [[0, 1000, 32768, 65535]], "<i4"), [0, 4, 128, 255]),
        (from_values("I", [[0, 10, 128, 255]], "<i4"), [0, 10, 128, 255]),
        (from_values("I", [[-100, 0, 100, 100]], "<i4"), [0, 127, 255, 255]),
        # floats: [0, 1] scaled, 0..255 kept, a NaN counts as 0
        (from_values("F", [[0.0, 0.25, 0.5, 1.0]], "<f4"), [0, 64, 128, 255]),
        (from_values("F", [[0.0, 2.0, 128.0, float("nan")]], "<f4"), [0, 2, 128, 0]),
        # one bit, CMYK (pure cyan; pure black), YCbCr (mid grey)
        (Image.frombytes("1", (4, 1), bytes([0b10100000])), [255, 0, 255, 0]),
        (Image.new("CMYK", (1, 1), (255, 0, 0, 0)), [0]),
        (Image.new("CMYK", (1, 1), (0, 0, 0, 255)), [0]),
        (Image.new("YCbCr", (1, 1), (128, 128, 128)), [128]),
    ],
)
def test_every_pil_mode_becomes_8_bit_rgb_with_its_values_scaled(image, expected):
    files = {"I;16": "PNG", "1": "PNG", "CMYK": "TIFF"}  # as read from a file where a format holds the mode
    loaded = load_image(encoded(image, files[image.mode]) if image.mode in files else image)
    assert loaded.mode == "RGB"
    red = np.asarray(loaded)[0, :, 0].tolist()
    assert red == expected


def test_a_16_bit_png_keeps_its_greys():
    grey = from_values("I;16", [[16384] * 4] * 4, "<u2")
    loaded = load_image(encoded(grey))
    assert np.asarray(loaded).tolist() == [[[64, 64, 64]] * 4] * 4  # not white
    alpha = Image.new("LA", (2, 1), (0, 0))
    alpha.putpixel((0, 0), (0, 255))
    assert [load_image(encoded(alpha)).getpixel((x, 0)) for x in (0, 1)] == [(0, 0, 0), (255, 255, 255)]
    cyan = np.asarray(load_image(encoded(Image.new("CMYK", (1, 1), (255, 0, 0, 0)), "TIFF")))[0, 0].tolist()
    assert cyan == [0, 255, 255]


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any image's pixels are decoded."""

    def load(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_a_decompression_bomb_is_refused_from_its_header(bomb_png, no_decoding):
    assert len(bomb_png) < 100_000
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"decompression-bomb limit \(Image size \(400000000 pixels\)"):
        load_image(bomb_png)
    assert time.perf_counter() - start < 0.5


def test_an_image_over_max_image_pixels_is_refused_from_its_header(big_png, no_decoding):
    with pytest.raises(ImageError, match="9000x8000 = 72000000 pixels, over the max_image_pixels limit of 67108864"):
        load_image(big_png)
    with pytest.raises(ImageError, match="37x23 = 851 pixels, over the max_image_pixels limit of 850"):
        load_image(encoded(drawn()), max_image_pixels=850)
    with pytest.raises(ImageError, match="over the max_image_pixels limit of 850"):
        load_image(drawn(), max_image_pixels=850)


def test_data_over_max_image_bytes_is_refused_before_reading(png_file):
    size = png_file.stat().st_size
    for ref in (png_file, png_file.read_bytes(), base64.b64encode(png_file.read_bytes()).decode()):
        with pytest.raises(ImageError, match=f"over the max_image_bytes limit of {size - 10}"):
            load_image(ref, max_image_bytes=size - 10)
    assert load_image(png_file, max_image_bytes=size).size == (37, 23)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (encoded(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")[:400], "truncated or corrupt image data"),
        (corrupted_png(), r"truncated or corrupt image data \(broken data stream when reading image file\)"),
        (b"GIF89a" + b"\0" * 20, "not an image, or an unsupported image format"),
        (b"plain text, not an image", "not an image, or an unsupported image format"),
    ],
)
def test_corrupt_data_gives_a_clear_reason(data, reason):
    with pytest.raises(ImageError, match=reason):
        load_image(data)


SIZES = [(1, 1), (13, 997), (3000, 20), (641, 479), (28, 28), (4000, 3000), (997, 13)]
"""(width, height): tiny, thin, very wide, odd, exact, huge but allowed, very tall."""


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_budget_size_is_smart_resize_with_sides_multiple_of_28(width, height):
    h, w = budget_size(height, width)

    assert (h, w) == smart_resize(height, width, factor=28, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    assert h % 28 == 0 and w % 28 == 0
    assert MIN_PIXELS <= h * w <= MAX_PIXELS


def test_an_extreme_aspect_ratio_is_refused():
    with pytest.raises(ImageError, match="image is 1000x4: absolute aspect ratio must be smaller than 200, got 250.0"):
        budget_size(4, 1000)
    # 200:1 passes smart_resize, but rounds to 207:1, which the processor would refuse
    with pytest.raises(ImageError, match="image is 29x5800: Qwen2-VL's smart_resize gives 28x5796, which it would"):
        budget_size(5800, 29)
    # on a small budget the floor of 28 per side leaves a wide image over the budget: it would shrink again
    with pytest.raises(ImageError, match="image is 3000x20: Qwen2-VL's smart_resize gives 2716x28, which it would"):
        budget_size(20, 3000, max_pixels=64 * 28 * 28)


@pytest.fixture(scope="module")
def processors(tiny_vlm_dir):
    """The tiny model's processor as saved (budget 3136..50176) and configured with MM-Eureka's budget."""
    return {
        "saved": load_processor(tiny_vlm_dir)[0],
        "mm-eureka": load_processor(tiny_vlm_dir, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)[0],
    }


def process(processor, image: Image.Image, **kwargs):
    out = processor(text=[f"{IMAGE_TOKEN}Describe."], images=[image], return_tensors="pt", **kwargs)
    pad_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    return out["image_grid_thw"].tolist()[0], int((out["input_ids"] == pad_id).sum()), out["pixel_values"]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_processor_and_vllm_see_the_same_image_tokens(processors, width, height):
    original = Image.effect_noise((width, height), 60).convert("RGB")
    processor = processors["mm-eureka"]

    resized = apply_pixel_budget(original)
    h, w = budget_size(height, width)
    # (a) our image has smart_resize's size
    assert resized.size == (w, h)
    # (b) the processor, configured with the budget, keeps it: one image token per 28x28 block
    grid, tokens, pixels = process(processor, resized)
    assert grid == [1, h // 14, w // 14]
    assert tokens == h * w // (28 * 28)
    # (c) the processor given the budget as kwargs (vLLM's mm_processor_kwargs) on the original agrees,
    # to the pixel: our resize is the processor's own (PIL bicubic)
    direct = process(processors["saved"], original, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    assert direct[:2] == (grid, tokens) and direct[2].equal(pixels)
    # (d) the budget is a fixed point: again, and through the processor, nothing changes
    assert apply_pixel_budget(resized) is resized
    again = process(processor, apply_pixel_budget(resized))
    assert again[:2] == (grid, tokens) and again[2].equal(pixels)


def test_the_saved_processor_keeps_images_on_its_own_budget(processors):
    processor = processors["saved"]
    budget = processor.image_processor.size
    for width, height in SIZES:
        if (width, height) == (3000, 20):
            continue  # refused on this budget (test_an_extreme_aspect_ratio_is_refused)
        resized = apply_pixel_budget(drawn().resize((width, height)), budget.shortest_edge, budget.longest_edge)
        grid, tokens, _ = process(processor, resized)
        assert grid == [1, resized.height // 14, resized.width // 14]
        assert tokens == resized.height * resized.width // 784
