"""The predictions files NER reads besides predictions.jsonl (a conlleval file, and Kili
exports in `kili_export.py`), and how NER items meet their gold and each other.

Items are matched to gold (and to each other, for `compare`) by id when the other side has
that id, else by their text: the tokens joined without whitespace, the k-th occurrence of a
text pairing with the k-th (CoNLL-2003 repeats some sentences).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from prelabel.errors import DatasetError
from prelabel.figures import RunFigures
from prelabel.files import read_lines
from prelabel.model import Record
from task_types.base import Source
from task_types.ner.model import Item, NerRecord


def text_key(tokens: Sequence[str]) -> str:
    """What two copies of the same sentence share however they were tokenised or spaced."""
    return "".join("".join(tokens).split())


# --- conlleval ------------------------------------------------------------------------------


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
    return Source(path, "conll", items, figures, "", "ner")  # it holds no run figures


class Conlleval:
    """conlleval: token first, gold and predicted tags in the last two columns."""

    def detects(self, head: str) -> bool:
        return not head.startswith(("{", "["))

    def read(self, path: Path, gold: Sequence[Record] | None, assets: Path | None) -> Source:
        return read_conlleval(path)


# --- gold and pairing -------------------------------------------------------------------------


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


__all__ = ["Conlleval", "attach_gold", "match_items", "read_conlleval", "text_key"]
