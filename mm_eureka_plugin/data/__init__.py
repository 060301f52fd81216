"""Multimodal data: formats read into :class:`PromptRecord`, bounded image loading, Qwen2.5-VL's
pixel budget, and checking and converting files to OpenRLHF's native prompt rows."""

from mm_eureka_plugin.data.convert import DataReport, check_file, convert_file, detect_format, load_record_images
from mm_eureka_plugin.data.formats import MMK12Jsonl, MMK12Parquet, OpenRLHFRows, read_rows
from mm_eureka_plugin.data.images import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_PIXELS,
    MIN_PIXELS,
    ImageError,
    apply_pixel_budget,
    budget_size,
    load_image,
)
from mm_eureka_plugin.data.prompts import SYSTEM_PROMPTS
from mm_eureka_plugin.data.records import LABEL_COLUMN, BadRow, DataError, PromptRecord, decode_label, encode_label

__all__ = [
    "LABEL_COLUMN",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_PIXELS",
    "MIN_PIXELS",
    "SYSTEM_PROMPTS",
    "BadRow",
    "DataError",
    "DataReport",
    "ImageError",
    "MMK12Jsonl",
    "MMK12Parquet",
    "OpenRLHFRows",
    "PromptRecord",
    "apply_pixel_budget",
    "budget_size",
    "check_file",
    "convert_file",
    "decode_label",
    "detect_format",
    "encode_label",
    "load_image",
    "load_record_images",
    "read_rows",
]
