"""The task-type protocol and its registry, with NER as the first task type."""

from __future__ import annotations

import pytest

import task_types
from prelabel.errors import ConfigError
from prelabel.model import ItemResult, Record, RunConfig, Usage
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
    task = task_types.get(config.task)
    assert config.prompt_version == task.prompt_version
    assert task.labels(config) == CONLL
    assert task.labels(config.model_copy(update={"labels": CONLL.model_copy()})) == CONLL


def test_a_result_counts_what_its_task_type_declares() -> None:
    unaligned = Unaligned(type="PERSON", mention="x", reason="r")
    result = NerResult(id="a", status="labeled", unaligned=(unaligned,) * 3)
    assert set(result.counts()) == set(NER.counters) and result.counts() == {"unaligned": 3}
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
    }
    assert NerResult.model_validate_json(result.model_dump_json()) == result


def test_the_ner_answer_goes_from_parse_to_predict() -> None:
    config = RunConfig(run_id="r", model="m", base_url="b", few_shot=1)
    record = NerRecord.from_tokens("a", ["Ann", "met", "Bob", "in", "Rome"])
    [answer] = NER.parse('{"PERSON": ["Ann", "Bob"], "LOCATION": ["Rome"]}', 1, config)
    result = NER.predict(record, answer, config, Usage())
    assert isinstance(result, NerResult)
    assert result.tags == ("B-PER", "O", "B-PER", "O", "B-LOC")
    assert result.model == "m" and result.prompt_version == config.prompt_version
