"""Read a Kili json_response export as evaluation items: each annotation's character
offsets placed on the item's tokens, and those that cannot be placed recorded as alignment
losses with their reason (never dropped).

Kili's `beginOffset` may count UTF-16 code units (what a browser counts) or code points
(what Python counts); they differ only after a character outside the Basic Multilingual
Plane, and both readings are tried there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prelabel.errors import DatasetError
from prelabel.figures import RunFigures
from prelabel.files import read_lines
from prelabel.model import Record
from task_types.base import Source
from task_types.ner.inputs import text_key
from task_types.ner.model import CONLL_TYPES, Item, NerRecord, Unaligned
from task_types.ner.records import tokenised

OFF_TOKENS = "offsets do not fall on token boundaries"
NOT_THERE = "content is not in the text at beginOffset"
OVERLAPS = "overlaps another annotation"
NO_CATEGORY = "annotation has no category"

_KILI_NAMES = {t.name: t.tag for t in CONLL_TYPES}


def _kili_rows(path: Path) -> list[dict[str, Any]]:
    text = "\n".join(line for _, line in read_lines(path))
    try:
        if text.lstrip().startswith("["):
            data = json.loads(text)
            rows = data if isinstance(data, list) else []
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise DatasetError(f"{path}: not JSON or JSONL ({exc}); is it a Kili export?") from exc
    for k, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DatasetError(f"{path}: entry {k} is not an object; is it a Kili export?")
    return rows


def _kili_response(row: Mapping[str, Any]) -> dict[str, Any]:
    for key in ("json_response", "jsonResponse"):
        if isinstance(row.get(key), dict):
            return dict(row[key])
    latest = row.get("latestLabel")
    if isinstance(latest, dict) and isinstance(latest.get("jsonResponse"), dict):
        return dict(latest["jsonResponse"])
    labels = row.get("labels")
    if isinstance(labels, list) and labels and isinstance(labels[-1], dict):
        response = labels[-1].get("jsonResponse")
        if isinstance(response, dict):
            return dict(response)
    return {}


def _first_str(row: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = row.get(key)
        if isinstance(value, str):
            return value
    return None


def read_assets(path: Path) -> dict[str, str]:
    """Asset texts by external id: a JSON object `{id: text}`, or a JSON list or JSONL of
    objects with `external_id`/`externalId`/`id` and `content`/`text`.
    """
    text = "\n".join(line for _, line in read_lines(path))
    try:
        data: Any = json.loads(text)
    except ValueError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise DatasetError(f"{path}: assets must be JSON or JSONL ({exc})") from exc
    if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
        return {str(k): v for k, v in data.items()}
    entries = data if isinstance(data, list) else [data]
    assets: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        key = _first_str(entry, "external_id", "externalId", "id")
        content = _first_str(entry, "content", "text")
        if key is not None and content is not None:
            assets[key] = content
    if not assets:
        raise DatasetError(
            f"{path}: no assets found; give objects with external_id and content (or text)"
        )
    return assets


def _from_utf16(text: str, units: int) -> int | None:
    """The code-point index of UTF-16 unit offset `units`, None inside a surrogate pair."""
    count = 0
    for index, char in enumerate(text):
        if count == units:
            return index
        if count > units:
            return None
        count += 2 if ord(char) > 0xFFFF else 1
    return len(text) if count == units else None


def _locate(text: str, begin: int, content: str) -> int | None:
    # Kili's offsets may count UTF-16 units (a browser's) or code points (Python's): a text
    # without characters outside the BMP reads the same either way; try both otherwise.
    for start in (_from_utf16(text, begin), begin):
        if start is not None and start >= 0 and text[start : start + len(content)] == content:
            return start
    return None


def kili_tags(
    record: NerRecord, response: Mapping[str, Any]
) -> tuple[tuple[str, ...], tuple[Unaligned, ...]]:
    """IOB2 tags over `record`'s tokens from a Kili NER json_response (every job's
    annotations), and the annotations that could not be placed, with the reason.
    """
    tags = ["O"] * len(record.tokens)
    by_start = {s: k for k, (s, _) in enumerate(record.offsets)}
    by_end = {e: k for k, (_, e) in enumerate(record.offsets)}
    lost: list[Unaligned] = []
    for job in response.values():
        annotations = job.get("annotations", []) if isinstance(job, dict) else []
        for a in annotations if isinstance(annotations, list) else []:
            content = str(a.get("content", ""))
            names = [c.get("name") for c in a.get("categories", []) if isinstance(c, dict)]
            kind = _KILI_NAMES.get(str(names[0]), str(names[0])) if names else ""
            if not kind:
                lost.append(Unaligned(type="", mention=content, reason=NO_CATEGORY))
                continue
            begin = a.get("beginOffset")
            start = (
                _locate(record.text, begin, content) if isinstance(begin, int) and content else None
            )
            if start is None:
                lost.append(Unaligned(type=kind, mention=content, reason=NOT_THERE))
                continue
            first, last = by_start.get(start), by_end.get(start + len(content))
            if first is None or last is None or last < first:
                lost.append(Unaligned(type=kind, mention=content, reason=OFF_TOKENS))
                continue
            if any(t != "O" for t in tags[first : last + 1]):
                lost.append(Unaligned(type=kind, mention=content, reason=OVERLAPS))
                continue
            tags[first : last + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (last - first)
    return tuple(tags), tuple(lost)


def read_kili(path: Path, gold: Sequence[NerRecord] | None, assets: Path | None = None) -> Source:
    """A Kili json_response export (JSONL or a JSON list). Texts come from the export
    (`content`/`text`), else `assets`, else the gold record of the same id. Tokens come from
    the gold record (by id, else by text) or, without one, from the producer's tokeniser.
    """
    rows = _kili_rows(path)
    texts = read_assets(assets) if assets is not None else {}
    by_id = {r.id: r for r in gold or ()}
    by_text: dict[str, list[NerRecord]] = {}
    for r in gold or ():
        by_text.setdefault(text_key([r.text]), []).append(r)
    items: list[Item] = []
    for k, row in enumerate(rows):
        item_id = _first_str(row, "external_id", "externalId", "id") or f"entry-{k}"
        text = _first_str(row, "content", "text") or texts.get(item_id)
        record = by_id.get(item_id)
        if text is None and record is not None:
            text = record.text
        if text is None:
            raise DatasetError(
                f"{path}: asset {item_id!r} has no text in the export; pass --assets FILE "
                "(external id to text) or --gold with the dataset it came from"
            )
        if record is None or text_key([record.text]) != text_key([text]):
            same = by_text.get(text_key([text]))
            record = same.pop(0) if same else None
        if record is None:
            record = tokenised(item_id, text)
        tags, lost = kili_tags(record, _kili_response(row))
        items.append(
            Item(id=item_id, tokens=record.tokens, gold=record.gold_tags, pred=tags, unaligned=lost)
        )
    if not items:
        raise DatasetError(f"{path}: no assets in this Kili export")
    unaligned = sum(len(i.unaligned) for i in items)
    placed = sum(t.startswith("B-") for i in items for t in i.pred or ())
    figures = RunFigures(
        items=len(items),
        labeled=len(items),
        unaligned_mentions=unaligned,
        mentions_proposed=placed + unaligned,
    )
    return Source(path, "kili", items, figures, str(path), "ner")


class KiliExport:
    """A Kili json_response export, read against the dataset's gold (it holds none)."""

    def detects(self, head: str) -> bool:
        if head.startswith("["):
            return True
        line = head.splitlines()[0] if head.startswith("{") else ""
        return '"json_response"' in line or '"jsonResponse"' in line or '"latestLabel"' in line

    def read(self, path: Path, gold: Sequence[Record] | None, assets: Path | None) -> Source:
        if gold is None:
            raise DatasetError(
                f"{path} is a Kili export, which holds predictions only; pass --gold SPEC "
                "(the dataset and --split the assets came from)"
            )
        return read_kili(path, [r for r in gold if isinstance(r, NerRecord)], assets)


__all__ = [
    "NOT_THERE",
    "NO_CATEGORY",
    "OFF_TOKENS",
    "OVERLAPS",
    "KiliExport",
    "kili_tags",
    "read_assets",
    "read_kili",
]
