"""The chat messages and the structured-output schema of the ner-v1 wire format.

One record goes out as its bare text; several go out as numbered lines `"{i}: {text}"`.
The system prompt depends only on the ontology and on single vs batched mode, never on
the records or the batch size, so that every request of a run starts with the same
prefix and providers' prompt caching applies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from prelabel.model import Ontology, Record

#: A tiny worked example for ontologies that use the CoNLL names: it shows order of
#: appearance and a repeated mention, the two rules models break most.
_EXAMPLE_TEXT = "Smith flew from Paris to Berlin and back to Paris ."
_EXAMPLE_MENTIONS = {"PERSON": ["Smith"], "LOCATION": ["Paris", "Berlin", "Paris"]}


def build_messages(records: Sequence[Record], ontology: Ontology) -> list[dict[str, str]]:
    """The system and user messages asking the model to label `records`.

    One record uses the single-sentence format (answer: parse with `parse_answer`);
    more than one use numbered lines (answer: parse with `parse_batch_answer`).
    """
    if not records:
        raise ValueError("build_messages needs at least one record")
    batched = len(records) > 1
    return [
        {"role": "system", "content": system_prompt(ontology, batched=batched)},
        {"role": "user", "content": user_content(records)},
    ]


def user_content(records: Sequence[Record]) -> str:
    """The user message: one record's text, or one numbered line per record."""
    if len(records) == 1:
        return records[0].text
    # A line break inside a text would break the one-line-per-sentence contract.
    return "\n".join(
        f"{i}: {' '.join(record.text.splitlines())}" for i, record in enumerate(records, 1)
    )


@lru_cache(maxsize=32)
def system_prompt(ontology: Ontology, *, batched: bool) -> str:
    """The system message for `ontology`, in single-sentence or numbered-lines mode."""
    types = "\n".join(
        f"- {t.name}: {t.description}" if t.description else f"- {t.name}" for t in ontology.types
    )
    where = "each numbered sentence" if batched else "the sentence"
    one = "an object mapping every type to its list of mentions ([] if none)"
    answer = f'an object mapping each line number ("1", "2", ...) to {one}' if batched else one
    lines = [
        "You are an expert annotator for named entity recognition. Label the named entities "
        f"in {where} with these types:",
        types,
        "Rules: extract only entities that appear verbatim in the sentence, each mention "
        "copied exactly as written (same spelling, casing and spacing); list mentions in "
        "order of appearance, once per occurrence; do not invent types.",
        f"Answer with JSON only: {answer}.",
        _example(ontology, batched=batched),
    ]
    return "\n".join(lines)


def response_format(ontology: Ontology, batch_size: int) -> dict[str, Any]:
    """OpenAI's `response_format` (strict JSON schema) for an answer about `batch_size` records.

    A batch of 1 uses the single-sentence object; larger batches an object keyed "1".."K".
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if batch_size == 1:
        name, schema = "ner_answer", _sentence_schema(ontology)
    else:
        keys = [str(i) for i in range(1, batch_size + 1)]
        name = "ner_batch_answer"
        schema = {
            "type": "object",
            # Inlined rather than `$ref`: not every OpenAI-compatible server resolves refs.
            "properties": {key: _sentence_schema(ontology) for key in keys},
            "required": keys,
            "additionalProperties": False,
        }
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def _sentence_schema(ontology: Ontology) -> dict[str, Any]:
    names = [t.name for t in ontology.types]
    return {
        "type": "object",
        "properties": {name: {"type": "array", "items": {"type": "string"}} for name in names},
        "required": names,
        "additionalProperties": False,
    }


def _example(ontology: Ontology, *, batched: bool) -> str:
    names = {t.name for t in ontology.types}
    if names >= _EXAMPLE_MENTIONS.keys():
        answer = {t.name: list(_EXAMPLE_MENTIONS.get(t.name, [])) for t in ontology.types}
        if batched:
            return f"Example:\n1: {_EXAMPLE_TEXT}\n" + _dumps({"1": answer})
        return f"Example:\n{_EXAMPLE_TEXT}\n" + _dumps(answer)
    # Another ontology: a sentence about people and places would mislead; show the shape.
    shape: dict[str, list[str]] = {t.name: [] for t in ontology.types}
    if ontology.types:
        shape[ontology.types[0].name] = ["<mention as written>", "<next mention>"]
    return "Answer shape: " + _dumps({"1": shape} if batched else shape)


def _dumps(answer: object) -> str:
    # Compact separators: the example is repeated in every request, and spaces cost tokens.
    return json.dumps(answer, separators=(",", ":"))
