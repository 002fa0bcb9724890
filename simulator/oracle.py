"""The oracle: answers ner-v1 prompts with the gold mentions of the sentences it was given.

Everything is precomputed at construction (one JSON answer per known sentence), so that
answering a request is a dictionary lookup and, for a batch, one `json.dumps`.

A sentence's gold mentions come from its BIO `gold_tags` (IOB2, read tolerantly as IOB1: an
`I-X` that follows `O` or another type starts a mention). A mention's text is the slice of
the record's text from its first token's start to its last token's end, which for
`Record.from_tokens` is `" ".join(tokens[b:e])`.

`noise` corrupts each gold mention with that probability: half of the corrupted mentions are
dropped, the other half relabeled with another type of the ontology. The draws come from a
`random.Random` seeded with `(seed, text)` (string seeds hash with SHA-512, not Python's
salted `hash`), so a sentence gets the same answer in every request and every rerun.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prelabel.errors import ConfigError, DatasetError
from prelabel.model import Ontology, Record

#: `{type name: [mention, ...]}`, every type of the ontology present, in ontology order.
Answer = dict[str, list[str]]

_NUMBERED = re.compile(r"(\d+): (.*)\Z")


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The `(tag type, first token, end token exclusive)` mentions of a BIO tag sequence.

    IOB2 is expected; an `I-X` after `O` or after another type starts a mention (IOB1).
    Raises ValueError on a tag that is neither `O` nor `B-X`/`I-X`.
    """
    spans: list[tuple[str, int, int]] = []
    kind: str | None = None
    start = 0
    for i, tag in enumerate(tags):
        if tag == "O":
            if kind is not None:
                spans.append((kind, start, i))
                kind = None
            continue
        prefix, _, typ = tag.partition("-")
        if prefix not in ("B", "I") or not typ:
            raise ValueError(f"tag {tag!r} at token {i} is not O, B-X or I-X")
        if prefix == "B" or typ != kind:
            if kind is not None:
                spans.append((kind, start, i))
            kind, start = typ, i
    if kind is not None:
        spans.append((kind, start, len(tags)))
    return spans


@dataclass(frozen=True, slots=True)
class OracleReply:
    """An answer's content and how many of the request's sentences the oracle did not know."""

    content: str
    sentences: int
    unknown: list[str]


class Oracle:
    """Answers ner-v1 prompts from gold records, optionally with seeded noise."""

    def __init__(
        self,
        records: Iterable[Record],
        ontology: Ontology | None = None,
        noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= noise <= 1.0:
            raise ConfigError(f"oracle noise must be between 0 and 1 (got {noise}); fix --noise")
        gold: dict[str, list[tuple[str, str]]] = {}
        for record in records:
            # Records without gold tags cannot be answered; a repeated text keeps its first
            # gold, since a prompt carries only the text and cannot tell the copies apart.
            if record.gold_tags is None or record.text in gold:
                continue
            gold[record.text] = _mentions(record)
        if ontology is None:
            ontology = Ontology.from_tags(sorted({tag for ms in gold.values() for tag, _ in ms}))
        self.ontology = ontology
        self.noise = noise
        self.seed = seed
        by_tag = ontology.by_tag()
        self._names: tuple[str, ...] = tuple(t.name for t in ontology.types)
        self._answers: dict[str, Answer] = {}
        self._json: dict[str, str] = {}
        for text, mentions in gold.items():
            # Gold types the ontology does not list are never asked for, so they are left out.
            named = [(by_tag[tag].name, m) for tag, m in mentions if tag in by_tag]
            answer = self._build(named, random.Random(f"{seed}:{text}") if noise else None)
            self._answers[text] = answer
            self._json[text] = json.dumps(answer, ensure_ascii=False)
        self._empty_json = json.dumps(self.empty(), ensure_ascii=False)

    def __len__(self) -> int:
        """The number of distinct gold sentences the oracle knows."""
        return len(self._answers)

    def empty(self) -> Answer:
        """The answer for a sentence with no mentions: every type present, each `[]`."""
        return {name: [] for name in self._names}

    def lookup(self, text: str) -> Answer | None:
        """The (possibly noisy) answer for one sentence, or None when it is unknown."""
        answer = self._answers.get(text)
        return None if answer is None else {k: list(v) for k, v in answer.items()}

    def answer(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The JSON answer to a chat request's messages (see `respond`)."""
        return self.respond(messages).content

    def respond(self, messages: Sequence[Mapping[str, Any]]) -> OracleReply:
        """Answer the last user message: one sentence, or K>1 lines `"{i}: {text}"`.

        Raises ValueError when there is no user message.
        """
        text = _last_user_text(messages).strip("\n")
        lines = text.split("\n")
        numbered = [_NUMBERED.match(line.rstrip("\r")) for line in lines] if len(lines) > 1 else []
        if not numbered or not all(numbered):
            found = self._json.get(text)
            return OracleReply(
                content=self._empty_json if found is None else found,
                sentences=1,
                unknown=[text] if found is None else [],
            )
        batch: dict[str, Answer] = {}
        unknown: list[str] = []
        for match in numbered:
            assert match is not None  # all(numbered) above
            key, sentence = match.group(1), match.group(2)
            answer = self._answers.get(sentence)
            if answer is None:
                unknown.append(sentence)
                answer = self.empty()
            batch[key] = answer
        return OracleReply(
            content=json.dumps(batch, ensure_ascii=False), sentences=len(batch), unknown=unknown
        )

    def _build(self, mentions: list[tuple[str, str]], rng: random.Random | None) -> Answer:
        answer = self.empty()
        for name, mention in mentions:
            if rng is not None and rng.random() < self.noise:
                others = [n for n in self._names if n != name]
                if not others or rng.random() < 0.5:
                    continue
                name = rng.choice(others)
            answer[name].append(mention)
        return answer


def _mentions(record: Record) -> list[tuple[str, str]]:
    """`(tag type, mention text)` of a record's gold mentions, in order of appearance."""
    tags = record.gold_tags or ()
    if len(tags) != len(record.tokens):
        raise DatasetError(
            f"record {record.id}: {len(tags)} gold tags for {len(record.tokens)} tokens; "
            "fix the dataset's tag column"
        )
    try:
        spans = bio_spans(tags)
    except ValueError as exc:
        raise DatasetError(f"record {record.id}: {exc}; use IOB2 tags") from exc
    return [
        (kind, record.text[record.offsets[b][0] : record.offsets[e - 1][1]]) for kind, b, e in spans
    ]


def message_text(message: Mapping[str, Any]) -> str:
    """A chat message's text: its string content, or its text parts joined, or ""."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    raise ValueError("the request has no user message")
