"""Check a data source, and convert it to OpenRLHF's native prompt rows with images on the pixel budget.

:func:`convert_file` writes jsonl rows OpenRLHF's ``PromptDataset`` reads as they stand
(``--data.input_key prompt --data.image_key images --data.label_key label --data.apply_chat_template``)::

    {"prompt": [{"role": ..., "content": [{"type": "image"}, {"type": "text", "text": ...}]}],
     "images": ["/abs/out.images/<sha256>.png"], "label": "<answer>",
     "metadata": "<JSON object>", "mm_eureka_label": "<answer + metadata, for the reward>"}

Every image is written as a PNG after the pixel budget, into ``<out stem>.images/`` beside the
output, named by a hash of its pixels (so a repeated image is stored once). Source files are never
referenced directly: the output is self-contained, and training and rollout load exactly the
RGB, budget-sized pixels checked here. A rollout executor that crops images (``image_tools``) also
gets each image as loaded, written the same way and listed in the row's metadata
(``keep_source_images``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from tqdm import tqdm

from mm_eureka_plugin.contracts import DataFormat
from mm_eureka_plugin.data.formats import data_source, has_text, is_parquet, json_lines, load_split
from mm_eureka_plugin.data.images import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_PIXELS,
    MIN_PIXELS,
    ImageError,
    apply_pixel_budget,
    load_image,
)
from mm_eureka_plugin.data.prompts import add_to_system_prompt
from mm_eureka_plugin.data.records import LABEL_COLUMN, BadRow, DataError, PromptRecord, encode_label

logger = logging.getLogger(__name__)

FORMAT_COLUMNS = {"message": "mmk12", "prompt": "openrlhf", "question": "mmk12-parquet"}
"""A column that identifies a format, in the order :func:`detect_format` looks for them."""
SOURCE_IMAGES = "source_images"
"""Metadata key of a converted row's images as loaded, before the pixel budget (``keep_source_images``)."""
MAX_LISTED_ROWS = 20
"""Bad rows listed in a :class:`DataError` message before "and K more"."""


def executor_settings(executor: Any) -> dict[str, Any]:
    """What a rollout executor asks of the converted data, as :func:`convert_file` keywords:
    ``system_suffix`` (its ``system_prompt``) and ``keep_source_images`` (its ``uses_source_images``)."""
    return {
        "system_suffix": getattr(executor, "system_prompt", None),
        "keep_source_images": bool(getattr(executor, "uses_source_images", False)),
    }


@dataclass
class DataReport:
    """What :func:`check_file` or :func:`convert_file` found: rows read, bad rows (skipped when
    converting with ``on_bad_row="skip"``), rows written to ``output``, and the ids that more than
    one usable row has (id -> row numbers; warned about, not refused: ``mm-eureka eval`` refuses them)."""

    path: Path
    format: str
    total: int = 0
    bad: list[BadRow] = field(default_factory=list)
    written: int = 0
    output: Path | None = None
    repeated_ids: dict[str, list[int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every row is usable."""
        return not self.bad

    def bad_rows_text(self, limit: int = MAX_LISTED_ROWS) -> str:
        """One ``row N: reason`` line per bad row, at most ``limit``, then ``and K more``."""
        lines = [str(bad) for bad in self.bad[:limit]]
        if len(self.bad) > limit:
            lines.append(f"and {len(self.bad) - limit} more")
        return "\n".join(lines)


def detect_format(path: str | Path) -> str:
    """The registered format name for the data source ``path`` from its columns (the Parquet schema,
    the first JSON line, or a folder's or hub dataset's features): ``message`` -> mmk12, ``prompt``
    -> openrlhf, ``question`` -> mmk12-parquet."""
    source = data_source(path)
    path = Path(path)
    if source.kind != "file":
        columns = load_split(source).column_names
    elif not path.is_file():
        raise DataError(f"{path}: no such file.")
    else:
        columns = _file_columns(path)
    for column, name in FORMAT_COLUMNS.items():
        if column in columns:
            return name
    raise DataError(
        f"{path}: cannot tell its data format from its columns ({', '.join(columns) or 'none found'}). "
        "Name the format: mmk12 (message, answer), mmk12-parquet (question, answer, image) or "
        "openrlhf (prompt, images, label)."
    )


def _file_columns(path: Path) -> list[str]:
    if not is_parquet(path) and not has_text(path):
        raise DataError(f"{path}: no rows (the file is empty or holds only blank lines). Check the path.")
    try:
        if is_parquet(path):
            import pyarrow.parquet as pq

            return pq.read_schema(path).names
        row = json.loads(next((line for _, line in json_lines(path) if line.strip()), "{}"))
        return list(row) if isinstance(row, dict) else []
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read its columns: {exc}") from None


def check_file(
    path: str | Path,
    fmt: str | DataFormat | None = None,
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    max_image_bytes: int = MAX_IMAGE_BYTES,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    progress: bool = False,
    **format_params: Any,
) -> DataReport:
    """Read every row of the data source ``path`` (a data file, a hub-layout folder or a hub dataset
    name, see :func:`~mm_eureka_plugin.data.formats.data_source`) and load its images onto the pixel
    budget; report the bad rows.

    ``fmt`` is a registered ``data_format`` name or reference (built with ``format_params``), a
    built format, or ``None`` for :func:`detect_format`. Raises :class:`DataError` only if the
    file itself cannot be read.
    """
    path = Path(path)
    name, reader = _resolve_format(path, fmt, format_params)
    report = DataReport(path, name)
    limits = _limits(min_pixels, max_pixels, max_image_bytes, max_image_pixels)
    for _ in _usable_rows(reader, report, "Checking", progress, limits):
        pass
    return report


def convert_file(
    in_path: str | Path,
    fmt: str | DataFormat | None,
    out_path: str | Path,
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    on_bad_row: Literal["error", "skip"] = "error",
    progress: bool = False,
    max_image_bytes: int = MAX_IMAGE_BYTES,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    system_suffix: str | None = None,
    keep_source_images: bool = False,
    **format_params: Any,
) -> DataReport:
    """Convert the data source ``in_path`` to OpenRLHF's native jsonl at ``out_path`` (see the module docstring).

    ``fmt`` is as for :func:`check_file`. ``system_suffix`` is added to every prompt's system
    message (e.g. a rollout executor's tool instructions); ``keep_source_images`` also writes each
    image as loaded (before the pixel budget) and lists those files in the row's metadata under
    :data:`SOURCE_IMAGES`. With ``on_bad_row="error"`` any bad row raises
    :class:`DataError` listing them and nothing is written; with ``"skip"`` the good rows are
    written and the report lists the skipped ones. A file with no good row raises either way.
    The output and its images appear only once the whole file has converted.
    """
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got {on_bad_row!r}.")
    in_path, out_path = Path(in_path), Path(out_path).resolve()
    name, reader = _resolve_format(in_path, fmt, format_params)
    report = DataReport(in_path, name, output=out_path)
    image_dir = out_path.with_name(out_path.stem + ".images")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_path.stem}.", dir=out_path.parent))
    try:
        limits = _limits(min_pixels, max_pixels, max_image_bytes, max_image_pixels)
        rows = _usable_rows(reader, report, "Converting", progress, limits)
        with (staging / "rows.jsonl").open("w", encoding="utf-8") as out:
            for record, images in rows:
                if report.bad and on_bad_row == "error":
                    continue  # nothing will be written: keep checking, stop writing
                paths = [stage_image(budgeted, staging, image_dir) for budgeted, _ in images]
                if keep_source_images:
                    sources = [stage_image(source, staging, image_dir) for _, source in images]
                    record.metadata = {**record.metadata, SOURCE_IMAGES: sources}
                if system_suffix:
                    record.messages = add_to_system_prompt(record.messages, system_suffix)
                out.write(json.dumps(_output_row(record, paths), ensure_ascii=False) + "\n")
                report.written += 1
        if (report.bad and on_bad_row == "error") or not report.written:
            raise DataError(_failure_message(report, on_bad_row))
        publish_staged(staging, image_dir, out_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _resolve_format(path: Path, fmt: str | DataFormat | None, params: dict[str, Any]) -> tuple[str, DataFormat]:
    if fmt is None:
        fmt = detect_format(path)
    if isinstance(fmt, str):
        from mm_eureka_plugin import registry

        return fmt, registry.resolve("data_format", fmt, **params)
    if params:
        raise TypeError(f"format parameters {sorted(params)} need a format name, not a built format.")
    return type(fmt).__name__, fmt


def _limits(min_pixels: int, max_pixels: int, max_image_bytes: int, max_image_pixels: int) -> dict[str, int]:
    return {
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
        "max_image_bytes": max_image_bytes,
        "max_image_pixels": max_image_pixels,
    }


def _usable_rows(
    reader: DataFormat, report: DataReport, verb: str, progress: bool, limits: dict[str, int]
) -> Iterator[tuple[PromptRecord, list[tuple[Image.Image, Image.Image]]]]:
    """The good records of ``report.path`` with their images (on the budget, as loaded); counts rows
    and records bad ones."""
    total = None
    if is_parquet(report.path):
        import pyarrow.parquet as pq

        try:
            total = pq.ParquetFile(report.path).metadata.num_rows
        except (OSError, ValueError):
            pass  # the reader reports the file
    items = tqdm(
        reader.read(report.path), desc=f"{verb} {report.path.name}", unit="row", total=total, disable=not progress
    )
    rows_by_id: dict[str, list[int]] = {}
    for item in items:
        report.total += 1
        if isinstance(item, BadRow):
            report.bad.append(item)
            continue
        try:
            images = _record_images(item, limits)
        except ImageError as exc:
            report.bad.append(BadRow(item.row, str(exc), _record_id(item)))
            continue
        if (row_id := _record_id(item)) is not None:
            rows_by_id.setdefault(row_id, []).append(item.row)
        yield item, images
    report.repeated_ids = {row_id: rows for row_id, rows in rows_by_id.items() if len(rows) > 1}
    if report.repeated_ids:
        shown = "; ".join(
            f"{row_id!r}: rows {', '.join(map(str, rows))}" for row_id, rows in list(report.repeated_ids.items())[:5]
        )
        more = f" and {len(report.repeated_ids) - 5} more" if len(report.repeated_ids) > 5 else ""
        logger.warning(
            "%s: %d id(s) are on more than one row (%s%s); give each row its own id "
            "(mm-eureka eval refuses repeated ids)",
            report.path,
            len(report.repeated_ids),
            shown,
            more,
        )


def load_record_images(
    record: PromptRecord,
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    max_image_bytes: int = MAX_IMAGE_BYTES,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
) -> list[Image.Image]:
    """``record``'s images, loaded and on the pixel budget; :class:`ImageError` names each bad one
    (``image 2: <reason>``, joined with ``; ``)."""
    limits = _limits(min_pixels, max_pixels, max_image_bytes, max_image_pixels)
    return [budgeted for budgeted, _ in _record_images(record, limits)]


def _record_images(record: PromptRecord, limits: dict[str, int]) -> list[tuple[Image.Image, Image.Image]]:
    """(on the pixel budget, as loaded) for each of ``record``'s images; :class:`ImageError` as
    :func:`load_record_images` raises it."""
    images, problems = [], []
    for i, ref in enumerate(record.images, start=1):
        try:
            image = load_image(
                ref, max_image_bytes=limits["max_image_bytes"], max_image_pixels=limits["max_image_pixels"]
            )
            images.append((apply_pixel_budget(image, limits["min_pixels"], limits["max_pixels"]), image))
        except ImageError as exc:
            problems.append(f"image {i}: {exc}")
    if problems:
        raise ImageError("; ".join(problems))
    return images


def _record_id(record: PromptRecord) -> str | None:
    value = record.metadata.get("id")
    return None if value is None else str(value)


def stage_image(image: Image.Image, staging: Path, image_dir: Path) -> str:
    """Write ``image`` as a PNG named by a hash of its pixels into ``staging`` (unless already
    there) and return its final path in ``image_dir``."""
    digest = hashlib.sha256(f"{image.width}x{image.height}:".encode() + image.tobytes()).hexdigest()[:32]
    name = f"{digest}.png"
    if not (staging / name).exists():
        image.save(staging / name, format="PNG")
    return str(image_dir / name)


def publish_staged(staging: Path, image_dir: Path, out_path: Path) -> None:
    """Move the staged PNGs into ``image_dir`` and the staged ``rows.jsonl`` to ``out_path`` (last)."""
    image_dir.mkdir(exist_ok=True)
    for staged in staging.glob("*.png"):
        os.replace(staged, image_dir / staged.name)
    os.replace(staging / "rows.jsonl", out_path)


def _output_row(record: PromptRecord, image_paths: list[str]) -> dict[str, Any]:
    metadata = json.loads(json.dumps(record.metadata, ensure_ascii=False, default=str))
    return {
        "prompt": record.messages,
        "images": image_paths,
        "label": record.answer,
        "metadata": json.dumps(metadata, ensure_ascii=False),
        LABEL_COLUMN: encode_label(record.answer, metadata),
    }


def _failure_message(report: DataReport, on_bad_row: str) -> str:
    if not report.total:
        return f"{report.path}: no rows. Nothing was written."
    message = (
        f"{report.path}: {len(report.bad)} bad row(s) of {report.total} ({report.format} format). "
        f"Nothing was written.\n{report.bad_rows_text()}"
    )
    if on_bad_row == "error":
        message += "\nFix these rows, or convert with on_bad_row='skip' to leave them out."
    return message
