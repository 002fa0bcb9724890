"""The chat messages and the structured-output schema of the classify-v1 wire format.

One text goes out bare, K texts as numbered lines (`task_types.messages`). The answer about
one text is `{"label": "<name>"}` (`classify`) or `{"labels": ["<name>", ...]}`
(`classify-multi`); about K texts, an object keyed "1".."K" holding one of those per line.
Few-shot examples, when a run has them, come between the system message and the texts, as
user/assistant turns in the request's own format (as NER's). No built-in example is shown
without them: the system message spells out the answer's shape, and a made-up text would
lean a small model towards its label.

The system prompt depends only on the label set, the template, single vs batched mode and
single vs multi-label, never on the texts or the batch size, so that every request of a run
starts with the same prefix and providers' prompt caching applies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from prelabel.model import LabelSet
from task_types.base import Example, PromptTemplate
from task_types.classify.model import PROMPT_VERSION, ClassifyRecord
from task_types.messages import batch_schema, numbered, user_content
from task_types.templates import read_template

#: The answer's key about one text.
SINGLE_KEY = "label"
MULTI_KEY = "labels"

#: The system prompt's template. `{texts}` says what to classify ("the text", "each numbered
#: text"), `{labels}` lists the labels with their descriptions, `{format}` is the answer
#: format; `{task}` says how many labels a text takes (one, or every one that applies).
DEFAULT_TEMPLATE = (
    "You are an expert annotator for text classification. {task}\n"
    "Labels:\n"
    "{labels}\n"
    "Rules: answer with label names exactly as written above; never invent a label.\n"
    "{format}"
)
PLACEHOLDERS = ("{labels}", "{format}", "{texts}", "{task}")
_REQUIRED = ("{labels}", "{format}")

#: The most enum values a schema inlines (one list of label names per line of a batch);
#: above it, the batch's lines share one definition (`task_types.messages.batch_schema`).
#: The schema is billed as input, and
#: OpenAI caps a schema's enum values (1,000 in its current documentation, 500 before):
#: GoEmotions' 28 labels at 10 texts a request would inline 280 names, 128 tokens an item in
#: `bench_classify.py`, against 30 shared. AG News' 4 labels stay inlined up to 25 texts.
MAX_INLINE_ENUM_VALUES = 100


def load_template(path: Path) -> PromptTemplate:
    """Read `--prompt-file` with this task's placeholders (`task_types.templates`): its
    version is `classify-v1+custom-<8 hex of its SHA-256>`."""
    return read_template(
        path, prompt_version=PROMPT_VERSION, placeholders=PLACEHOLDERS, required=_REQUIRED
    )


def build_messages(
    records: Sequence[ClassifyRecord],
    labels: LabelSet,
    *,
    multi_label: bool,
    examples: Sequence[Example] = (),
    template: str | None = None,
) -> list[dict[str, str]]:
    """The messages asking the model to classify `records`: system, examples, then the texts."""
    if not records:
        raise ValueError("build_messages needs at least one record")
    batched = len(records) > 1
    system = system_prompt(labels, batched=batched, multi_label=multi_label, template=template)
    return [
        {"role": "system", "content": system},
        *example_messages(examples, labels, batched=batched, multi_label=multi_label),
        {"role": "user", "content": user_content([r.text for r in records])},
    ]


def example_messages(
    examples: Sequence[Example], labels: LabelSet, *, batched: bool, multi_label: bool
) -> list[dict[str, str]]:
    """Few-shot turns in the request's own format: a pair per example, or one numbered pair."""
    if not examples:
        return []
    if not batched:
        turns: list[dict[str, str]] = []
        for example in examples:
            turns.append({"role": "user", "content": example.text})
            turns.append(
                {"role": "assistant", "content": dumps(answer_of(example, labels, multi_label))}
            )
        return turns
    answers = {str(i): answer_of(e, labels, multi_label) for i, e in enumerate(examples, 1)}
    # A batch of one example still goes out numbered: the model must see the batched shape.
    return [
        {"role": "user", "content": numbered([e.text for e in examples])},
        {"role": "assistant", "content": dumps(answers)},
    ]


def answer_of(example: Example, labels: LabelSet, multi_label: bool) -> dict[str, Any]:
    """An example's answer as the prompt asks for it: its label names in label-set order."""
    names = [t.name for t in labels.labels if t.name in example.mentions]
    if multi_label:
        return {MULTI_KEY: names}
    if len(names) != 1:
        raise ValueError(f"a single-label example needs one label, not {names}: {example.text!r}")
    return {SINGLE_KEY: names[0]}


@lru_cache(maxsize=64)
def system_prompt(
    labels: LabelSet, *, batched: bool, multi_label: bool, template: str | None = None
) -> str:
    """The system message for `labels`, in single-text or numbered-lines mode."""
    listed = "\n".join(
        f"- {t.name}: {t.description}" if t.description else f"- {t.name}" for t in labels.labels
    )
    where = "each numbered text" if batched else "the text"
    if multi_label:
        task = (
            f"Tag {where} with every label below that applies to it: often one, sometimes several."
        )
        one = '{"labels": [<label name>, ...]} (every label that applies; [] only if none does)'
    else:
        task = f"Classify {where} with exactly one of the labels below: the one that fits best."
        one = '{"label": <label name>} (exactly one label)'
    if batched:
        fmt = f'Answer with JSON only: an object mapping each line number ("1", "2", ...) to {one}.'
    else:
        fmt = f"Answer with JSON only: {one}."
    # Plain replacement, not str.format: a template may hold JSON braces of its own.
    text = template if template is not None else DEFAULT_TEMPLATE
    return (
        text.replace("{task}", task)
        .replace("{texts}", where)
        .replace("{labels}", listed)
        .replace("{format}", fmt)
    )


def response_format(labels: LabelSet, batch_size: int, *, multi_label: bool) -> dict[str, Any]:
    """OpenAI's `response_format` (strict JSON schema) for an answer about `batch_size` texts.

    The label names are an `enum`, so that a constrained decoder cannot answer anything else.
    A batch of 1 uses the single-text object; larger batches an object keyed "1".."K", every
    key required. A multi-label list is bounded (`maxItems`: the number of labels), so that a
    model repeating a label is made to close the list rather than loop until `max_tokens`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    names = [t.name for t in labels.labels]
    prefix = "classify_multi" if multi_label else "classify"
    if batch_size == 1:
        name, schema = f"{prefix}_answer", _text_schema(names, multi_label)
    else:
        name = f"{prefix}_batch_answer"
        shared = batch_size * len(names) > MAX_INLINE_ENUM_VALUES
        schema = batch_schema(_text_schema(names, multi_label), batch_size, shared=shared)
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def _text_schema(names: Sequence[str], multi_label: bool) -> dict[str, Any]:
    label = {"type": "string", "enum": list(names)}
    if multi_label:
        value: dict[str, Any] = {"type": "array", "items": label, "maxItems": max(1, len(names))}
        key = MULTI_KEY
    else:
        value, key = label, SINGLE_KEY
    return {
        "type": "object",
        "properties": {key: value},
        "required": [key],
        "additionalProperties": False,
    }


def guessed_answer(size: int, labels: LabelSet, *, multi_label: bool) -> str:
    """An answer of plausible length about `size` texts, for `prelabel estimate`: each text
    given the longest label name (one label each, for multi-label too: GoEmotions' test
    items hold 1.17 labels on average, and the longest name makes up for it)."""
    longest = max((t.name for t in labels.labels), key=len, default="label")
    one: dict[str, Any] = {MULTI_KEY: [longest]} if multi_label else {SINGLE_KEY: longest}
    if size == 1:
        return dumps(one)
    return dumps({str(i): one for i in range(1, size + 1)})


def dumps(answer: object) -> str:
    # Compact separators: examples are repeated in every request, and spaces cost tokens.
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=False)
