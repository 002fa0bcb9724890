"""Load a dataset's items as records, from the Hugging Face hub or a local file or folder.

Every source becomes a `datasets.Dataset` first (the hub and JSONL/CSV/TSV/Parquet through
`datasets.load_dataset`, CoNLL through our own reader and `Dataset.from_dict`), so that one
function turns rows into records for all of them: the task type's (`Labeling.record`). Items
that cannot be used (tag count off, unknown tags, empty sentences) are listed in
`LoadedDataset.skipped` with a reason; problems with the whole source raise `DatasetError`
with one line that says what to do.

CSV and TSV files are read with every column as a string (a label column holding `1` in one
part of the file and `2,15` in another, or an id like `1e5`, stays what the file says), quoted
fields unquoted as Python's `csv` module does; `columns` names the columns of a file without a
header row. A `.tsv` file is a tab-separated table for a task type that does not read CoNLL
(`Labeling.reads_conll`), and CoNLL for one that does (NER).
"""

from __future__ import annotations

import ast
import csv
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import datasets
from datasets.exceptions import DatasetsError
from pyarrow import ArrowException
from pydantic import BaseModel, ConfigDict, Field

import task_types
from prelabel.errors import ConfigError, DatasetError
from prelabel.hf_datasets import quiet_progress
from prelabel.model import DEFAULT_TASK, Record
from producer.conll import decode_lines, read_conll
from task_types import Labeling, RowFields, SkipItem

Format = Literal["auto", "conll", "jsonl", "csv", "tsv", "parquet"]
#: A range of a table's rows as a Python slice's start and end (`--rows 7200:`).
Rows = tuple[int | None, int | None]


class DatasetSpec(BaseModel):
    """What to load: a hub name or a local path, which split, and how to read its fields.

    The field names apply to JSONL, CSV, TSV, Parquet and hub datasets; a CoNLL file always
    gives tokens and string tags, and ids from the sentence index. An existing local path wins
    over a hub dataset of the same name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1)
    split: str = Field("test", min_length=1)
    limit: int | None = Field(None, ge=1)
    format: Format = "auto"
    #: The text column; several, comma-separated (`title,description`), are joined with "\n".
    text_field: str = "text"
    tokens_field: str = "tokens"
    #: The gold labels' column; None: the task type's (`Labeling.gold_field`), which may be
    #: absent (text without gold). A column named here must exist.
    gold_field: str | None = None
    id_field: str | None = None
    #: The names of integer gold ids, in id order (a `ClassLabel` column names its own).
    tag_names: tuple[str, ...] | None = None
    #: The id of the first of the names (AG News counts its classes from 1).
    first_label_id: int = 0
    #: The label tags to label, when not all those the data uses. For a task type whose gold
    #: values are its label tags (classification), also the names of integer ids, in this
    #: order, when neither `tag_names` nor the data names them (a `--labels` file's order).
    labels: tuple[str, ...] | None = None
    #: The columns of a CSV or TSV file without a header row, in order.
    columns: tuple[str, ...] | None = None
    #: Which rows of the table to read, as a slice; applied before `limit`.
    rows: Rows | None = None


class LoadedDataset(BaseModel):
    """The records of one split, the label tags they use, and the items that were skipped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    records: list[Record]
    labels: tuple[str, ...]
    source: str
    split: str
    skipped: list[tuple[str, str]] = Field(default_factory=list)
    #: The rows of the table that were read, `[start, end)` (all of them without `rows`).
    rows: tuple[int, int] = (0, 0)


# Split names as people spell them, mapped to one name each; CoNLL-2003's original release
# calls its validation and test files eng.testa and eng.testb.
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "testa": "validation",
    "test": "test",
    "testb": "test",
}
_PACKAGED_EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: Read as a tab-separated table by a task type that does not read CoNLL, else as CoNLL.
_TABLE_OR_CONLL_EXTENSIONS = frozenset({".tsv"})
_CONLL_EXTENSIONS = frozenset(
    {".txt", ".conll", ".conllx", ".iob", ".iob2", ".bio", ".tsv"}
    | {".train", ".testa", ".testb", ".dev", ".test", ".valid"}
)
_FORMAT_LABELS = {
    "conll": "CoNLL",
    "jsonl": "JSONL",
    "csv": "CSV",
    "tsv": "TSV",
    "parquet": "Parquet",
}
_BUILDERS = {"jsonl": "json", "csv": "csv", "tsv": "csv", "parquet": "parquet"}
_SEPARATORS = {"csv": ",", "tsv": "\t"}
_NAME_PARTS = re.compile(r"[._\-\s]+")
_SPLIT_IN_MESSAGE = re.compile(r"(?:Should be one of|Available splits:) (\[[^\]]*\])")
_BATCH = 1000


def load_dataset_records(spec: DatasetSpec, task: str = DEFAULT_TASK) -> LoadedDataset:
    """Load one split of a dataset as records of the task type `task`; raise `DatasetError`
    when the source is unusable."""
    labeling = task_types.get(task)
    path = Path(spec.source).expanduser()
    if path.exists():
        try:
            table, description = _local_table(path, spec, labeling)
        except OSError as e:
            raise DatasetError(
                f"{path}: cannot be read ({e.strerror or e}); check that it exists and is readable"
            ) from None
    elif _looks_like_path(spec.source):
        raise DatasetError(
            f"{spec.source}: no such file or folder; check the path "
            "(a Hugging Face hub dataset is named without a file extension)"
        )
    else:
        _no_columns(spec, spec.source, "a Hugging Face hub dataset")
        table = _hub_table(spec.source, spec.split)
        description = f"{spec.source} {spec.split} (Hugging Face hub)"
    fields = table.fields or _resolve_fields(table.ds, table.origin, spec, labeling)
    span = _row_span(len(table.ds), spec.rows, table.origin)
    records, skipped, seen = _build_records(table, fields, spec, labeling, span)
    skipped = table.unreadable + skipped
    if not records and not skipped:
        raise DatasetError(f"{table.origin}: split {spec.split!r} has no rows; pick another split")
    if not records:
        where, reason = skipped[0]
        raise DatasetError(
            f"{table.origin}: none of the {len(skipped)} items could be used "
            f"(first: {where}: {reason}); fix the data or the field and tag options"
        )
    if spec.labels is not None:
        labels = spec.labels
    elif fields.tag_names is not None and _gold_is_tags(labeling, fields.tag_names):
        # The data's own class names (a ClassLabel), in their order: the label set's order.
        labels = tuple(dict.fromkeys([*fields.tag_names, *sorted(seen)]))
    else:
        named = labeling.tags_named([*table.declared_tags, *(fields.tag_names or ())])
        labels = tuple(sorted(seen | named))
    return LoadedDataset(
        records=records,
        labels=labels,
        source=description,
        split=spec.split,
        skipped=skipped,
        rows=(span.start, span.stop),
    )


def table_identity(spec: DatasetSpec) -> tuple[str, str]:
    """What names the table `spec` reads, so that two specs can be compared: a local file's
    resolved path (a folder's file for the split), or a saved dataset's folder or a hub name
    with the split."""
    path = Path(spec.source).expanduser()
    split = canonical_split(spec.split)
    if not path.exists():
        return spec.source, split
    if path.is_dir() and not any((path / f).is_file() for f in _SAVED_MARKERS):
        try:
            return str(_split_file(path, spec.split, spec.format).resolve()), ""
        except DatasetError:
            return str(path.resolve()), split
    return str(path.resolve()), split if path.is_dir() else ""


def canonical_split(name: str) -> str:
    """A split's name as loading matches it (`dev`, `valid` and `validation` are one)."""
    return _SPLIT_ALIASES.get(name.lower(), name.lower())


def parse_rows(value: str, flag: str = "--rows") -> Rows:
    """`START:END` (either may be left out, negative counts from the end, as a Python slice)
    as a `Rows`; ConfigError naming `flag` otherwise."""
    start, colon, end = value.partition(":")
    try:
        if not colon or ":" in end:
            raise ValueError
        return (int(start) if start.strip() else None, int(end) if end.strip() else None)
    except ValueError:
        raise ConfigError(
            f"{flag} {value!r}: give START:END, a Python slice of the rows counted from 0 "
            "(e.g. :7200, 7200: or -400:)"
        ) from None


def show_rows(rows: Rows | tuple[int, int]) -> str:
    """`rows` as `--rows` takes it (`7200:`)."""
    start, end = rows
    return f"{'' if start is None else start}:{'' if end is None else end}"


def _row_span(total: int, rows: Rows | None, origin: str) -> range:
    """The rows of a table of `total` rows that `rows` selects (all of them without it)."""
    if rows is None:
        return range(total)
    span = range(total)[slice(*rows)]
    if total and not span:
        raise DatasetError(
            f"{origin}: rows {show_rows(rows)} select none of its {total:,} rows; "
            f"pick a range within 0:{total}"
        )
    return span


def _gold_is_tags(labeling: Labeling, names: Sequence[str]) -> bool:
    """Whether `names` are the task type's label tags themselves (classification's classes),
    not gold values that only name them (NER's `B-PER`)."""
    return labeling.tags_named(names) == frozenset(names)


@dataclass(frozen=True)
class _Fields:
    """Which columns hold what; `tokens` wins over `text` when a table has both."""

    tokens: str | None
    text: str | None
    tags: str | None
    id: str | None
    tag_names: tuple[str, ...] | None
    #: The columns `text` joins (with "\n"), when there are several.
    texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Table:
    """A source as a `datasets.Dataset`, with what messages need to point at its rows."""

    ds: datasets.Dataset
    origin: str
    where: Callable[[int], str]
    fields: _Fields | None = None  # known up front for CoNLL; resolved from the spec otherwise
    #: Gold values the whole source holds (a CoNLL file's, beyond the first `limit` items).
    declared_tags: frozenset[str] = frozenset()
    #: Items that could not even be read into the table (a line that is not UTF-8).
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def _looks_like_path(source: str) -> bool:
    # Hub names look like "conll2003" or "org/name": no extension, at most one slash.
    return (
        source.startswith((".", "/", "~"))
        or source.count("/") > 1
        or "\\" in source
        or Path(source).suffix.lower() in _PACKAGED_EXTENSIONS.keys() | _CONLL_EXTENSIONS
    )


# --- local files --------------------------------------------------------------------------


def _local_table(path: Path, spec: DatasetSpec, labeling: Labeling) -> tuple[_Table, str]:
    if path.is_dir() and any((path / f).is_file() for f in _SAVED_MARKERS):
        _no_columns(spec, str(path), "a saved Hugging Face dataset")
        table = _saved_table(path, spec.split)
        return table, f"{path.name} {spec.split} (local Hugging Face dataset, {path})"
    file = _split_file(path, spec.split, spec.format) if path.is_dir() else path
    fmt = _format_of(file, spec.format, labeling.reads_conll)
    if fmt == "conll":
        if not labeling.reads_conll:
            raise DatasetError(
                f"{file}: read as CoNLL (a token and its tag per line), which a {labeling.name} "
                "dataset cannot be; give a CSV, TSV, JSONL or Parquet file, or set the format"
            )
        _no_columns(spec, str(file), "a CoNLL file")
        table = _conll_table(file, spec.split)
    else:
        if fmt not in _SEPARATORS:
            _no_columns(spec, str(file), f"a {_FORMAT_LABELS[fmt]} file")
        table = _packaged_table(file, fmt, spec.columns)
    name = path.name if path.is_dir() else _name_of_file(file)
    return table, f"{name} {spec.split} (local {_FORMAT_LABELS[fmt]}, {file})"


def _no_columns(spec: DatasetSpec, where: str, what: str) -> None:
    if spec.columns is not None:
        raise DatasetError(
            f"{where}: columns names the columns of a CSV or TSV file without a header row, "
            f"and this is {what}, which names its own; drop columns"
        )


#: Files `Dataset.save_to_disk` and `DatasetDict.save_to_disk` write (as `prelabel export
#: --format hf` does): such a folder is a Hugging Face dataset, read with `load_from_disk`.
_SAVED_MARKERS = ("state.json", "dataset_dict.json")


def _saved_table(path: Path, split: str) -> _Table:
    """A dataset saved with `save_to_disk`; for a DatasetDict, the split asked for."""
    try:
        loaded = datasets.load_from_disk(str(path))
    except (DatasetsError, ArrowException, ValueError, OSError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DatasetError(
            f"{path}: cannot be read as a saved Hugging Face dataset ({first})"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        want = _SPLIT_ALIASES.get(split.lower(), split.lower())
        names = [n for n in loaded if _SPLIT_ALIASES.get(n.lower(), n.lower()) == want]
        if not names:
            raise DatasetError(
                f"{path}: no split {split!r}; available splits: {', '.join(loaded)}; "
                "pass one of them"
            )
        loaded = loaded[names[0]]
    return _Table(ds=loaded, origin=str(path), where=lambda i: f"{path} row {i + 1}")


def _format_of(file: Path, requested: Format, reads_conll: bool) -> Format:
    if requested != "auto":
        return requested
    suffix = file.suffix.lower()
    if suffix in _TABLE_OR_CONLL_EXTENSIONS and not reads_conll:
        return "tsv"
    return _PACKAGED_EXTENSIONS.get(suffix, "conll")


def _name_of_file(file: Path) -> str:
    # "conll2003/test.txt" is the conll2003 dataset; "reviews.jsonl" is the reviews dataset.
    return file.parent.name if _split_of_name(file.name) else file.stem


def _split_of_name(name: str) -> str | None:
    for part in _NAME_PARTS.split(name.lower()):
        if part in _SPLIT_ALIASES:
            return _SPLIT_ALIASES[part]
    return None


def _split_file(folder: Path, split: str, requested: Format) -> Path:
    """The one data file of `folder` that holds `split` (`valid`, `dev` and `testa` agree)."""
    known = _PACKAGED_EXTENSIONS.keys() | _CONLL_EXTENSIONS
    files = sorted(
        f
        for f in folder.iterdir()
        if f.is_file() and (requested != "auto" or f.suffix.lower() in known)
    )
    want = _SPLIT_ALIASES.get(split.lower(), split.lower())
    matches = [
        f
        for f in files
        if _split_of_name(f.name) == want or want in _NAME_PARTS.split(f.name.lower())
    ]
    if len(matches) > 1:
        names = ", ".join(f.name for f in matches)
        raise DatasetError(
            f"{folder}: several files hold split {split!r} ({names}); point to one file instead"
        )
    if not matches:
        found = ", ".join(f"{_split_of_name(f.name) or f.stem} ({f.name})" for f in files)
        raise DatasetError(
            f"{folder}: no file for split {split!r}; splits found: {found or 'none'}; "
            "pass one of them as the split, or point to a file"
        )
    return matches[0]


def _conll_table(path: Path, split: str) -> _Table:
    numbered = list(enumerate(read_conll(path)))
    unreadable = [(f"{path}:{s.line} ({split}-{i:06d})", s.error) for i, s in numbered if s.error]
    ids = [f"{split}-{i:06d}" for i, s in numbered if not s.error]
    sentences = [s for _, s in numbered if not s.error]
    ds = datasets.Dataset.from_dict(
        {
            "id": ids,
            "tokens": [list(s.tokens) for s in sentences],
            "ner_tags": [list(s.tags) for s in sentences],
        },
        features=datasets.Features(
            {
                "id": datasets.Value("string"),
                "tokens": datasets.List(datasets.Value("string")),
                "ner_tags": datasets.List(datasets.Value("string")),
            }
        ),
    )
    lines = [s.line for s in sentences]
    # The file declares its types through every sentence, not only the first `limit` ones.
    declared = frozenset(tag for s in sentences for tag in s.tags)
    return _Table(
        ds=ds,
        origin=str(path),
        where=lambda i: f"{path}:{lines[i]}",
        fields=_Fields(tokens="tokens", text=None, tags="ner_tags", id="id", tag_names=None),
        declared_tags=declared,
        unreadable=unreadable,
    )


def _packaged_table(path: Path, fmt: Format, columns: tuple[str, ...] | None = None) -> _Table:
    if fmt == "parquet":
        if path.stat().st_size == 0:
            raise DatasetError(f"{path}: the file is empty; point to a Parquet file with rows")
    else:
        # Read every line, not just up to the first one with text: this is where a bad byte
        # gets its line number, which `datasets` would not give.
        blank = True
        for _, line in decode_lines(path):
            blank = blank and not line.strip()
        if blank:
            raise DatasetError(
                f"{path}: the file is empty; point to a {_FORMAT_LABELS[fmt]} file with rows"
            )
    options: dict[str, Any] = {}
    if fmt in _SEPARATORS:
        names = _table_columns(path, fmt, columns)
        # keep_default_na=False: a CSV text or token "NA" or "null" is a word, not a missing
        # value. Every column a string: pandas would guess types chunk by chunk.
        string = datasets.Value("string")
        options = {
            "sep": _SEPARATORS[fmt],
            "keep_default_na": False,
            "features": datasets.Features(dict.fromkeys(names, string)),
        }
        if columns is not None:
            options |= {"header": None, "names": list(columns)}
    try:
        with quiet_progress():
            loaded = datasets.load_dataset(
                _BUILDERS[fmt], data_files=str(path), split="train", **options
            )
    # TypeError: `datasets` on a JSONL line that is a JSON array, not an object.
    except (DatasetsError, ArrowException, ValueError, TypeError, OSError) as e:
        raise _unreadable(path, fmt, e) from None
    if not isinstance(loaded, datasets.Dataset) or len(loaded) == 0:
        raise DatasetError(f"{path}: no rows; point to a {_FORMAT_LABELS[fmt]} file with rows")
    return _Table(ds=loaded, origin=str(path), where=lambda i: f"{path} row {i + 1}")


def _table_columns(path: Path, fmt: Format, columns: tuple[str, ...] | None) -> list[str]:
    """The column names of a CSV or TSV file (its header row, or `columns` when it has none,
    checked against its first row), as pandas will name them."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            first = next((row for row in csv.reader(f, delimiter=_SEPARATORS[fmt]) if row), [])
    except csv.Error as e:
        raise DatasetError(
            f"{path}: cannot be read as {_FORMAT_LABELS[fmt]} ({e}); check the file, "
            "or set the format explicitly"
        ) from None
    if columns is None:
        # pandas names a column with an empty header "Unnamed: N".
        names = [name or f"Unnamed: {i}" for i, name in enumerate(first)]
        twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if twice is not None:
            raise DatasetError(
                f"{path}: the header row names column {twice!r} twice; rename one, "
                "or name the columns with columns if the file has no header row"
            )
        return names
    twice = next((n for i, n in enumerate(columns) if n in columns[:i]), None)
    if twice is not None:
        raise DatasetError(f"columns names {twice!r} twice; give each column its own name")
    if len(first) != len(columns):
        raise DatasetError(
            f"{path}: its first row has {len(first)} fields and columns names {len(columns)} "
            f"({','.join(columns)}); name every column, in order"
        )
    if [field.strip() for field in first] == list(columns):
        raise DatasetError(
            f"{path}: its first row is a header ({','.join(first)}); drop columns, "
            "which is for files without one"
        )
    return list(columns)


def _unreadable(path: Path, fmt: Format, error: Exception) -> DatasetError:
    """One line for a file `datasets` could not parse, naming the bad line when we can find it."""
    if fmt == "jsonl":
        for number, line in decode_lines(path):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as e:
                msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
                return DatasetError(
                    f"{path}:{number}: not valid JSON ({msg}); "
                    "give one JSON object per line, or fix or remove that line"
                )
            if not isinstance(value, dict):
                return DatasetError(
                    f"{path}:{number}: a JSON {type(value).__name__}, not an object; "
                    "give one JSON object per line"
                )
    cause = error.__cause__ or error
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
    return DatasetError(
        f"{path}: cannot be read as {_FORMAT_LABELS[fmt]} ({reason}); "
        "check the file, or set the format explicitly"
    )


# --- the hub ------------------------------------------------------------------------------


def _hub_table(name: str, split: str) -> _Table:
    try:
        loaded = datasets.load_dataset(name, split=split)
    except ValueError as e:
        available = _SPLIT_IN_MESSAGE.search(str(e))
        if available is None:
            raise _hub_error(name, e) from None
        try:
            splits = ", ".join(str(s) for s in ast.literal_eval(available.group(1)))
        except (ValueError, SyntaxError):
            splits = available.group(1)
        raise DatasetError(
            f"{name}: no split {split!r}; available splits: {splits}; pass one of them"
        ) from None
    # The hub fails in many ways (offline mode, DNS, a closed HTTP client, 404, gated repos);
    # to the user each means the same: this name cannot be loaded here.
    except Exception as e:
        raise _hub_error(name, e) from None
    if not isinstance(loaded, datasets.Dataset):
        raise DatasetError(f"{name}: split {split!r} did not load as one table; pass a split")
    return _Table(ds=loaded, origin=name, where=lambda i: f"{name} {split} row {i}")


def _hub_error(name: str, error: BaseException) -> DatasetError:
    return DatasetError(
        f"cannot load dataset {name!r} from the Hugging Face hub: {_hub_reason(error)}; "
        "pass a local file or folder (CoNLL, JSONL, CSV, Parquet) instead"
    )


def _hub_reason(error: BaseException) -> str:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(f"{type(e).__name__} {e}" for e in chain)
    if "OfflineModeIsEnabled" in text or "offline mode" in text.lower():
        return "offline mode is on (HF_HUB_OFFLINE)"
    # Network first: a failed download also leaves a "not cached" FileNotFoundError behind.
    network = ("Connect", "client has been closed", "Name or service", "name resolution", "Timeout")
    if any(k in text for k in network):
        return "the hub cannot be reached (no network?)"
    missing = ("DatasetNotFoundError", "RepositoryNotFoundError", "GatedRepoError", "doesn't exist")
    if any(k in text for k in missing):
        return "no such dataset on the hub, or it is private or gated"
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return first[:160]


# --- rows to records ----------------------------------------------------------------------


def _resolve_fields(
    ds: datasets.Dataset, origin: str, spec: DatasetSpec, labeling: Labeling
) -> _Fields:
    columns: list[str] = list(ds.column_names)
    listed = ", ".join(columns)
    texts = tuple(name.strip() for name in spec.text_field.split(",") if name.strip())
    joined: tuple[str, ...] = ()
    tokens: str | None
    text: str | None
    if len(texts) > 1:
        # Several text columns, joined: they must all be there, and win over tokens.
        missing = [name for name in texts if name not in columns]
        if missing:
            raise DatasetError(
                f"{origin}: no text field {missing[0]!r} (fields: {listed}); name the columns "
                "to join in text_field, comma-separated"
            )
        tokens, text, joined = None, ",".join(texts), texts
    else:
        tokens = spec.tokens_field if spec.tokens_field in columns else None
        text = spec.text_field if spec.text_field in columns and tokens is None else None
    if tokens is None and text is None:
        raise DatasetError(
            f"{origin}: no {spec.tokens_field!r} or {spec.text_field!r} field "
            f"(fields: {listed}); name yours with tokens_field or text_field"
        )
    gold = spec.gold_field or labeling.gold_field
    tags = gold if gold in columns else None
    if tags is None and spec.gold_field is not None:
        raise DatasetError(
            f"{origin}: no tags field {spec.gold_field!r} (fields: {listed}); "
            "name the right one with tags_field"
        )
    if spec.id_field is not None and spec.id_field not in columns:
        raise DatasetError(
            f"{origin}: no id field {spec.id_field!r} (fields: {listed}); "
            "name the right one with id_field, or leave it out for index ids"
        )
    names = spec.tag_names if spec.tag_names is not None else _class_names(ds, tags)
    if names is None and spec.labels and _gold_is_tags(labeling, spec.labels):
        names = spec.labels  # a --labels file, in its order
    if tags is not None and names is None and _holds_integers(ds, tags):
        raise DatasetError(
            f"{origin}: field {tags!r} holds integer tags and the data does not name them; "
            "pass tag_names in index order (e.g. O,B-PER,I-PER,...)"
        )
    return _Fields(
        tokens=tokens, text=text, tags=tags, id=spec.id_field, tag_names=names, texts=joined
    )


def _class_names(ds: datasets.Dataset, column: str | None) -> tuple[str, ...] | None:
    """The names a `ClassLabel` column (a label per row) or a list of them (`Sequence` or
    `List` of `ClassLabel`: labels or tags per row) gives its integer values."""
    feature = ds.features.get(column) if column else None
    feature = getattr(feature, "feature", feature)
    if isinstance(feature, datasets.ClassLabel):
        return tuple(str(n) for n in feature.names)
    return None


def _holds_integers(ds: datasets.Dataset, column: str) -> bool:
    feature = getattr(ds.features.get(column), "feature", None)
    return isinstance(feature, datasets.Value) and str(feature.dtype).startswith(("int", "uint"))


def _build_records(
    table: _Table, fields: _Fields, spec: DatasetSpec, task: Labeling, span: range
) -> tuple[list[Record], list[tuple[str, str]], set[str]]:
    """Turn the rows of `span` into records until `spec.limit` records are made; list the
    items skipped. Ids and messages count rows in the whole table."""
    row_fields = RowFields(
        tokens=fields.tokens,
        text=fields.text,
        tags=fields.tags,
        tag_names=fields.tag_names,
        first_id=spec.first_label_id,
        allowed=frozenset(spec.labels) if spec.labels is not None else None,
        origin=table.origin,
    )
    text_columns = fields.texts or ((fields.text,) if fields.text else ())
    wanted = list(
        dict.fromkeys(c for c in (fields.id, fields.tokens, *text_columns, fields.tags) if c)
    )
    ds = table.ds.select_columns(wanted)
    if span != range(len(table.ds)):
        ds = ds.select(span)
    records: list[Record] = []
    skipped: list[tuple[str, str]] = []
    seen_tags: set[str] = set()
    seen_ids: set[str] = set()
    index = span.start
    for batch in ds.iter(batch_size=_BATCH):
        for row in range(len(batch[wanted[0]])):
            i, index = index, index + 1
            given = batch[fields.id][row] if fields.id else f"{spec.split}-{i:06d}"
            rid = "" if given is None else str(given)
            try:
                if not rid.strip():
                    raise SkipItem(f"no id in field {fields.id!r}")
                if rid in seen_ids:
                    raise SkipItem(f"duplicate id {rid!r}")
                values = {c: batch[c][row] for c in wanted}
                if fields.texts and fields.text:
                    values[fields.text] = _joined([values[c] for c in fields.texts])
                record = task.record(rid, values, row_fields)
            except SkipItem as e:
                skipped.append((f"{table.where(i)} ({rid})", str(e)))
                continue
            seen_ids.add(rid)
            records.append(record)
            seen_tags |= task.gold_tags(record)
            if spec.limit is not None and len(records) >= spec.limit:
                return records, skipped, seen_tags
    return records, skipped, seen_tags


def _joined(values: Sequence[object]) -> str:
    """Several text columns as one text: each part stripped, empty ones left out, joined
    with a line break (AG News: the title, then the description)."""
    parts = (str(v).strip() for v in values if v is not None)
    return "\n".join(part for part in parts if part)
