"""The oracle: answers prompts with the gold of the sentences it was given.

Everything is precomputed at construction (one JSON answer per known sentence), so that
answering a request is a dictionary lookup and, for a batch, one `json.dumps`. A sentence's
gold, `(tag, value)` pairs in order of appearance, is the task type's (`Labeling.gold`; for
NER, the mentions of its BIO tags).

`noise` corrupts each gold value with that probability, as the task type says
(`Labeling.oracle_answer`; NER drops half of the corrupted mentions and gives the other half
another type). A text is known by its one-line form, as a batch sends it. The draws come from a
`random.Random` seeded with `(seed, text)` (string seeds hash with SHA-512, not Python's
salted `hash`), so a sentence gets the same answer in every request and every rerun. Another
`Draw` (a request's `seed` and a choice's index, for `n` samples) seeds with
`(seed, text, request seed, index)` instead: an independent noisy answer, as reproducible.

A reply carries, beside its content, the answer as a value and the noise-free answer of the
same shape (`gold`), from which the simulator makes up token log-probabilities
(simulator/logprobs.py). `gold_of` gives an item's gold pairs, to answer a verification.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import task_types
from prelabel.errors import ConfigError
from prelabel.model import DEFAULT_TASK, LabelSet, Record

#: An item's answer, in its task type's shape (NER: `{type name: [mention, ...]}`).
Answer = Any

_NUMBERED = re.compile(r"(\d+): (.*)\Z")


#: How the oracle writes JSON: compact, as the prompts' examples show answers and as OpenAI's
#: structured outputs write them (`", "` and `": "` would cost about 3 tokens a CoNLL
#: sentence more).
SEPARATORS = (",", ":")


def answer_text(answer: object) -> str:
    """An answer as the oracle writes it."""
    return json.dumps(answer, separators=SEPARATORS, ensure_ascii=False)


#: Which noisy answer to give: a request's `seed` (None: not given) and a choice's index.
#: `(None, 0)` is the default answer, the one a request without `n` or `seed` gets.
Draw = tuple[int | None, int]
DEFAULT_DRAW: Draw = (None, 0)


@dataclass(frozen=True, slots=True)
class OracleReply:
    """An answer's content and how many of the request's sentences the oracle did not know;
    `answer` is the content as a value, `gold` the noise-free answer of its shape (None for
    an unknown text, or in place of one in a batch)."""

    content: str
    sentences: int
    unknown: list[str]
    answer: Answer = None
    gold: Answer = None


class Oracle:
    """Answers ner-v3 prompts from gold records, optionally with seeded noise."""

    def __init__(
        self,
        records: Iterable[Record],
        ontology: LabelSet | None = None,
        noise: float = 0.0,
        seed: int = 0,
        task: str = DEFAULT_TASK,
    ) -> None:
        if not 0.0 <= noise <= 1.0:
            raise ConfigError(f"oracle noise must be between 0 and 1 (got {noise}); fix --noise")
        gold: dict[str, list[tuple[str, str]]] = {}
        by_id: dict[str, tuple[str, list[tuple[str, str]]]] = {}
        conflicting: set[str] = set()
        labeling = task_types.get(task)
        for record in records:
            mentions = labeling.gold(record)
            if mentions is None:
                continue  # nothing to answer from
            # Texts are known by their one-line form: a batch sends each text on one line.
            text = one_line(record.text)
            by_id[record.id] = (text, mentions)
            # A repeated text keeps its first gold for requests that name no item; a text
            # whose copies disagree is answered per item when the request names its items.
            first = gold.setdefault(text, mentions)
            if first != mentions:
                conflicting.add(text)
        if ontology is None:
            ontology = labeling.labels_from_tags(
                sorted({tag for ms in gold.values() for tag, _ in ms})
            )
        self.ontology = ontology
        self.noise = noise
        self.seed = seed
        self._labeling = labeling
        self._gold = gold
        self._ids = by_id
        # Texts as a verification writes them (every run of whitespace one space).
        self._spaced = {" ".join(text.split()): text for text in gold}
        self._answers: dict[str, Answer] = {
            text: self._named(text, mentions) for text, mentions in gold.items()
        }
        self._clean: dict[str, Answer] = {
            text: self._named(text, mentions, None) for text, mentions in gold.items()
        }
        self._json = {text: answer_text(a) for text, a in self._answers.items()}
        self._by_id: dict[str, tuple[str, Answer]] = {
            item: (text, self._named(text, mentions))
            for item, (text, mentions) in by_id.items()
            if text in conflicting
        }
        self._empty_json = answer_text(self.empty())

    def _named(
        self, text: str, mentions: list[tuple[str, str]], draw: Draw | None = DEFAULT_DRAW
    ) -> Answer:
        """The answer for `mentions` with `draw`'s noise (None: noise-free)."""
        if draw is None or not self.noise:
            rng = None
        elif draw == DEFAULT_DRAW:
            rng = random.Random(f"{self.seed}:{text}")
        else:
            rng = random.Random(f"{self.seed}:{text}:{draw[0]}:{draw[1]}")
        return self._labeling.oracle_answer(mentions, self.ontology, self.noise, rng)

    def _find(self, text: str, item_id: str | None, draw: Draw) -> tuple[Answer, Answer] | None:
        """The (noisy, noise-free) answers for `text`, or None when it is unknown."""
        if item_id is not None:
            known = self._by_id.get(item_id)
            if known is not None and known[0] == text:
                mentions = self._ids[item_id][1]
                noisy = known[1] if draw == DEFAULT_DRAW else self._named(text, mentions, draw)
                return noisy, self._named(text, mentions, None)
        if text not in self._gold:
            return None
        if draw == DEFAULT_DRAW:
            return self._answers[text], self._clean[text]
        return self._named(text, self._gold[text], draw), self._clean[text]

    def gold_of(self, text: str, item_id: str | None = None) -> list[tuple[str, str]] | None:
        """The gold `(tag, value)` pairs of an item, by its id when the oracle knows it and
        its text matches (whitespace aside), else by its text; None when unknown."""
        spaced = " ".join(text.split())
        known = self._ids.get(item_id) if item_id is not None else None
        if known is not None and " ".join(known[0].split()) == spaced:
            return list(known[1])
        original = self._spaced.get(spaced)
        return None if original is None else list(self._gold[original])

    def __len__(self) -> int:
        """The number of distinct gold sentences the oracle knows."""
        return len(self._answers)

    def empty(self) -> Answer:
        """The answer for an item the oracle does not know (NER: `{}`, no type has mentions)."""
        return self._labeling.oracle_answer([], self.ontology, 0.0, None)

    def lookup(self, text: str) -> Answer | None:
        """The (possibly noisy) answer for one item, or None when it is unknown."""
        answer = self._answers.get(one_line(text))
        return None if answer is None else copy.deepcopy(answer)

    def answer(self, messages: Sequence[Mapping[str, Any]], item_ids: Sequence[str] = ()) -> str:
        """The JSON answer to a chat request's messages (see `respond`)."""
        return self.respond(messages, item_ids).content

    def respond(
        self,
        messages: Sequence[Mapping[str, Any]],
        item_ids: Sequence[str] = (),
        draw: Draw = DEFAULT_DRAW,
    ) -> OracleReply:
        """Answer the last user message: one sentence, or K>1 lines `"{i}: {text}"`.

        `item_ids`, when the request names its items (prelabel sends them to local endpoints
        only), picks the right gold for a text whose copies in the dataset disagree; the
        sentence text must still match, so a wrong line never gets another line's answer.
        `draw` picks the noise (see `Draw`). Raises ValueError when there is no user message.
        """
        text = _last_user_text(messages).strip("\n")
        lines = text.split("\n")
        numbered = [_NUMBERED.match(line.rstrip("\r")) for line in lines] if len(lines) > 1 else []
        if not numbered or not all(numbered):
            text = one_line(text)
            found = self._find(text, item_ids[0] if item_ids else None, draw)
            if found is None:
                return OracleReply(self._empty_json, 1, [text], self.empty(), None)
            noisy, clean = found
            default = draw == DEFAULT_DRAW and not (item_ids and item_ids[0] in self._by_id)
            content = self._json[text] if default else answer_text(noisy)
            return OracleReply(content, 1, [], noisy, clean)
        batch: dict[str, Answer] = {}
        golds: dict[str, Answer] = {}
        unknown: list[str] = []
        for i, match in enumerate(numbered):
            assert match is not None  # all(numbered) above
            key, sentence = match.group(1), match.group(2)
            found = self._find(sentence, item_ids[i] if i < len(item_ids) else None, draw)
            if found is None:
                unknown.append(sentence)
                batch[key] = self.empty()
            else:
                batch[key], golds[key] = found
        return OracleReply(
            content=answer_text(batch),
            sentences=len(batch),
            unknown=unknown,
            answer=batch,
            gold=golds,
        )


def one_line(text: str) -> str:
    """`text` as a batched request sends it: its lines joined with spaces
    (`task_types.messages.numbered`)."""
    return " ".join(text.splitlines())


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
