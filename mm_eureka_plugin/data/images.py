"""Bounded image loading and Qwen2.5-VL's pixel budget.

:func:`load_image` reads an image reference (path, ``file://`` URL, bytes, base64, data URI, a
HF datasets ``{"bytes", "path"}`` dict, or a PIL image) into a fully decoded RGB image, refusing
oversized files and decompression bombs before decoding. :func:`apply_pixel_budget` resizes it
with Qwen2-VL's own ``smart_resize`` rule, so the HF processor (training) and vLLM (rollout) find
an image already at the size they would resize it to, and produce the same image tokens.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from PIL import Image, UnidentifiedImageError

IMAGE_FACTOR = 28
"""Side lengths are multiples of this: Qwen2.5-VL's patch size 14 times its spatial merge size 2."""
MIN_PIXELS = 4 * 28 * 28
"""MM-Eureka's smallest image area after resizing (4 merged patches, i.e. 4 image tokens)."""
MAX_PIXELS = 640 * 28 * 28
"""MM-Eureka's largest image area after resizing (640 image tokens)."""
MAX_IMAGE_BYTES = 64 * 1024 * 1024
"""Default limit on an encoded image's size."""
MAX_IMAGE_PIXELS = 8192 * 8192
"""Default limit on an image's area as its header states it, checked before decoding. PIL's own
decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 89 M pixels) applies as well."""

_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class ImageError(ValueError):
    """An image cannot be used; the message says why."""


def is_base64(text: str) -> bool:
    """Whether ``text`` looks like bare base64 data (not a path): base64 characters only,
    a multiple of 4 long, at least 32 characters."""
    compact = "".join(text.split())
    return len(compact) >= 32 and len(compact) % 4 == 0 and _BASE64.fullmatch(compact) is not None


def resolve_image_ref(ref: Any, base_dir: str | Path) -> Any:
    """``ref`` with a path (plain or ``file://``) made absolute against ``base_dir``; a HF datasets
    ``{"bytes", "path"}`` dict becomes its bytes, or else its path; other references are returned as they are."""
    if isinstance(ref, dict) and ("bytes" in ref or "path" in ref):
        ref = ref.get("bytes") or ref.get("path")
    if not isinstance(ref, str) or ref.startswith(("data:", "http://", "https://")):
        return ref
    if ref.startswith("file://"):
        return str(Path(base_dir, _file_url_path(ref)).resolve())
    path = Path(base_dir, ref).expanduser()
    if path.is_file() or not is_base64(ref):
        return str(path.resolve())
    return ref


def load_image(
    ref: Any, *, max_image_bytes: int = MAX_IMAGE_BYTES, max_image_pixels: int = MAX_IMAGE_PIXELS
) -> Image.Image:
    """Decode ``ref`` into an RGB image (transparent areas composited on white).

    Raises :class:`ImageError` for a missing file, an unsupported reference, data over
    ``max_image_bytes``, a header over ``max_image_pixels`` or PIL's decompression-bomb limit
    (checked before any pixel is decoded), and undecodable, truncated or corrupt data.
    """
    if isinstance(ref, Image.Image):
        _check_pixels(ref.size, max_image_pixels)
        with _pil_errors():  # a lazily opened image decodes here
            return _to_rgb(ref)
    return _decode(_read_bytes(ref, max_image_bytes), max_image_pixels)


def budget_size(height: int, width: int, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) that Qwen2-VL's ``smart_resize`` gives for the pixel budget, with both
    sides multiples of :data:`IMAGE_FACTOR`.

    Raises :class:`ImageError` for an aspect ratio over 200:1, and for a result that
    ``smart_resize`` would change again (possible at extreme aspect ratios: the result is off the
    budget or over 200:1 after rounding), so every budget-sized image is a fixed point of the processor.
    """
    # Imported here: transformers imports torch. Its image_processing_qwen2_vl imports torchvision;
    # this module holds the same function (marked "Copied from" there) for the PIL image processor.
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    try:
        size = smart_resize(height, width, factor=IMAGE_FACTOR, min_pixels=min_pixels, max_pixels=max_pixels)
    except ValueError as exc:
        raise ImageError(f"image is {width}x{height}: {exc} (Qwen2-VL's smart_resize)") from None
    try:
        stable = smart_resize(*size, factor=IMAGE_FACTOR, min_pixels=min_pixels, max_pixels=max_pixels) == size
    except ValueError:
        stable = False
    if not stable:
        raise ImageError(
            f"image is {width}x{height}: Qwen2-VL's smart_resize gives {size[1]}x{size[0]}, which it would "
            f"resize again (extreme aspect ratio for the pixel budget [{min_pixels}, {max_pixels}])"
        )
    return size


def apply_pixel_budget(image: Image.Image, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """``image`` resized (bicubic, as the Qwen2-VL processor does) to :func:`budget_size`; the
    same image if it already has that size."""
    height, width = budget_size(image.height, image.width, min_pixels, max_pixels)
    if (height, width) == (image.height, image.width):
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def _file_url_path(url: str) -> str:
    parsed = urlparse(url)
    return unquote(parsed.netloc + parsed.path) if parsed.netloc not in ("", "localhost") else unquote(parsed.path)


def _read_bytes(ref: Any, max_image_bytes: int) -> bytes:
    if isinstance(ref, dict) and ("bytes" in ref or "path" in ref):
        ref = ref.get("bytes") or ref.get("path")
    if isinstance(ref, os.PathLike):
        ref = os.fspath(ref)
    if isinstance(ref, (bytes, bytearray, memoryview)):
        data = bytes(ref)
        _check_bytes(len(data), max_image_bytes)
        return data
    if ref is None:
        raise ImageError("image reference is empty (null)")
    if not isinstance(ref, str):
        raise ImageError(f"unsupported image reference of type {type(ref).__name__}")
    if ref.startswith("data:"):
        header, _, payload = ref.partition(",")
        if not header.endswith(";base64"):
            raise ImageError("data URI is not base64-encoded")
        return _b64decode(payload, max_image_bytes)
    if ref.startswith(("http://", "https://")):
        raise ImageError(f"remote image URLs are not supported, download the image first: {ref}")
    path = Path(_file_url_path(ref) if ref.startswith("file://") else ref).expanduser()
    if path.is_file():
        _check_bytes(path.stat().st_size, max_image_bytes)
        return path.read_bytes()
    if is_base64(ref):
        return _b64decode(ref, max_image_bytes)
    if path.is_dir():
        raise ImageError(f"image path is a directory, not an image file: {path}")
    raise ImageError(f"image file not found: {path}")


def _b64decode(payload: str, max_image_bytes: int) -> bytes:
    compact = "".join(payload.split())
    _check_bytes(len(compact) * 3 // 4, max_image_bytes)
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error as exc:
        raise ImageError(f"invalid base64 image data ({exc})") from None


def _check_bytes(size: int, max_image_bytes: int) -> None:
    if size > max_image_bytes:
        raise ImageError(f"image data is {size} bytes, over the max_image_bytes limit of {max_image_bytes}")


def _check_pixels(size: tuple[int, int], max_image_pixels: int) -> None:
    width, height = size
    if width * height > max_image_pixels:
        raise ImageError(
            f"image is {width}x{height} = {width * height} pixels, over the max_image_pixels limit of {max_image_pixels}"
        )


def _decode(data: bytes, max_image_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _pil_errors():
            image = Image.open(io.BytesIO(data))  # lazy: reads the header only
        _check_pixels(image.size, max_image_pixels)
        with _pil_errors():
            image.load()
    return _to_rgb(image)


@contextmanager
def _pil_errors() -> Iterator[None]:
    """Turn PIL's errors into :class:`ImageError`."""
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image is over PIL's decompression-bomb limit ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError("not an image, or an unsupported image format") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"truncated or corrupt image data ({exc})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB: integer and float modes scaled (:func:`_to_8bit`, where PIL's
    ``convert`` would clip a 16-bit image to white), transparency composited on white, the other
    modes (P, L, 1, CMYK, YCbCr, ...) converted by PIL."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return _to_8bit(image).convert("RGB")
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """A one-channel integer or float image (modes ``I;16*``, ``I``, ``F``) as 8-bit ``L``.

    ``I;16*`` is 16-bit: 0..65535 maps to 0..255. ``I`` and ``F`` do not say their range, so the
    values decide: all in 0..255 are kept, ``F`` values all in [0, 1] are scaled by 255, ``I``
    values all in 0..65535 are taken as 16-bit, and anything else is stretched from its minimum
    to its maximum. Non-finite values count as 0.
    """
    import numpy as np

    values = np.nan_to_num(np.asarray(image).astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16"):
        scaled = values / 257.0
    elif image.mode == "F" and 0.0 <= low and high <= 1.0:
        scaled = values * 255.0
    elif 0.0 <= low and high <= 255.0:
        scaled = values
    elif image.mode == "I" and 0.0 <= low and high <= 65535.0:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
