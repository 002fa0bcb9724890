"""NER's own exports: the CoNLL file conlleval reads, and NER's shapes in the other tools'
formats (Label Studio's span labels, a Hugging Face dataset of BIO tags). The frames that
write them, and the offset units, are in collector/formats.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from prelabel.files import write_atomic
from task_types.ner.model import Ontology
from task_types.ner.rows import NerRow

#: Category colours, in ontology order (the first four are the Kili NER tutorial's).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)

_WHITESPACE = re.compile(r"\s+")


def _conll_token(token: str) -> str:
    # conlleval splits lines on whitespace, so a token may hold none and may not be empty.
    return _WHITESPACE.sub("_", token) or "_"


def write_conll(path: Path, rows: Iterable[NerRow]) -> int:
    """Write conlleval's input, atomically; return the number of sentences written.

    One token per line as `token gold pred`, a blank line after each sentence, no comments and
    no `-DOCSTART-` lines. Gold is `O` where the item has no gold tags. Failed items are skipped
    (they have no predicted tags; predictions.jsonl and the run figures count them), and so are
    items without tokens, which would read as an extra sentence break. Whitespace
    inside a token, and an empty token, become `_` so that every line keeps three columns.
    """
    count = 0

    def lines() -> Iterator[str]:
        nonlocal count
        for row in rows:
            if row.status != "labeled" or not row.tokens:
                continue
            count += 1
            gold = row.gold_tags if row.gold_tags is not None else ("O",) * len(row.tokens)
            for token, g, p in zip(row.tokens, gold, row.tags, strict=True):
                yield f"{_conll_token(token)} {g} {p}\n"
            yield "\n"

    write_atomic(path, lines())
    return count


def conll_format(out_dir: Path, rows: Sequence[NerRow]) -> tuple[Path, ...]:
    """The `conll` export: predictions.conll in `out_dir`."""
    path = out_dir / "predictions.conll"
    write_conll(path, rows)
    return (path,)


# --- confidence -------------------------------------------------------------------------


def entity_confidences(row: NerRow) -> list[float | None]:
    """Each entity's confidence (`row.scores`), in `row.entities`' order; None where no
    kept proposal is its (a run that measured none: all None).

    An entity's proposal is the kept one of its type on its span; else (a proposal the
    scorer could not place, or placed elsewhere) the first kept one of its type and text
    that no entity took by its span.
    """
    kept = [s for s in row.scores if s.kept]
    taken: dict[int, int] = {}  # entity index -> proposal index
    for i, e in enumerate(row.entities):
        for k, s in enumerate(kept):
            if k not in taken.values() and (s.label, s.start, s.end) == (e.type, e.start, e.end):
                taken[i] = k
                break
    for i, e in enumerate(row.entities):
        if i in taken:
            continue
        for k, s in enumerate(kept):
            if k not in taken.values() and (s.label, s.text) == (e.type, e.text):
                taken[i] = k
                break
    return [kept[taken[i]].confidence if i in taken else None for i in range(len(row.entities))]


def review_predictions(row: NerRow) -> str:
    """A row's entities in short, for review.csv: `PER: John; LOC: Paris`."""
    return "; ".join(f"{e.type}: {e.text}" for e in row.entities)


# --- Label Studio -----------------------------------------------------------------------


def label_studio_config(ontology: Ontology) -> str:
    """A Label Studio labeling config: one Labels control over one Text object."""
    labels = "\n".join(
        f"    <Label value={quoteattr(t.tag)} background={quoteattr(PALETTE[i % len(PALETTE)])}/>"
        for i, t in enumerate(ontology.labels)
    )
    return (
        "<View>\n"
        '  <Labels name="label" toName="text">\n'
        f"{labels}\n"
        "  </Labels>\n"
        '  <Text name="text" value="$text"/>\n'
        "</View>\n"
    )


def label_studio_result(row: NerRow) -> list[dict[str, Any]]:
    """A labeled row's entities as Label Studio span labels, in code points (Label Studio
    stores code points: collector/formats.py), each with its confidence as `score` where
    the run measured it."""
    results = []
    for k, (e, confidence) in enumerate(zip(row.entities, entity_confidences(row), strict=True)):
        result: dict[str, Any] = {
            "id": f"{row.id}#{k}",
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {"start": e.start, "end": e.end, "text": e.text, "labels": [e.type]},
        }
        if confidence is not None:
            result["score"] = confidence
        results.append(result)
    return results


# --- Hugging Face datasets ----------------------------------------------------------------


def tag_names(ontology: Ontology, rows: Iterable[NerRow]) -> list[str]:
    """ClassLabel names: O, then B-/I- per ontology type, then any other tag the rows hold."""
    names = ["O"] + [f"{p}-{t.tag}" for t in ontology.labels for p in ("B", "I")]
    known = set(names)
    extra = {tag for row in rows for tag in (*row.tags, *(row.gold_tags or ())) if tag not in known}
    return names + sorted(extra)


def hf_columns(rows: Sequence[NerRow], ontology: Ontology) -> tuple[Any, dict[str, list[Any]]]:
    """Features and columns: id, text, tokens, pred_tags and gold_tags (sequences of one
    ClassLabel, so that both read as ints with the same names), status and error. pred_tags
    is empty for a failed item, gold_tags is None where the data had none.
    """
    from datasets import ClassLabel, Features, List, Value  # seconds to import: on use only

    label = ClassLabel(names=tag_names(ontology, rows))
    features = Features(
        {
            "id": Value("string"),
            "text": Value("string"),
            "tokens": List(Value("string")),
            "pred_tags": List(label),
            "gold_tags": List(label),
            "status": Value("string"),
            "error": Value("string"),
        }
    )
    columns: dict[str, list[Any]] = {
        "id": [r.id for r in rows],
        "text": [r.text for r in rows],
        "tokens": [list(r.tokens) for r in rows],
        "pred_tags": [list(r.tags) for r in rows],
        "gold_tags": [list(r.gold_tags) if r.gold_tags is not None else None for r in rows],
        "status": [r.status for r in rows],
        "error": [r.error for r in rows],
    }
    return features, columns


__all__ = [
    "PALETTE",
    "conll_format",
    "entity_confidences",
    "hf_columns",
    "label_studio_config",
    "label_studio_result",
    "review_predictions",
    "tag_names",
    "write_conll",
]
