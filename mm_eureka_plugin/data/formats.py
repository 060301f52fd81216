"""The built-in data formats: MM-Eureka's jsonl, the hub's MMK12 parquet, and OpenRLHF's own rows.

A data format (:class:`~mm_eureka_plugin.contracts.DataFormat`) is built by its factory with the
recipe's parameters and has one method, ``read(path) -> Iterator[PromptRecord | BadRow]``: one item
per row, in order, numbered from 1. ``path`` is a data source (:func:`data_source`): a data file, a
local folder laid out as a hub dataset repository, or a hub dataset name such as ``FanqingM/MMK12``,
the last two with an optional ``:split``. Rows are read with HF ``datasets``: a file streamed
(``json`` for ``.jsonl``/``.json``, ``parquet`` for ``.parquet``), so nothing is cached or written
next to it; a folder or hub dataset through ``datasets``' own cache, as ``load_dataset`` reads it.
Image references are returned as read, paths made absolute against the data's folder
(:func:`source_dir`); images are loaded and checked by :mod:`mm_eureka_plugin.data.convert`.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mm_eureka_plugin.data.images import resolve_image_ref
from mm_eureka_plugin.data.prompts import apply_system_prompt, resolve_system_prompt
from mm_eureka_plugin.data.records import LABEL_COLUMN, BadRow, DataError, PromptRecord

if TYPE_CHECKING:
    import datasets

IMAGE_TAG = "<image>"
"""Image placeholder in plain-text prompts, as OpenRLHF's ``PromptDataset`` reads them."""
ROLES = ("system", "user", "assistant")


class RowError(ValueError):
    """One reason a row cannot be used."""


def is_parquet(path: Path) -> bool:
    """Whether ``path`` is read as Parquet (by its extension) rather than as JSON lines."""
    return ".parquet" in path.suffixes


DATA_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
"""Extensions that make a path a data file; ``--dry-run`` also looks for them in a folder."""
DEFAULT_SPLIT = "train"
"""The split of a folder or hub dataset named without ``:split``."""
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


@dataclass(frozen=True)
class DataSource:
    """Where rows come from: a data ``file``, a local ``folder`` laid out as a hub dataset
    repository, or a ``hub`` dataset name. ``location`` is the path or name as written; ``split``
    the split asked for after a colon (None: :data:`DEFAULT_SPLIT`; files have none)."""

    kind: Literal["file", "folder", "hub"]
    location: str
    split: str | None = None

    def __str__(self) -> str:
        return self.location if self.split is None else f"{self.location}:{self.split}"


def data_source(text: str | Path, base_dir: str | Path | None = None) -> DataSource:
    """What the data source ``text`` names, its relative paths taken from ``base_dir`` (default: the
    working directory).

    In order: an existing folder is a ``folder``; an existing file, or a name ending in ``.jsonl``,
    ``.json`` or ``.parquet``, is a ``file``; ``LOCATION:SPLIT``, where LOCATION (no colon after its
    last ``/``) is an existing folder or an ``owner/name``, is that folder or hub dataset's split
    SPLIT (any split ``datasets`` accepts, e.g. ``test`` or ``train[:100]``); an ``owner/name`` is a
    ``hub`` dataset; anything else is a ``file`` (which reading then reports as missing). A local
    folder thus wins over a hub dataset of the same name.
    """
    text = str(text)
    base = Path(base_dir) if base_dir is not None else Path.cwd()

    def local(location: str) -> Path:
        return base / Path(location).expanduser()

    if local(text).is_dir():
        return DataSource("folder", text)
    if local(text).exists() or text.endswith(DATA_FILE_SUFFIXES):
        return DataSource("file", text)
    colon = text.find(":", text.rfind("/") + 1)
    location, split = (text[:colon], text[colon + 1 :]) if colon > 0 else (text, None)
    if split is not None and split.strip():
        if local(location).is_dir():
            return DataSource("folder", location, split)
        if _is_hub_name(location):
            return DataSource("hub", location, split)
    if _is_hub_name(text):
        return DataSource("hub", text)
    return DataSource("file", text)


def _is_hub_name(text: str) -> bool:
    return _HUB_NAME.fullmatch(text) is not None and ".." not in text and not text.endswith(DATA_FILE_SUFFIXES)


def absolute_source(text: str | Path, base_dir: str | Path | None = None) -> str:
    """The data source ``text`` with its local path made absolute against ``base_dir`` (default:
    the working directory) and resolved, its ``:split`` kept; a hub dataset name as it is."""
    source = data_source(text, base_dir)
    if source.kind == "hub":
        return str(source)
    location = Path(base_dir if base_dir is not None else Path.cwd()) / Path(source.location).expanduser()
    return str(DataSource(source.kind, str(location.resolve()), source.split))


def source_dir(text: str | Path) -> Path:
    """The folder that relative image paths in the rows of ``text`` are taken from: a data file's
    folder, a dataset folder itself, and the working directory for a hub dataset."""
    source = data_source(text)
    if source.kind == "file":
        return Path(source.location).parent
    return Path(source.location) if source.kind == "folder" else Path.cwd()


def load_split(source: DataSource) -> datasets.Dataset:
    """The split of a ``folder`` or ``hub`` source, ``Image`` columns undecoded, loaded in the steps
    of ``datasets.load_dataset(location, split=split)`` (builder, ``download_and_prepare``,
    ``as_dataset``; the builder's splits name a missing one). Not streamed: it uses and fills the
    datasets cache, so a hub dataset read once online is read offline with ``HF_HUB_OFFLINE=1``
    or ``HF_DATASETS_OFFLINE=1``.

    Raises :class:`DataError` naming the source for a split it does not have (listing those it
    has), a hub dataset that is not cached while offline or the Hub cannot be reached, one that is
    not on the Hub, and anything else ``datasets`` cannot read.
    """
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    where, split = str(source), source.split or DEFAULT_SPLIT
    path = source.location if source.kind == "hub" else str(Path(source.location).expanduser().resolve())
    try:
        builder = datasets.load_dataset_builder(path)
        builder.download_and_prepare()
    except ConnectionError as exc:
        if source.kind != "hub":
            raise DataError(f"{where}: cannot read it with datasets: {type(exc).__name__}: {exc}") from exc
        why = (
            "offline mode is on (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE)"
            if datasets.config.HF_HUB_OFFLINE
            else f"the Hugging Face Hub cannot be reached ({exc})"
        )
        raise DataError(
            f"{where}: no such local file or folder, and the hub dataset {path} is not in the datasets cache "
            f"({datasets.config.HF_DATASETS_CACHE}) while {why}. Read it once online to cache it (e.g. "
            f"`mm-eureka data check {where}`), or point at a local copy: `hf download {path} --repo-type "
            f"dataset --local-dir DIR`, then use DIR:{split}."
        ) from exc
    except DatasetNotFoundError as exc:
        raise DataError(
            f"{where}: no such local file or folder, and no such dataset on the Hugging Face Hub ({exc})."
        ) from exc
    except Exception as exc:  # datasets raises many types; all mean "this source cannot be read"
        raise DataError(f"{where}: cannot read it with datasets: {type(exc).__name__}: {exc}") from exc
    splits = list(builder.info.splits or {})
    unknown = [name for part in split.split("+") if (name := part.split("[")[0].strip()) not in splits]
    if unknown:
        raise DataError(
            f"{where}: no split {unknown[0]!r}; the splits there are {', '.join(splits) or 'none'}. "
            f"Name one after a colon, e.g. {source.location}:{splits[0] if splits else DEFAULT_SPLIT}."
        )
    try:
        dataset = builder.as_dataset(split=split)
    except Exception as exc:  # a malformed slice such as train[:x]
        raise DataError(f"{where}: cannot read split {split!r}: {type(exc).__name__}: {exc}") from exc
    return _undecoded_images(dataset)


def _undecoded_images(dataset: Any) -> Any:
    """``dataset`` (streamed or not) with its ``Image`` columns cast to ``Image(decode=False)``."""
    import datasets

    for name, feature in (dataset.features or {}).items():
        if isinstance(feature, datasets.Image):
            dataset = dataset.cast_column(name, datasets.Image(decode=False))
        elif isinstance(feature, datasets.List) and isinstance(feature.feature, datasets.Image):
            dataset = dataset.cast_column(name, datasets.List(datasets.Image(decode=False)))
    return dataset


def read_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of the data source ``path`` (:func:`data_source`) as dicts: a ``.jsonl``/``.json``/
    ``.parquet`` file streamed by HF ``datasets``, a folder's or hub dataset's split by :func:`load_split`.

    A column holding values of several types (datasets' ``Json`` feature) comes back as the
    decoded values; HF ``Image`` columns come back undecoded (``{"bytes", "path"}``). Raises
    :class:`DataError` naming the source if it is missing or ``datasets`` cannot read it.
    """
    source = data_source(path)
    if source.kind != "file":
        yield from load_split(source)
        return
    import datasets

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    if not is_parquet(path) and not has_text(path):
        raise DataError(f"{path}: no rows (the file is empty or holds only blank lines). Check the path.")
    builder, options = ("parquet", {}) if is_parquet(path) else ("json", {"parse_agent_traces": False})
    with tempfile.TemporaryDirectory(prefix="mm-eureka-datasets-") as cache_dir:
        try:
            dataset = datasets.load_dataset(
                builder, data_files=str(path), split="train", streaming=True, cache_dir=cache_dir, **options
            )
            rows = iter(_undecoded_images(dataset))
            while (row := next(rows, None)) is not None:
                yield row
        except Exception as exc:  # datasets raises many types; all mean "this file cannot be read"
            if builder == "json" and (bad := _first_bad_json_line(path)) is not None:
                raise DataError(f"{path}: {bad}. Every line must be one JSON object.") from exc
            kind = "Parquet" if builder == "parquet" else "JSON lines (one JSON object per line)"
            raise DataError(f"{path}: cannot read it as {kind}: {type(exc).__name__}: {exc}") from exc


def has_text(path: Path) -> bool:
    """Whether the text file ``path`` has a line that is not blank (a UTF-8 BOM is blank)."""
    with path.open("rb") as lines:
        return any(line.strip().removeprefix(BOM).strip() for line in lines)


BOM = b"\xef\xbb\xbf"
"""The UTF-8 byte order mark some editors put at the start of a file; read as nothing."""


def json_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(number, text)`` of each line of ``path`` (from 1), decoded as UTF-8 (a leading BOM
    dropped); :class:`DataError` names the first line that is not UTF-8 and where in it."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                yield number, (raw.removeprefix(BOM) if number == 1 else raw).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}: line {number} is not UTF-8 text (byte 0x{raw[exc.start]:02x}, byte "
                    f"{exc.start + 1} of the line). Save the file as UTF-8."
                ) from None


def _first_bad_json_line(path: Path) -> str | None:
    """Which line of a JSON-lines file is not a JSON object, and why (None if every line is one);
    :class:`DataError` for a line that is not UTF-8."""
    for number, line in json_lines(path):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            return f"line {number} is not valid JSON ({exc})"
        if not isinstance(value, dict):
            return f"line {number} is a JSON {type(value).__name__}, not an object"
    return None


def content_list(text: str) -> list[dict[str, Any]]:
    """Chat content items for ``text``: split at ``<image>`` tags into image placeholders and
    stripped text parts as OpenRLHF's ``PromptDataset`` does; text without tags is kept whole."""
    if IMAGE_TAG not in text:
        return [{"type": "text", "text": text}]
    items: list[dict[str, Any]] = []
    for i, part in enumerate(text.split(IMAGE_TAG)):
        if i > 0:
            items.append({"type": "image"})
        if part.strip():
            items.append({"type": "text", "text": part.strip()})
    return items


def parse_messages(value: Any, column: str) -> tuple[list[dict[str, Any]], list[Any]]:
    """Chat messages with content lists (``{"type": "image"}`` placeholders and ``{"type": "text"}``
    items), and the image references found in image items (``{"type": "image", "image": ref}``).

    String content is split at ``<image>`` tags (:func:`content_list`). Raises :class:`RowError`
    if ``value`` is not a list of ``{"role", "content"}`` messages.
    """

    def fail(detail: str) -> RowError:
        return RowError(f"`{column}` is not a chat message list ({detail})")

    if not isinstance(value, list) or not value:
        raise fail("empty list" if isinstance(value, list) else f"got {type(value).__name__}")
    messages, refs = [], []
    for m, message in enumerate(value, start=1):
        if not isinstance(message, dict) or "content" not in message:
            raise fail(f"message {m} is not a {{role, content}} object")
        if message.get("role") not in ROLES:
            raise fail(f"message {m} has role {message.get('role')!r}, not one of {', '.join(ROLES)}")
        content = message["content"]
        if isinstance(content, str):
            items = content_list(content)
        elif isinstance(content, list):
            items = []
            for i, item in enumerate(content, start=1):
                kind = item.get("type") if isinstance(item, dict) else None
                if kind == "text" and isinstance(item.get("text"), str):
                    items.append({"type": "text", "text": item["text"]})
                elif kind == "image":
                    items.append({"type": "image"})
                    if item.get("image") is not None:
                        refs.append(item["image"])
                else:
                    raise fail(f"message {m} content item {i} is not a text or image item")
        else:
            raise fail(f"message {m} content is a {type(content).__name__}")
        messages.append({"role": message["role"], "content": items})
    return messages, refs


def as_text(value: Any) -> str | None:
    """``value`` as text: strings as they are, other JSON values serialized, ``None`` as ``None``.

    ``datasets`` decodes a column of mixed types as JSON, so a string such as ``"3"`` there
    comes back as the number 3; serializing gives the text back.
    """
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def check_prompt(messages: list[dict[str, Any]], images: list[Any], problems: list[str]) -> None:
    """Add to ``problems`` if the non-system messages have no text, or if the image placeholders
    do not match ``images`` in number."""
    items = [(m["role"], item) for m in messages for item in m["content"]]
    if not any(role != "system" and item["type"] == "text" and item["text"].strip() for role, item in items):
        problems.append("empty question (no text)")
    placeholders = sum(item["type"] == "image" for _, item in items)
    if placeholders != len(images):
        problems.append(f"{placeholders} image placeholder(s) but {len(images)} image(s)")


def check_answer(value: Any, problems: list[str]) -> str:
    """The answer as text, adding to ``problems`` if it is missing or empty."""
    answer = as_text(value)
    if answer is None:
        problems.append("missing answer")
    elif not answer.strip():
        problems.append("empty answer")
    return answer or ""


def image_list(value: Any) -> list[Any]:
    """A row's images column as a list: ``None`` is no image, a single reference is one; ``None``
    entries are dropped (datasets fills them in)."""
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    return [ref for ref in value if ref is not None]


def row_id(row: dict[str, Any], metadata: dict[str, Any]) -> str | None:
    """The row's ``id`` column, or else its metadata's ``id``, as text."""
    value = row.get("id")
    if value is None:
        value = metadata.get("id")
    return None if value is None else str(as_text(value))


def _finish(
    number: int,
    problems: list[str],
    messages: list[dict[str, Any]],
    images: list[Any],
    answer: str,
    metadata: dict[str, Any],
    row: dict[str, Any],
    base_dir: Path,
) -> PromptRecord | BadRow:
    if problems:
        return BadRow(number, "; ".join(problems), row_id(row, metadata))
    images = [resolve_image_ref(ref, base_dir) for ref in images]
    return PromptRecord(number, messages, images, answer, metadata)


class MMK12Jsonl:
    """MM-Eureka's jsonl: {"id", "message": JSON string of the chat messages with inline images, "answer"}.

    Image items look like ``{"type": "image", "image": "file:///abs/path.png"}`` (a plain path is
    read too, relative to the data file's folder); the data's own system message is kept unless
    ``system_prompt`` is set (a name in :data:`~mm_eureka_plugin.data.prompts.SYSTEM_PROMPTS`,
    ``"none"``, or literal text). Columns other than ``message`` and ``answer`` go to metadata.
    """

    def __init__(self, system_prompt: str | None = None) -> None:
        self.system_prompt = resolve_system_prompt(system_prompt)

    def read(self, path: str | Path) -> Iterator[PromptRecord | BadRow]:
        """The rows of the data source ``path`` (see the class docstring)."""
        base_dir = source_dir(path)
        for number, row in enumerate(read_rows(path), start=1):
            problems: list[str] = []
            messages, images = [], []
            value = row.get("message")
            try:
                if value is None:
                    raise RowError("missing `message`")
                if isinstance(value, str):
                    try:
                        value = json.loads(value)
                    except ValueError as exc:
                        raise RowError(f"`message` is not valid JSON ({exc})") from None
                messages, images = parse_messages(value, "message")
                messages = apply_system_prompt(messages, self.system_prompt)
                check_prompt(messages, images, problems)
            except RowError as exc:
                problems.append(str(exc))
            answer = check_answer(row.get("answer"), problems)
            metadata = {k: v for k, v in row.items() if k not in ("message", "answer") and v is not None}
            yield _finish(number, problems, messages, images, answer, metadata, row, base_dir)


class MMK12Parquet:
    """The hub's MMK12 layout: parquet rows {"question", "answer", "image" (or "images"), "id", ...}.

    Images are HF ``Image`` values (``{"bytes", "path"}``), plain bytes, or a list of either.
    ``<image>`` tags in the question mark where images go; without tags, images go before the
    text. The system prompt comes from ``system_prompt`` (default MM-Eureka-7B's; ``"none"`` for
    none). Columns other than question, answer and images go to metadata. ``.jsonl`` files with
    these columns are read too.
    """

    def __init__(self, system_prompt: str = "mm-eureka-7b") -> None:
        self.system_prompt = resolve_system_prompt(system_prompt)

    def read(self, path: str | Path) -> Iterator[PromptRecord | BadRow]:
        """The rows of the data source ``path`` (see the class docstring)."""
        base_dir = source_dir(path)
        for number, row in enumerate(read_rows(path), start=1):
            problems: list[str] = []
            image_column = next((c for c in ("image", "images") if c in row), None)
            images = image_list(row.get(image_column))
            question = as_text(row.get("question"))
            messages = []
            if question is None:
                problems.append("missing `question`")
            else:
                items = content_list(question)
                if IMAGE_TAG not in question:
                    items = [{"type": "image"} for _ in images] + items
                messages = apply_system_prompt([{"role": "user", "content": items}], self.system_prompt)
                check_prompt(messages, images, problems)
            answer = check_answer(row.get("answer"), problems)
            skip = ("question", "answer", image_column)
            metadata = {k: v for k, v in row.items() if k not in skip and v is not None}
            yield _finish(number, problems, messages, images, answer, metadata, row, base_dir)


class OpenRLHFRows:
    """OpenRLHF's native rows: {"prompt": text with <image> tags or chat messages, "images", "label", "metadata"}.

    ``images`` is a list of references (path, ``file://`` URL, bytes, base64, data URI) or a
    single one; ``metadata`` is an optional object or JSON string, to which other columns are
    added (except :data:`~mm_eureka_plugin.data.records.LABEL_COLUMN`). Column names follow
    OpenRLHF's ``--data.input_key``/``image_key``/``label_key``. The data's system message is kept
    unless ``system_prompt`` is set. Reads what :func:`~mm_eureka_plugin.data.convert.convert_file` writes.
    """

    def __init__(
        self,
        system_prompt: str | None = None,
        input_key: str = "prompt",
        image_key: str = "images",
        label_key: str = "label",
        metadata_key: str = "metadata",
    ) -> None:
        self.system_prompt = resolve_system_prompt(system_prompt)
        self.input_key = input_key
        self.image_key = image_key
        self.label_key = label_key
        self.metadata_key = metadata_key

    def read(self, path: str | Path) -> Iterator[PromptRecord | BadRow]:
        """The rows of the data source ``path`` (see the class docstring)."""
        base_dir = source_dir(path)
        known = (self.input_key, self.image_key, self.label_key, self.metadata_key, LABEL_COLUMN)
        for number, row in enumerate(read_rows(path), start=1):
            problems: list[str] = []
            metadata = {k: v for k, v in row.items() if k not in known and v is not None}
            metadata.update(self._metadata(row.get(self.metadata_key), problems))
            messages, images = [], image_list(row.get(self.image_key))
            value = row.get(self.input_key)
            try:
                if value is None:
                    raise RowError(f"missing `{self.input_key}`")
                if isinstance(value, str):
                    messages = [{"role": "user", "content": content_list(value)}]
                else:
                    messages, _ = parse_messages(value, self.input_key)
                messages = apply_system_prompt(messages, self.system_prompt)
                check_prompt(messages, images, problems)
            except RowError as exc:
                problems.append(str(exc))
            answer = check_answer(row.get(self.label_key), problems)
            yield _finish(number, problems, messages, images, answer, metadata, row, base_dir)

    def _metadata(self, value: Any, problems: list[str]) -> dict[str, Any]:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        if value is None or isinstance(value, dict):
            return value or {}
        problems.append(f"`{self.metadata_key}` is not a JSON object")
        return {}
