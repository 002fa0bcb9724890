"""NER's labeling half: records, the label set, messages, parsing and predictions."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prelabel.counters import CounterSpec
from prelabel.errors import ItemError
from prelabel.model import ItemResult, LabelSet, Record, RunConfig, Scored, Usage
from task_types.base import Answer, Example, LabelingDefaults, PromptTemplate, RowFields
from task_types.ner import alignment, bio, gold, guess, ontology, parsing, prompts, records
from task_types.ner.model import CONLL, PROMPT_VERSION, NerRecord, NerResult, Unaligned, from_tags
from task_types.verification import Proposal

#: The reason of an unplaced mention that the prompt's worked example holds.
COPIED = "copied from the prompt's worked example; not in the sentence"
#: The reason of an answer that is the prompt's worked example's.
COPIED_ANSWER = "the answer is the prompt's worked example, not this sentence's"


class NerLabeling(LabelingDefaults):
    """Mentions per entity type, placed on the sentence's tokens (`alignment`)."""

    name = "ner"
    prompt_version = PROMPT_VERSION
    record_model = NerRecord
    result_model = NerResult
    counters = (CounterSpec("unaligned", "unaligned mentions", "Mentions not found in the text."),)
    default_labels: LabelSet = CONLL
    reads_conll = True
    gold_field = "ner_tags"

    def record(self, id: str, row: Mapping[str, Any], fields: RowFields) -> Record:
        return records.record_from_row(id, row, fields)

    def tags_named(self, values: Iterable[str] | None) -> frozenset[str]:
        return bio.types_of(values)

    def gold_tags(self, record: Record) -> frozenset[str]:
        assert isinstance(record, NerRecord)
        return bio.types_of(record.gold_tags)

    def read_labels(self, path: Path) -> LabelSet:
        return ontology.load_ontology(path)

    def read_template(self, path: Path) -> PromptTemplate:
        return prompts.load_template(path)

    def labels_from_tags(self, tags: Sequence[str]) -> LabelSet:
        return from_tags(tags)

    def messages(
        self, batch: Sequence[Record], config: RunConfig, examples: Sequence[Example]
    ) -> list[dict[str, str]]:
        return prompts.build_messages(
            _ner(batch),
            self.labels(config),
            examples=examples,
            template=config.labeling.system_template,
        )

    def response_format(self, batch: Sequence[Record], config: RunConfig) -> dict[str, Any]:
        return prompts.response_format(self.labels(config), len(batch), mention_bound(batch))

    def parse(self, content: str, size: int, config: RunConfig) -> list[Answer | ItemError]:
        labels = self.labels(config)
        if size > 1:
            return list(parsing.parse_batch_answer(content, size, labels))
        try:
            return [parsing.parse_answer(content, labels)]
        except ItemError as exc:
            return [exc]

    def predict(
        self, record: Record, answer: Answer, config: RunConfig, usage: Usage
    ) -> ItemResult | str:
        assert isinstance(record, NerRecord)
        labels = self.labels(config)
        if not config.labeling.few_shot and prompts.copies_an_example(answer, record.text, labels):
            return COPIED_ANSWER
        aligned = alignment.align(record, answer, labels)
        # A run with few-shot examples shows no worked example, so nothing is copied from it
        # (and an answer whose mentions all aligned has nothing to flag).
        copied = (
            prompts.example_mentions(labels)
            if aligned.unaligned and not config.labeling.few_shot
            else set()
        )
        return NerResult(
            id=record.id,
            status="labeled",
            entities=aligned.entities,
            tags=aligned.tags,
            unaligned=_flag_copies(aligned.unaligned, copied),
            usage=usage,
            model=config.endpoint.model,
            prompt_version=config.labeling.prompt_version,
        )

    single_label = False
    proposal_noun = "entities"

    def proposals(self, answer: Answer, config: RunConfig) -> list[Proposal]:
        """Each mention of a type the label set has (others are unaligned, not proposed)."""
        known = self.labels(config).by_name()
        return [
            Proposal(name, mention)
            for name, mentions in answer.items()
            if name in known
            for mention in mentions
            if mention.strip()
        ]

    def answer_from(self, proposals: Sequence[Proposal], config: RunConfig) -> Answer:
        answer: dict[str, list[str]] = {t.name: [] for t in self.labels(config).labels}
        for p in proposals:
            answer.setdefault(p.label, []).append(p.text)
        return answer

    def scores(
        self,
        result: ItemResult,
        proposals: Sequence[Proposal],
        confidences: Sequence[float],
        config: RunConfig,
    ) -> tuple[Scored, ...]:
        """Each mention on the entity alignment placed it as (the first of its type and text,
        spacing aside, not taken by an earlier one)."""
        assert isinstance(result, NerResult)
        by_name = self.labels(config).by_name()
        free = list(result.entities)
        scored: list[Scored] = []
        for p, confidence in zip(proposals, confidences, strict=True):
            tag = by_name[p.label].tag if p.label in by_name else p.label
            squashed = "".join(p.text.split())
            entity = next(
                (e for e in free if e.type == tag and "".join(e.text.split()) == squashed), None
            )
            if entity is not None:
                free.remove(entity)
            scored.append(
                Scored(
                    label=tag,
                    confidence=confidence,
                    text=p.text,
                    start=None if entity is None else entity.start,
                    end=None if entity is None else entity.end,
                )
            )
        return tuple(scored)

    def examples(self, records: Iterable[Record], labels: LabelSet) -> list[Example]:
        return gold.examples_from_records(_ner(list(records)), labels)

    def gold(self, record: Record) -> list[tuple[str, str]] | None:
        assert isinstance(record, NerRecord)
        return gold.gold_mentions(record)

    def guess_answer(self, batch: Sequence[Record], labels: LabelSet) -> str:
        return guess.guessed_answer(_ner(batch), labels)

    def oracle_answer(
        self,
        gold: Sequence[tuple[str, str]],
        labels: LabelSet,
        noise: float,
        rng: random.Random | None,
    ) -> dict[str, list[str]]:
        """`{type name: [mention, ...]}` in the compact wire format (only the types that have
        mentions, in label-set order); a corrupted mention is dropped or (as often) given
        another type. Gold types the label set does not list are never asked for, so they
        are left out."""
        names = [t.name for t in labels.labels]
        by_tag = labels.by_tag()
        answer: dict[str, list[str]] = {name: [] for name in names}
        for tag, mention in gold:
            if tag not in by_tag:
                continue
            name = by_tag[tag].name
            if rng is not None and rng.random() < noise:
                others = [n for n in names if n != name]
                if not others or rng.random() < 0.5:
                    continue
                name = rng.choice(others)
            answer[name].append(mention)
        return prompts.compact(answer, labels)


def mention_bound(batch: Sequence[Record]) -> int:
    """The most mentions of one type a sentence of `batch` can hold (one per token), rounded
    up to a power of two so that a run sends a handful of distinct schemas (providers
    compile each schema once, and the first request with a new one waits for that)."""
    longest = max((len(r.tokens) for r in _ner(batch)), default=1)
    return 1 << max(2, (longest - 1).bit_length())


def _flag_copies(
    unaligned: tuple[Unaligned, ...], copied: set[tuple[str, str]]
) -> tuple[Unaligned, ...]:
    """Unplaced mentions that come from the prompt's worked example say so."""
    return tuple(
        u.model_copy(update={"reason": COPIED})
        if u.reason == alignment.NOT_FOUND and (u.type, u.mention) in copied
        else u
        for u in unaligned
    )


def _ner(records: Sequence[Record]) -> list[NerRecord]:
    """`records` as NER's records (a run of this task type stores nothing else)."""
    out = [r for r in records if isinstance(r, NerRecord)]
    if len(out) != len(records):
        raise TypeError("an NER run's records must be NerRecords")
    return out
