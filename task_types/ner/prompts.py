"""The chat messages and the structured-output schema of the ner-v3 wire format.

An answer is compact: it holds only the types that have mentions (`{}` when none), each a
list of mentions in order of appearance. Listing every type with `[]` cost about twice the
answer's tokens on CoNLL (27.7 against 13.5 tokens a sentence at batch 25); the parser still
reads that full form (`parsing`), and results, exports and scores keep every type.

One record goes out as its bare text; several go out as numbered lines `"{i}: {text}"`.
Few-shot examples, when a run has them, come between the system message and the records,
as user/assistant turns in the same format as the request (one pair per example for a single
record, one numbered pair for a batch). Without them, a built-in worked example goes out the
same way (for ontologies with the CoNLL names): as a turn of its own, a small model does not
take it for part of the sentence's answer, as it did when the example sat in the system
message (a 270M model answered "Smith, Paris, Berlin" for unrelated sentences).

The system prompt depends only on the ontology, the template and single vs batched mode,
never on the records or the batch size, so that every request of a run starts with the same
prefix and providers' prompt caching applies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from task_types.base import Example, PromptTemplate
from task_types.messages import batch_schema, numbered, user_content
from task_types.ner.model import PROMPT_VERSION, NerRecord, Ontology
from task_types.templates import read_template

#: The system prompt's template. `{sentences}` says what to label, `{types}` lists the
#: ontology with its descriptions, `{format}` is the answer format (and, without few-shot
#: examples, a worked example).
DEFAULT_TEMPLATE = (
    "Label the named entities in {sentences} with these types only:\n"
    "{types}\n"
    "Copy each mention exactly as written, in order of appearance, once per occurrence.\n"
    "{format}"
)
PLACEHOLDERS = ("{types}", "{format}", "{sentences}")
_REQUIRED = ("{types}", "{format}")

#: A tiny worked example for ontologies that use the CoNLL names: it shows order of
#: appearance and a repeated mention, the two rules models break most.
BUILT_IN_EXAMPLE = Example(
    "Smith flew from Paris to Berlin and back to Paris .",
    {"PERSON": ["Smith"], "LOCATION": ["Paris", "Berlin", "Paris"]},
)


def load_template(path: Path) -> PromptTemplate:
    """Read `--prompt-file` with this task's placeholders (`task_types.templates`): its
    version is `ner-v3+custom-<8 hex of its SHA-256>`."""
    return read_template(
        path, prompt_version=PROMPT_VERSION, placeholders=PLACEHOLDERS, required=_REQUIRED
    )


def build_messages(
    records: Sequence[NerRecord],
    ontology: Ontology,
    *,
    examples: Sequence[Example] = (),
    template: str | None = None,
) -> list[dict[str, str]]:
    """The messages asking the model to label `records`: system, examples, then the records.

    One record uses the single-sentence format (answer: parse with `parse_answer`);
    more than one use numbered lines (answer: parse with `parse_batch_answer`).
    """
    if not records:
        raise ValueError("build_messages needs at least one record")
    batched = len(records) > 1
    shown = list(examples) or built_in_examples(ontology)
    system = system_prompt(ontology, batched=batched, template=template, example=not shown)
    return [
        {"role": "system", "content": system},
        *example_messages(shown, ontology, batched=batched),
        {"role": "user", "content": user_content([r.text for r in records])},
    ]


def built_in_examples(ontology: Ontology) -> list[Example]:
    """The built-in worked example, for an ontology with its types' names; else none."""
    names = {t.name for t in ontology.labels}
    return [BUILT_IN_EXAMPLE] if names >= BUILT_IN_EXAMPLE.mentions.keys() else []


def copies_an_example(mentions: Mapping[str, Sequence[str]], text: str, ontology: Ontology) -> bool:
    """True when an answer is the built-in example's answer given for another sentence
    (compared in the wire format: types without mentions, listed or not, are alike)."""
    return any(
        text != example.text and compact(mentions, ontology) == compact(example.mentions, ontology)
        for example in built_in_examples(ontology)
    )


def example_mentions(ontology: Ontology) -> set[tuple[str, str]]:
    """`(type name, mention)` pairs of the built-in example, to flag copies of it."""
    return {
        (name, mention)
        for example in built_in_examples(ontology)
        for name, found in example.mentions.items()
        for mention in found
    }


def example_messages(
    examples: Sequence[Example], ontology: Ontology, *, batched: bool
) -> list[dict[str, str]]:
    """Few-shot turns in the request's own format: a pair per example, or one numbered pair."""
    if not examples:
        return []
    if not batched:
        turns: list[dict[str, str]] = []
        for example in examples:
            turns.append({"role": "user", "content": example.text})
            turns.append({"role": "assistant", "content": answer_json(example.mentions, ontology)})
        return turns
    answers = {str(i): compact(e.mentions, ontology) for i, e in enumerate(examples, 1)}
    # A batch of one example still goes out numbered: the model must see the batched shape.
    return [
        {"role": "user", "content": numbered([e.text for e in examples])},
        {"role": "assistant", "content": _dumps(answers)},
    ]


def answer_json(mentions: Mapping[str, Sequence[str]], ontology: Ontology) -> str:
    """A single-sentence answer as the prompt asks for it: the types that have mentions, in
    ontology order (`{}` when none)."""
    return _dumps(compact(mentions, ontology))


def compact(mentions: Mapping[str, Sequence[str]], ontology: Ontology) -> dict[str, list[str]]:
    """An answer in the wire format: the ontology's types that have mentions, in its order."""
    return {t.name: list(found) for t in ontology.labels if (found := mentions.get(t.name))}


@lru_cache(maxsize=64)
def system_prompt(
    ontology: Ontology, *, batched: bool, template: str | None = None, example: bool = True
) -> str:
    """The system message for `ontology`, in single-sentence or numbered-lines mode.

    `example=True` (no example turns follow) shows the answer's shape in it.
    """
    types = "\n".join(
        f"- {t.name}: {t.description}" if t.description else f"- {t.name}" for t in ontology.labels
    )
    where = "each numbered sentence" if batched else "the sentence"
    one = "an object mapping each type found to its list of mentions ({} if none)"
    answer = f'an object mapping each line number ("1", "2", ...) to {one}' if batched else one
    fmt = f"Answer with JSON only: {answer}."
    if example:
        fmt += "\n" + _shape(ontology, batched=batched)
    # Plain replacement, not str.format: a template may hold JSON braces of its own.
    text = template if template is not None else DEFAULT_TEMPLATE
    return text.replace("{sentences}", where).replace("{types}", types).replace("{format}", fmt)


def response_format(
    ontology: Ontology, batch_size: int, max_mentions: int | None = None
) -> dict[str, Any]:
    """OpenAI's `response_format` (JSON schema) for an answer about `batch_size` records.

    A batch of 1 uses the single-sentence object; larger batches an object keyed "1".."K"
    whose lines share one definition (`task_types.messages.batch_schema`).
    `max_mentions` bounds each type's list (`maxItems`): a model that starts repeating a
    mention ("Tokyo", "Tokyo", ...) is made to close the list rather than loop until
    `max_tokens` cuts it off (llama.cpp, vLLM and Ollama turn the schema into a grammar).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if batch_size == 1:
        name, schema = "ner_answer", _sentence_schema(ontology, max_mentions)
    else:
        name = "ner_batch_answer"
        schema = batch_schema(_sentence_schema(ontology, max_mentions), batch_size, shared=True)
    # Not strict: OpenAI's strict mode requires every property, and a compact answer leaves
    # out the types it has no mention of. Local servers (llama.cpp, vLLM, Ollama) enforce the
    # schema as a grammar either way; OpenAI follows it without the guarantee.
    return {"type": "json_schema", "json_schema": {"name": name, "strict": False, "schema": schema}}


def _sentence_schema(ontology: Ontology, max_mentions: int | None) -> dict[str, Any]:
    names = [t.name for t in ontology.labels]
    mentions: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    if max_mentions is not None:
        mentions["maxItems"] = max_mentions
    # Every type optional: the answer holds those that have mentions.
    return {
        "type": "object",
        "properties": {name: mentions for name in names},
        "additionalProperties": False,
    }


def _shape(ontology: Ontology, *, batched: bool) -> str:
    # An ontology without example turns: a sentence about people and places would mislead.
    shape: dict[str, list[str]] = {}
    if ontology.labels:
        shape[ontology.labels[0].name] = ["<mention as written>", "<next mention>"]
    return "Answer shape: " + _dumps({"1": shape} if batched else shape)


def _dumps(answer: object) -> str:
    # Compact separators: examples are repeated in every request, and spaces cost tokens.
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=False)
