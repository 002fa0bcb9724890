"""The task-type protocol and its registry, with NER as the first task type."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import task_types
from prelabel.errors import ConfigError, ItemError
from prelabel.model import (
    Endpoint,
    ItemResult,
    LabelingConfig,
    LabelSet,
    Limits,
    Record,
    RunConfig,
    Spend,
    Usage,
)
from task_types.answers import read_batch
from task_types.messages import user_content
from task_types.ner import NER
from task_types.ner.model import CONLL, Entity, NerRecord, NerResult, Unaligned


def test_an_unknown_task_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        task_types.get("sentiment")
    message = str(caught.value)
    assert "\n" not in message
    assert "'sentiment'" in message and "ner" in message
    assert task_types.names() == sorted(task_types.names()) and "ner" in task_types.names()


def test_ner_satisfies_the_protocol() -> None:
    assert isinstance(NER, task_types.Labeling)
    assert isinstance(NER, task_types.TaskType)
    assert task_types.get("ner") is NER
    assert issubclass(NER.record_model, Record) and issubclass(NER.result_model, ItemResult)


def test_a_run_config_defaults_to_ner_and_its_prompt_version_and_labels() -> None:
    config = RunConfig(run_id="r", model="m", base_url="b")
    task = task_types.get(config.labeling.task)
    assert config.labeling.prompt_version == task.prompt_version
    assert task.labels(config) == CONLL
    labeling = config.labeling.model_copy(update={"labels": CONLL.model_copy()})
    assert task.labels(config.model_copy(update={"labeling": labeling})) == CONLL


def test_a_result_counts_what_its_task_type_declares() -> None:
    unaligned = Unaligned(type="PERSON", mention="x", reason="r")
    result = NerResult(id="a", status="labeled", unaligned=(unaligned,) * 3)
    assert set(result.counts()) == {c.name for c in NER.counters} and result.counts() == {
        "unaligned": 3
    }
    assert ItemResult(id="a", status="failed").counts() == {}


def test_ner_records_and_results_keep_their_json_shape() -> None:
    record = NerRecord.from_tokens("a", ["Ann", "left"], ["B-PER", "O"])
    assert set(record.model_dump()) == {"id", "tokens", "text", "offsets", "gold_tags"}
    entity = Entity(type="PER", start=0, end=3, text="Ann")
    result = NerResult(id="a", status="labeled", entities=(entity,), tags=("B-PER", "O"))
    assert set(result.model_dump()) == {
        "id",
        "status",
        "entities",
        "tags",
        "unaligned",
        "error",
        "usage",
        "model",
        "prompt_version",
        "confidence",
        "scores",
    }
    assert NerResult.model_validate_json(result.model_dump_json()) == result


def test_the_ner_answer_goes_from_parse_to_predict() -> None:
    config = RunConfig(run_id="r", model="m", base_url="b", few_shot=1)
    record = NerRecord.from_tokens("a", ["Ann", "met", "Bob", "in", "Rome"])
    [answer] = NER.parse('{"PERSON": ["Ann", "Bob"], "LOCATION": ["Rome"]}', 1, config)
    result = NER.predict(record, answer, config, Usage())
    assert isinstance(result, NerResult)
    assert result.tags == ("B-PER", "O", "B-PER", "O", "B-LOC")
    assert result.model == "m" and result.prompt_version == config.labeling.prompt_version


class TopicResult(ItemResult):
    topic: str = ""


class Topic(task_types.LabelingDefaults):
    """A one-label-per-text task type: mostly a JSON schema, on the shared defaults."""

    name = "topic"
    prompt_version = "topic-v1"
    record_model = Record
    result_model = TopicResult

    def record(self, id: str, row: Mapping[str, Any], fields: task_types.RowFields) -> Record:
        return Record(id=id, text=str(row[fields.text or "text"]))

    def gold_tags(self, record: Record) -> frozenset[str]:
        return frozenset()

    def gold(self, record: Record) -> list[tuple[str, str]] | None:
        return None

    def read_template(self, path: Path) -> task_types.PromptTemplate:
        return task_types.PromptTemplate(path.read_text(), f"{self.prompt_version}+custom")

    def messages(
        self, batch: Sequence[Record], config: RunConfig, examples: Sequence[task_types.Example]
    ) -> list[dict[str, str]]:
        names = ", ".join(t.name for t in self.labels(config).labels)
        system = f'Give each text one topic of: {names}. Answer {{"topic": ...}} per text.'
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": user_content([r.text for r in batch])},
        ]

    def response_format(self, batch: Sequence[Record], config: RunConfig) -> dict[str, Any]:
        names = [t.name for t in self.labels(config).labels]
        one = {"type": "object", "properties": {"topic": {"enum": names}}, "required": ["topic"]}
        return {"type": "json_schema", "json_schema": {"name": "topic", "schema": one}}

    def parse(self, content: str, size: int, config: RunConfig) -> list[object | ItemError]:
        return list(read_batch(content, size, lambda answer: str(answer.get("topic", ""))))

    def predict(
        self, record: Record, answer: object, config: RunConfig, usage: Usage
    ) -> ItemResult | str:
        if answer not in self.labels(config).by_name():
            return f"topic {answer!r} is not a label"
        return TopicResult(id=record.id, status="labeled", topic=str(answer), usage=usage)

    def examples(self, records: Iterable[Record], labels: LabelSet) -> list[task_types.Example]:
        return []

    def guess_answer(self, batch: Sequence[Record], labels: LabelSet) -> str:
        return json.dumps({str(i): {"topic": "x"} for i in range(1, len(batch) + 1)})

    def oracle_answer(self, gold: Sequence[tuple[str, str]], labels: LabelSet, *_: Any) -> object:
        return {"topic": gold[0][0] if gold else ""}


def test_a_task_type_that_is_mostly_a_json_schema_is_a_few_dozen_lines() -> None:
    topic = Topic()
    assert isinstance(topic, task_types.Labeling)
    labels = topic.labels_from_tags(["sport", "politics"])
    config = RunConfig(run_id="r", model="m", base_url="b", task="topic", labels=labels)
    batch = [Record(id="a", text="Arsenal won"), Record(id="b", text="Polls closed")]
    assert topic.messages(batch, config, [])[-1]["content"] == "1: Arsenal won\n2: Polls closed"
    answers = topic.parse('{"1": {"topic": "sport"}, "2": {"topic": "weather"}}', 2, config)
    first, second = (
        topic.predict(r, a, config, Usage()) for r, a in zip(batch, answers, strict=True)
    )
    assert isinstance(first, TopicResult) and first.topic == "sport"
    assert second == "topic 'weather' is not a label"


def flat(config: RunConfig) -> dict[str, Any]:
    """`config` as written before RunConfig grouped its settings."""
    data = config.model_dump(mode="json")
    del data["delivery"]  # newer than the flat shape: such runs were all realtime
    del data["confidence"]  # newer too: such runs measured none
    for group in ("endpoint", "limits", "spend", "labeling"):
        data.update(data.pop(group))
    return data


def test_a_run_config_written_before_task_types_still_reads() -> None:
    config = RunConfig(
        run_id="r",
        endpoint=Endpoint(model="m", base_url="b"),
        labeling=LabelingConfig(labels=CONLL),
    )
    old = flat(config)
    old["ontology"] = {"types": old.pop("labels")["labels"]}
    del old["task"]
    assert RunConfig.model_validate_json(json.dumps(old)) == config


def test_a_run_config_written_flat_reads_into_its_groups() -> None:
    old = {
        "run_id": "r",
        "model": "m",
        "base_url": "http://e/v1",
        "rpm": 60,
        "tpm": None,
        "max_tokens": 256,
        "temperature": 0.5,
        "reasoning_effort": "low",
        "batch_size": 4,
        "shard_size": 20,
        "task": "ner",
        "prompt_version": "ner-v1",
        "labels": {"labels": [{"name": "PERSON", "tag": "PER", "description": ""}]},
        "dataset": "d",
        "split": "test",
        "total": 80,
        "shards": 4,
        "created_at": 12.5,
        "few_shot": 3,
        "few_shot_strategy": "random",
        "response_format": "json_object",
        "system_template": "Label {labels}",
        "cache": False,
        "budget_usd": 2.0,
        "budget_tokens": 1000,
        "price_input": 0.15,
        "price_output": 0.6,
    }
    config = RunConfig.model_validate_json(json.dumps(old))
    assert config.endpoint == Endpoint(
        model="m",
        base_url="http://e/v1",
        max_tokens=256,
        temperature=0.5,
        reasoning_effort="low",
        response_format="json_object",
        cache=False,
    )
    assert config.limits == Limits(rpm=60, batch_size=4, shard_size=20)
    assert config.spend == Spend(
        budget_usd=2.0, budget_tokens=1000, price_input=0.15, price_output=0.6
    )
    assert config.labeling.labels.labels[0].tag == "PER"
    assert (config.labeling.few_shot, config.labeling.system_template) == (3, "Label {labels}")
    assert (config.dataset, config.total, config.shards, config.created_at) == ("d", 80, 4, 12.5)
    assert flat(config) == {**old, "price_cached_input": None}  # a field added since
    # What this version writes reads back as it was.
    assert RunConfig.model_validate_json(config.model_dump_json()) == config
