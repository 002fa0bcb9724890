"""Read any predictions file into evaluation `Item`s: prelabel's predictions.jsonl, a
conlleval file (token first, gold and predicted tags in the last two columns), or a Kili
json_response export with its assets (`kili_export`). Gold can come from the file or from
a dataset.

Items are matched to gold (and to each other, for `compare`) by id when the other side has
that id, else by their text: the tokens joined without whitespace, the k-th occurrence of a
text pairing with the k-th (CoNLL-2003 repeats some sentences).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from prelabel.errors import DatasetError
from prelabel.predictions import read_predictions_jsonl
from task_types import PredictionRow
from task_types.ner import NER
from task_types.ner.model import NerRecord
from task_types.ner.rows import NerRow

from .analysis import Item
from .figures import RunFigures

Format = Literal["auto", "predictions", "conll", "kili"]
FORMATS: tuple[str, ...] = ("auto", "predictions", "conll", "kili")


@dataclass(frozen=True)
class Source:
    """The items of one predictions file, the run's figures as far as the file tells, and
    how it was read (`format`, and `figures_from`: the file itself, or a report.json or
    run.json found beside it).
    """

    path: Path
    format: str
    items: list[Item]
    figures: RunFigures
    figures_from: str


def item_of_row(row: PredictionRow) -> Item:
    """A predictions.jsonl row as an evaluation item (of a NER run: the evaluation scores NER
    rows)."""
    if not isinstance(row, NerRow):
        raise TypeError(f"item {row.id!r}: the evaluation scores NER rows, not {type(row)}")
    return Item(
        id=row.id,
        tokens=row.tokens,
        gold=row.gold_tags,
        pred=row.tags if row.status == "labeled" else None,
        error=row.error,
        unaligned=row.unaligned,
    )


def text_key(tokens: Sequence[str]) -> str:
    """What two copies of the same sentence share however they were tokenised or spaced."""
    return "".join("".join(tokens).split())


# --- format detection ---------------------------------------------------------------------


def detect_format(path: Path) -> str:
    """`predictions`, `kili` or `conll`, from the first thing in the file."""
    try:
        with path.open(encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}; check the path") from exc
    first = head.lstrip()
    if first.startswith("["):
        return "kili"
    if first.startswith("{"):
        line = first.splitlines()[0]
        if '"json_response"' in line or '"jsonResponse"' in line or '"latestLabel"' in line:
            return "kili"
        return "predictions"
    return "conll"


def resolve_path(path: Path) -> Path:
    if path.is_dir():
        inside = path / "predictions.jsonl"
        if not inside.exists():
            raise DatasetError(
                f"{path} is a folder without predictions.jsonl; point to a predictions file"
            )
        return inside
    if not path.exists():
        raise DatasetError(f"{path} does not exist; check the path")
    return path


# --- predictions.jsonl ----------------------------------------------------------------------


def _figures_beside(path: Path) -> tuple[dict[str, Any], str]:
    """The run's figures from a report.json (or run.json) next to the predictions file."""
    fields = set(RunFigures.model_fields)
    report = path.parent / "report.json"
    if report.exists():
        try:
            data = json.loads(report.read_text(encoding="utf-8")).get("figures", {})
        except (OSError, ValueError, AttributeError):
            data = {}
        if isinstance(data, dict) and data:
            return {k: v for k, v in data.items() if k in fields}, str(report)
    run = path.parent / "run.json"
    if run.exists():
        try:
            config = json.loads(run.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
        if isinstance(config, dict):
            # The model and prompt version are grouped (RunConfig) or, before, flat.
            for group in ("endpoint", "labeling"):
                nested = config.get(group)
                config.update(nested if isinstance(nested, dict) else {})
            keys = ("model", "prompt_version", "dataset", "split")
            found = {k: config[k] for k in keys if isinstance(config.get(k), str)}
            if found:
                return found, str(run)
    return {}, ""


def _figures_of_rows(rows: Sequence[NerRow]) -> dict[str, Any]:
    models = Counter(r.model for r in rows if r.model)
    prompts = Counter(r.prompt_version for r in rows if r.prompt_version)
    return {
        "items": len(rows),
        "labeled": sum(r.status == "labeled" for r in rows),
        "failed": sum(r.status == "failed" for r in rows),
        "requests": sum(r.usage.requests for r in rows),
        "prompt_tokens": sum(r.usage.prompt_tokens for r in rows),
        "completion_tokens": sum(r.usage.completion_tokens for r in rows),
        "unaligned_mentions": sum(len(r.unaligned) for r in rows),
        "mentions_proposed": sum(
            len(r.entities) + len(r.unaligned) for r in rows if r.status == "labeled"
        ),
        "model": models.most_common(1)[0][0] if models else "",
        "prompt_version": prompts.most_common(1)[0][0] if prompts else "",
    }


def read_predictions_source(path: Path) -> Source:
    """prelabel's predictions.jsonl; the run's figures from a report.json or run.json
    beside it when there is one (they know the wall time, 429s, dataset and split).
    """
    rows: list[NerRow] = read_predictions_jsonl(path, NER)
    derived = _figures_of_rows(rows)
    beside, where = _figures_beside(path)
    try:
        figures = RunFigures(**{**derived, **beside})
    except ValidationError:
        figures, where = RunFigures(**derived), ""
    return Source(path, "predictions", [item_of_row(r) for r in rows], figures, where or str(path))


# --- conlleval --------------------------------------------------------------------------------


def _check_tag(tag: str, path: Path, number: int) -> None:
    if tag == "O" or (len(tag) > 2 and tag[0] in "BI" and tag[1] == "-"):
        return
    raise DatasetError(
        f"{path}:{number}: tag {tag!r} is not BIO; conlleval lines end with the gold and the "
        "predicted tag (O, B-TYPE or I-TYPE)"
    )


def read_conlleval(path: Path) -> Source:
    """A conlleval file: one token a line, gold and predicted tags in the last two columns,
    blank lines between sentences; `-DOCSTART-` lines are skipped. Ids are `s<index>`.
    """
    items: list[Item] = []
    tokens: list[str] = []
    gold: list[str] = []
    pred: list[str] = []

    def flush() -> None:
        if tokens:
            items.append(
                Item(
                    id=f"s{len(items):06d}",
                    tokens=tuple(tokens),
                    gold=tuple(gold),
                    pred=tuple(pred),
                )
            )
            tokens.clear()
            gold.clear()
            pred.clear()

    for number, line in read_lines(path):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            flush()
            continue
        if len(columns) < 3:
            raise DatasetError(
                f"{path}:{number}: {len(columns)} column(s); a conlleval line is "
                "`token ... GOLD PRED` (at least three columns)"
            )
        _check_tag(columns[-2], path, number)
        _check_tag(columns[-1], path, number)
        tokens.append(columns[0])
        gold.append(columns[-2])
        pred.append(columns[-1])
    flush()
    if not items:
        raise DatasetError(f"{path}: no sentences found; is it a conlleval file?")
    figures = RunFigures(items=len(items), labeled=len(items))
    return Source(path, "conll", items, figures, "")  # a conlleval file holds no run figures


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a UTF-8 file; an unreadable file is a DatasetError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}; check the path and the encoding") from exc
    yield from enumerate(text.splitlines(), start=1)


# --- gold -----------------------------------------------------------------------------------------


def attach_gold(items: Sequence[Item], gold: Sequence[NerRecord], where: str) -> list[Item]:
    """Replace each item's gold tags with those of its gold record (by id, else by text).

    An item that matches no record, or whose tokens differ from its record's, is a user
    mistake: the predictions do not belong to that dataset.
    """
    by_id = {r.id: r for r in gold}
    by_text: dict[str, list[NerRecord]] = {}
    for r in gold:
        by_text.setdefault(text_key(r.tokens), []).append(r)
    used: set[str] = set()
    out: list[Item] = []
    for item in items:
        record = by_id.get(item.id)
        if record is None or record.id in used:
            candidates = [r for r in by_text.get(text_key(item.tokens), []) if r.id not in used]
            record = candidates[0] if candidates else None
        if record is None:
            raise DatasetError(
                f"{where}: item {item.id!r} is in no gold record (by id or text); "
                "is --gold the dataset and split these predictions were made on?"
            )
        if len(record.tokens) != len(item.tokens):
            raise DatasetError(
                f"{where}: item {item.id!r} has {len(item.tokens)} tokens but gold "
                f"{record.id!r} has {len(record.tokens)}; the predictions and --gold disagree"
            )
        used.add(record.id)
        out.append(replace(item, gold=record.gold_tags))
    return out


def match_items(a: Sequence[Item], b: Sequence[Item]) -> tuple[list[tuple[Item, Item]], int, int]:
    """Pair the items of two runs (by id when B has it with the same text, else by text).

    Returns the pairs, and how many items of A and of B found no partner.
    """
    by_id = {i.id: i for i in b}
    by_text: dict[str, list[Item]] = {}
    for i in b:
        by_text.setdefault(text_key(i.tokens), []).append(i)
    used: set[int] = set()
    pairs: list[tuple[Item, Item]] = []
    for item in a:
        key = text_key(item.tokens)
        other = by_id.get(item.id)
        if other is None or id(other) in used or text_key(other.tokens) != key:
            other = next((o for o in by_text.get(key, []) if id(o) not in used), None)
        if other is None:
            continue
        used.add(id(other))
        pairs.append((item, other))
    return pairs, len(a) - len(pairs), len(b) - len(pairs)


__all__ = [
    "FORMATS",
    "Format",
    "Source",
    "attach_gold",
    "detect_format",
    "item_of_row",
    "match_items",
    "read_conlleval",
    "read_lines",
    "read_predictions_source",
    "resolve_path",
    "text_key",
]
