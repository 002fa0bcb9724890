"""Classification's labeling half: the classify-v1 prompts and strict enum schemas, reading
answers and repairing their labels, predictions, the few-shot pool, the simulator's gold
answers, and the labeler end to end through an in-process transport (real Redis)."""

from __future__ import annotations

import asyncio
import csv
import difflib
import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
import redis.asyncio

import task_types
from prelabel.errors import ConfigError, ItemError
from prelabel.keys import RunKeys
from prelabel.model import Label, LabelSet, RunConfig, Usage
from prelabel.settings import load_settings
from prelabel.store import RunStore
from simulator import Oracle
from task_types import Example
from task_types.classify.model import PROMPT_VERSION, ClassifyRecord, ClassifyResult, Repair
from task_types.classify.parsing import NEAR_MISS, fold, match_labels
from task_types.classify.prompts import (
    DEFAULT_TEMPLATE,
    MAX_INLINE_ENUM_VALUES,
    build_messages,
    load_template,
    response_format,
)
from workers.fewshot import pool_to_json
from workers.json_mode import SchemaRefusals
from workers.labeler import ShardLabeler
from workers.transports import ChatRequest, Completion, ContextWindow, SchemaRefused, Transport

AG_NEWS = LabelSet(
    labels=(
        Label(name="World", tag="World", description="world news, politics, conflicts"),
        Label(name="Sports", tag="Sports"),
        Label(name="Business", tag="Business", description="companies, markets, the economy"),
        Label(name="Sci/Tech", tag="Sci/Tech"),
    )
)
#: GoEmotions' emotions.txt, in its order.
EMOTIONS = [
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
]
GOEMOTIONS = LabelSet(labels=tuple(Label(name=e, tag=e) for e in EMOTIONS))
#: A label whose name (what the model sees) differs from its tag (what the dataset says).
RENAMED = LabelSet(
    labels=(
        Label(name="positive", tag="POS", description="the writer likes it"),
        Label(name="negative", tag="NEG", description="the writer does not"),
    )
)
SINGLE = task_types.get("classify")
MULTI = task_types.get("classify-multi")
NEWS = ClassifyRecord(
    id="n1",
    text="Fears for T N pension after talks\nUnions representing workers say they are "
    "'disappointed' after talks.",
    gold=("Business",),
)
RECORDS = [
    NEWS,
    ClassifyRecord(id="n2", text="Phelps wins again", gold=("Sports",)),
    ClassifyRecord(id="n3", text="New chip is faster", gold=("Sci/Tech",)),
]


def config(task: str = "classify", labels: LabelSet = AG_NEWS, **more: Any) -> RunConfig:
    return RunConfig(
        run_id="cls-test",
        model="gpt-4o-mini",
        base_url="https://llm.example/v1",
        task=task,
        labels=labels,
        **{"prompt_version": PROMPT_VERSION, **more},
    )


def system(records: list[ClassifyRecord], labels: LabelSet = AG_NEWS, multi: bool = False) -> str:
    return build_messages(records, labels, multi_label=multi)[0]["content"]


# --- messages ---------------------------------------------------------------------------------


def test_a_single_text_goes_out_bare_after_a_system_prompt_listing_the_labels() -> None:
    messages = SINGLE.messages([NEWS], config(), [])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"] == NEWS.text  # the line break kept: one text, as it is
    prompt = messages[0]["content"]
    assert "- World: world news, politics, conflicts\n- Sports\n" in prompt
    assert "- Business: companies, markets, the economy\n- Sci/Tech\n" in prompt
    assert "exactly one of the labels" in prompt
    assert '{"label": <label name>}' in prompt and "line number" not in prompt


def test_a_batch_goes_out_as_numbered_lines_one_per_text() -> None:
    user = SINGLE.messages(RECORDS, config(), [])[-1]["content"]
    assert user.split("\n") == [
        "1: Fears for T N pension after talks Unions representing workers say they are "
        "'disappointed' after talks.",
        "2: Phelps wins again",
        "3: New chip is faster",
    ]
    prompt = system(RECORDS)
    assert "each numbered text" in prompt and 'line number ("1", "2", ...)' in prompt


def test_multi_label_asks_for_every_label_that_applies() -> None:
    prompt = system(RECORDS[:1], GOEMOTIONS, multi=True)
    assert "every label below that applies" in prompt and "exactly one" not in prompt
    assert '{"labels": [<label name>, ...]}' in prompt
    assert all(f"- {e}\n" in prompt or prompt.endswith(f"- {e}") for e in EMOTIONS[:-1])


def test_the_system_prompt_is_the_same_for_every_request_of_a_mode() -> None:
    """Prompt caching: the prefix depends on the labels and the mode, never on the texts."""
    other = [ClassifyRecord(id="x", text="Something else entirely"), *RECORDS[1:]]
    assert system(RECORDS[:1]) == system(other[:1])
    assert system(RECORDS) == system(other) == system(RECORDS[:2]) == system(other[:2] * 10)
    assert system(RECORDS[:1]) != system(RECORDS)


def test_few_shot_examples_are_turns_in_the_requests_own_format() -> None:
    examples = [
        Example("Stocks fall", {"Business": ()}),
        Example("Goal!\nA late winner", {"Sports": ()}),
    ]
    single = SINGLE.messages([NEWS], config(), examples)
    assert [m["role"] for m in single] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert [m["content"] for m in single[1:5]] == [
        "Stocks fall",
        '{"label":"Business"}',
        "Goal!\nA late winner",
        '{"label":"Sports"}',
    ]
    batched = SINGLE.messages(RECORDS, config(), examples)
    assert [m["role"] for m in batched] == ["system", "user", "assistant", "user"]
    assert batched[1]["content"] == "1: Stocks fall\n2: Goal! A late winner"
    assert json.loads(batched[2]["content"]) == {
        "1": {"label": "Business"},
        "2": {"label": "Sports"},
    }
    # The examples do not change the system prompt: the prefix stays cacheable.
    assert single[0] == SINGLE.messages([NEWS], config(), [])[0]


def test_a_multi_label_example_answers_its_labels_in_the_label_sets_order() -> None:
    example = Example("So happy for you, love it", {"love": (), "joy": ()})
    messages = MULTI.messages(RECORDS[:1], config("classify-multi", GOEMOTIONS), [example])
    assert messages[2]["content"] == '{"labels":["joy","love"]}'


# --- prompt files ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_prompt_file_sets_the_system_prompt_and_a_versioned_hash(
    tmp_path: Path, suffix: str
) -> None:
    text = 'Sort {texts} by topic. {task}\nTopics:\n{labels}\n{format}\nNever output {"a": 1}.'
    path = tmp_path / f"prompt{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"system": text}))
    else:
        path.write_text(f"system = {json.dumps(text)}\n")
    template = SINGLE.read_template(path)
    assert re.fullmatch(rf"{PROMPT_VERSION}\+custom-[0-9a-f]{{8}}", template.version)
    cfg = config(system_template=template.system, prompt_version=template.version)
    prompt = SINGLE.messages(RECORDS, cfg, [])[0]["content"]
    assert prompt.startswith("Sort each numbered text by topic. Classify each numbered text")
    assert "Topics:\n- World: world news" in prompt and 'Never output {"a": 1}.' in prompt
    assert "line number" in prompt
    result = SINGLE.predict(NEWS, ("Business",), cfg, Usage())
    assert isinstance(result, ClassifyResult) and result.prompt_version == template.version
    other = tmp_path / f"other{suffix}"
    other.write_text(path.read_text().replace("Sort", "Order"))
    assert load_template(other).version != template.version


def test_the_default_template_gives_the_built_in_prompt() -> None:
    for size in (1, 3):
        for multi in (False, True):
            built = build_messages(
                RECORDS[:size], AG_NEWS, multi_label=multi, template=DEFAULT_TEMPLATE
            )
            assert built == build_messages(RECORDS[:size], AG_NEWS, multi_label=multi)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('system = "Classify {labels}"', "needs {format}"),
        ('system = "{format}"', "needs {labels}"),
        ('system = "{labels} {format} {types}"', "unknown placeholder(s) {types}"),
        ('system = "{labels} {format}"\nuser = "x"', "exactly one key"),
        ("system = ", "not valid TOML"),
    ],
)
def test_bad_prompt_files_name_the_file_and_the_fix(
    tmp_path: Path, content: str, needle: str
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        SINGLE.read_template(path)
    assert needle in str(caught.value) and str(path) in str(caught.value)


# --- response_format ---------------------------------------------------------------------------


def errors(instance: Any, fmt: dict[str, Any]) -> list[str]:
    """Errors of `instance` against the format's schema (empty when it is valid)."""
    schema = fmt["json_schema"]["schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(instance)]


def objects(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [o for value in node for o in objects(value)]
    if not isinstance(node, dict):
        return []
    found = [node] if node.get("type") == "object" else []
    return found + [o for value in node.values() for o in objects(value)]


def test_the_single_label_schema_is_a_strict_enum_of_the_label_names() -> None:
    fmt = SINGLE.response_format([NEWS], config(labels=RENAMED))
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", fmt["json_schema"]["name"])
    assert fmt["json_schema"]["schema"]["properties"]["label"]["enum"] == ["positive", "negative"]
    assert errors({"label": "positive"}, fmt) == []
    for bad in (
        {"label": "POS"},  # the tag is not what the model answers with
        {"label": "neutral"},
        {"label": ["positive"]},
        {"labels": ["positive"]},
        {"label": "positive", "why": "it says so"},
        {},
        {"1": {"label": "positive"}},
    ):
        assert errors(bad, fmt) != [], bad


def test_the_multi_label_schema_is_a_bounded_list_of_names() -> None:
    fmt = MULTI.response_format([NEWS], config("classify-multi", GOEMOTIONS))
    assert errors({"labels": ["joy", "love"]}, fmt) == []
    assert errors({"labels": []}, fmt) == []  # an empty set is an answer, counted as such
    assert errors({"labels": ["joy", "happiness"]}, fmt) != []
    assert errors({"labels": "joy"}, fmt) != []
    assert errors({"label": "joy"}, fmt) != []
    assert errors({"labels": ["joy"] * (len(EMOTIONS) + 1)}, fmt) != []  # a looping model


@pytest.mark.parametrize(
    ("task", "labels"), [("classify", AG_NEWS), ("classify-multi", GOEMOTIONS)]
)
def test_a_batch_schema_requires_every_line_and_nothing_else(task: str, labels: LabelSet) -> None:
    labeling = task_types.get(task)
    fmt = labeling.response_format(RECORDS, config(task, labels))
    first = labels.labels[0].name
    one = {"labels": [first]} if task == "classify-multi" else {"label": first}
    good = {"1": one, "2": one, "3": one}
    assert errors(good, fmt) == []
    assert errors({"1": one, "2": one}, fmt) != []
    assert errors({**good, "4": one}, fmt) != []
    assert errors({**good, "2": {"label": "Elsewhere", "labels": ["Elsewhere"]}}, fmt) != []


@pytest.mark.parametrize("size", [1, 3, 25])
@pytest.mark.parametrize(
    ("task", "labels"), [("classify", AG_NEWS), ("classify-multi", GOEMOTIONS)]
)
def test_every_object_in_the_schema_is_strict(size: int, task: str, labels: LabelSet) -> None:
    """OpenAI's strict mode wants every property required and no additional properties."""
    fmt = task_types.get(task).response_format(
        [ClassifyRecord(id=str(i), text="t") for i in range(size)], config(task, labels)
    )
    for schema in objects(fmt["json_schema"]["schema"]):
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) == set(schema["properties"])


def test_a_large_batch_schema_shares_one_definition_of_the_answer() -> None:
    """28 labels at 25 texts would inline 700 enum values, past OpenAI's cap: the lines share
    one `$defs` entry, which still rejects a wrong name on any line; 4 labels stay inlined."""
    batch = [ClassifyRecord(id=str(i), text="t") for i in range(25)]
    assert 25 * len(EMOTIONS) > MAX_INLINE_ENUM_VALUES >= 25 * len(AG_NEWS.labels)
    fmt = MULTI.response_format(batch, config("classify-multi", GOEMOTIONS))
    schema = fmt["json_schema"]["schema"]
    assert schema["properties"]["1"] == {"$ref": "#/$defs/line"}
    assert json.dumps(schema).count('"enum"') == 1
    good = {str(i): {"labels": ["joy"]} for i in range(1, 26)}
    assert errors(good, fmt) == []
    assert errors({**good, "25": {"labels": ["glee"]}}, fmt) != []
    inlined = SINGLE.response_format(batch, config())["json_schema"]["schema"]
    assert "$defs" not in inlined and json.dumps(inlined).count('"enum"') == 25


def test_response_format_needs_a_positive_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        response_format(AG_NEWS, 0, multi_label=False)


# --- parsing -----------------------------------------------------------------------------------


def parse(content: str, task: str = "classify", size: int = 1) -> list[Any]:
    return task_types.get(task).parse(content, size, config(task))


@pytest.mark.parametrize(
    ("content", "given"),
    [
        ('{"label": "Sports"}', ("Sports",)),
        ('```json\n{"label": "Sci/Tech"}\n```', ("Sci/Tech",)),
        ('The answer is {"label": "World"}.', ("World",)),
        ("{'label': 'World'}", ("World",)),
        ('{"Label": ["Business"]}', ("Business",)),  # a list of one, another casing
        ('{"answer": {"category": "Sports"}}', ("Sports",)),  # wrapped, another key
        ('{"label": " Sports "}', ("Sports",)),
        ("Sports", ("Sports",)),  # not JSON at all: a bare name
        ('"Sports".', ("Sports",)),
        ('"Sports"', ("Sports",)),
    ],
)
def test_single_label_answers_are_read_however_they_are_wrapped(
    content: str, given: tuple[str, ...]
) -> None:
    assert parse(content) == [given]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"label": "Sports", "', "not JSON"),
        ("", "empty"),
        ('{"topic": "Sports"}', 'no "label" key'),
        ('{"label": null}', "no label"),
        ('{"label": ["Sports", "World"]}', "gives 2 labels"),
        ('{"label": {"name": "Sports"}}', "not a name"),
        (
            "I think this is about sports, but it could also be business news in a way.\nOr not.",
            "not JSON",
        ),
    ],
)
def test_single_label_answers_that_cannot_be_read_are_item_errors(content: str, why: str) -> None:
    (answer,) = parse(content)
    assert isinstance(answer, ItemError) and why in answer.message


@pytest.mark.parametrize(
    ("content", "given"),
    [
        ('{"labels": ["joy", "love"]}', ("joy", "love")),
        ('{"labels": "joy"}', ("joy",)),
        ('{"labels": "joy, love"}', ("joy", "love")),
        ('{"label": "joy"}', ("joy",)),
        ('{"labels": []}', ()),
        ('{"labels": null}', ()),
        ('{"labels": ["joy", null, ""]}', ("joy",)),
    ],
)
def test_multi_label_answers_are_read(content: str, given: tuple[str, ...]) -> None:
    assert parse(content, "classify-multi") == [given]


def test_a_looping_multi_label_answer_is_an_item_error() -> None:
    (answer,) = parse(json.dumps({"labels": ["joy"] * 1000}), "classify-multi")
    assert isinstance(answer, ItemError) and "looping" in answer.message


def test_batch_lines_that_are_missing_or_unreadable_are_item_errors_in_their_slots() -> None:
    content = json.dumps({"1": {"label": "Sports"}, "3": {"label": ["World", "Sports"]}, "4": "x"})
    one, two, three, four = parse(content, size=4)
    assert one == ("Sports",)
    assert isinstance(two, ItemError) and "line 2 is missing" in two.message
    assert isinstance(three, ItemError) and "line 3: answer gives 2 labels" in three.message
    assert isinstance(four, ItemError) and "line 4 is not a JSON object" in four.message
    broken = parse('{"1": {"label": "Sports"}, "2": {"lab', size=2)
    assert all(isinstance(a, ItemError) for a in broken)


def test_a_batch_answered_as_a_list_is_read_by_position() -> None:
    content = json.dumps([{"labels": ["joy"]}, {"labels": []}])
    assert parse(content, "classify-multi", size=2) == [("joy",), ()]


# --- matching and repair -------------------------------------------------------------------------


def test_an_exact_name_is_its_label_without_a_repair() -> None:
    assert match_labels(("Sci/Tech",), AG_NEWS) == (("Sci/Tech",), ())
    assert match_labels(("positive",), RENAMED) == (("POS",), ())


@pytest.mark.parametrize(
    ("given", "tag", "how"),
    [
        ("sports", "Sports", "case and punctuation aside"),
        ("SCI-TECH", "Sci/Tech", "case and punctuation aside"),
        ("sci tech", "Sci/Tech", "case and punctuation aside"),
        ("World.", "World", "case and punctuation aside"),
        ("Sprots", "Sports", "a near-miss spelling (similarity 0.83)"),
        ("Wrold", "World", "a near-miss spelling (similarity 0.80)"),
        ("Busines", "Business", "a near-miss spelling (similarity 0.93)"),
    ],
)
def test_a_near_miss_is_read_as_its_label_and_says_so(given: str, tag: str, how: str) -> None:
    tags, repairs = match_labels((given,), AG_NEWS)
    assert tags == (tag,)
    assert repairs == (Repair(given=given, label=tag, reason=f"read as {tag}: {how}"),)


def test_the_datasets_tag_for_a_renamed_label_is_that_label() -> None:
    tags, (repair,) = match_labels(("NEG",), RENAMED)
    assert tags == ("NEG",) and repair.label == "NEG" and "its dataset tag" in repair.reason


@pytest.mark.parametrize(
    ("given", "labels"),
    [
        ("Technology", AG_NEWS),  # another word for a label is not a spelling of it
        ("Science/Technology", AG_NEWS),
        ("World News", AG_NEWS),
        ("Politics", AG_NEWS),
        ("???", AG_NEWS),
        ("jo", GOEMOTIONS),  # too short to be read as a near miss of joy
        ("nervous", GOEMOTIONS),
        ("annoyed", GOEMOTIONS),
        ("happiness", GOEMOTIONS),
    ],
)
def test_a_label_with_nothing_close_is_outside_the_set(given: str, labels: LabelSet) -> None:
    assert match_labels((given,), labels) == (
        (),
        (Repair(given=given, label=None, reason="not one of the labels"),),
    )


def test_a_near_miss_of_two_labels_alike_is_outside_the_set() -> None:
    twins = LabelSet(labels=(Label(name="cart", tag="cart"), Label(name="card", tag="card")))
    tags, (repair,) = match_labels(("carx",), twins)
    assert tags == () and repair.label is None
    folded = LabelSet(labels=(Label(name="a-b", tag="x"), Label(name="A B", tag="y")))
    tags, (repair,) = match_labels(("ab",), folded)
    assert tags == () and repair.reason == "names more than one label"


def test_only_approval_and_disapproval_are_near_misses_of_each_other() -> None:
    """The threshold sits above the closest two AG News labels; of GoEmotions', one pair is
    within it, which the margin keeps apart (next test)."""
    for names in ([t.name for t in AG_NEWS.labels], EMOTIONS):
        close = {
            (a, b)
            for a in names
            for b in names
            if a < b and difflib.SequenceMatcher(None, fold(a), fold(b)).ratio() >= NEAR_MISS
        }
        assert close == (set() if names[0] == "World" else {("approval", "disapproval")})


@pytest.mark.parametrize(("labels"), [AG_NEWS, GOEMOTIONS], ids=["ag_news", "goemotions"])
def test_every_one_typo_spelling_of_a_label_of_five_letters_or_more_is_that_label(
    labels: LabelSet,
) -> None:
    for name in (t.name for t in labels.labels if len(fold(t.name)) >= 5):
        for i in range(len(name)):
            for typo in (
                {
                    name[:i] + name[i + 1 : i + 2] + name[i] + name[i + 2 :],  # two letters swapped
                    name[:i] + name[i + 1 :],  # one dropped
                    name[:i] + name[i] + name[i:],  # one doubled
                }
                - {name}
            ):
                tags, repairs = match_labels((typo,), labels)
                assert tags == (name,), typo
                assert repairs[0].label == name, typo


def test_multi_label_keeps_the_labels_in_the_sets_order_once_each() -> None:
    tags, repairs = match_labels(("love", "Joy", "joy", "glee"), GOEMOTIONS)
    assert tags == ("joy", "love")
    assert [(r.given, r.label) for r in repairs] == [("Joy", "joy"), ("glee", None)]


# --- predict -----------------------------------------------------------------------------------


def test_predict_gives_the_tags_with_the_runs_model_and_prompt_version() -> None:
    usage = Usage(prompt_tokens=7, completion_tokens=3, requests=1)
    result = SINGLE.predict(NEWS, ("business",), config(), usage)
    assert isinstance(result, ClassifyResult)
    assert result.status == "labeled" and result.labels == ("Business",)
    assert result.model == "gpt-4o-mini" and result.prompt_version == PROMPT_VERSION
    assert result.usage == usage
    assert result.counts() == {"repaired": 1, "outside": 0, "empty": 0}


def test_a_single_label_answer_outside_the_set_fails_naming_the_answer_and_the_labels() -> None:
    reason = SINGLE.predict(NEWS, ("Technology",), config(), Usage())
    assert reason == (
        "answered 'Technology', not one of the labels (World, Sports, Business, Sci/Tech)"
    )


def test_multi_label_drops_what_is_outside_and_keeps_the_rest() -> None:
    cfg = config("classify-multi", GOEMOTIONS)
    result = MULTI.predict(NEWS, ("glee", "Love", "joy"), cfg, Usage())
    assert isinstance(result, ClassifyResult) and result.labels == ("joy", "love")
    assert result.counts() == {"repaired": 1, "outside": 1, "empty": 0}


@pytest.mark.parametrize("given", [(), ("glee",)])
def test_an_empty_multi_label_answer_is_labeled_with_no_labels_and_counted(
    given: tuple[str, ...],
) -> None:
    result = MULTI.predict(NEWS, given, config("classify-multi", GOEMOTIONS), Usage())
    assert isinstance(result, ClassifyResult)
    assert result.status == "labeled" and result.labels == ()
    assert result.counts() == {"repaired": 0, "outside": len(given), "empty": 1}


def test_the_counters_are_the_ones_results_count() -> None:
    result = ClassifyResult(id="x", status="labeled")
    for labeling in (SINGLE, MULTI):
        assert [c.name for c in labeling.counters] == list(result.counts())
        assert len({c.label for c in labeling.counters}) == 3
        assert all(c.help and c.metric.startswith("prelabel_") for c in labeling.counters)


# --- gold, examples, guesses, the oracle's answers ----------------------------------------------


def test_gold_is_each_tag_with_no_value() -> None:
    assert SINGLE.gold(NEWS) == [("Business", "")]
    assert MULTI.gold(ClassifyRecord(id="m", text="t", gold=("joy", "love"))) == [
        ("joy", ""),
        ("love", ""),
    ]
    assert SINGLE.gold(ClassifyRecord(id="u", text="t")) is None


def test_the_few_shot_pool_holds_each_gold_text_once_by_label_name() -> None:
    records = [
        ClassifyRecord(id="1", text="Good", gold=("POS",)),
        ClassifyRecord(id="2", text="Good", gold=("POS",)),  # a repeated text
        ClassifyRecord(id="3", text="No gold"),
        ClassifyRecord(id="4", text="Mixed", gold=("NEU",)),  # a tag the set does not list
        ClassifyRecord(id="5", text="Bad", gold=("NEG",)),
    ]
    assert SINGLE.examples(records, RENAMED) == [
        Example("Good", {"positive": ()}),
        Example("Bad", {"negative": ()}),
    ]
    multi = [
        ClassifyRecord(id="1", text="Yay, love it", gold=("love", "joy", "glee")),
        ClassifyRecord(id="2", text="Hm", gold=()),
        ClassifyRecord(id="3", text="Whee", gold=("glee",)),
    ]
    pool = MULTI.examples(multi, GOEMOTIONS)
    assert pool == [Example("Yay, love it", {"joy": (), "love": ()}), Example("Hm", {})]
    assert list(pool[0].mentions) == ["joy", "love"]


def test_a_guessed_answer_reads_back_as_labels_of_the_set() -> None:
    for labeling, task, labels in (
        (SINGLE, "classify", AG_NEWS),
        (MULTI, "classify-multi", GOEMOTIONS),
    ):
        for batch in (RECORDS[:1], RECORDS):
            guess = labeling.guess_answer(batch, labels)
            answers = labeling.parse(guess, len(batch), config(task, labels))
            for record, answer in zip(batch, answers, strict=True):
                result = labeling.predict(record, answer, config(task, labels), Usage())
                assert isinstance(result, ClassifyResult) and len(result.labels) == 1
    assert json.loads(SINGLE.guess_answer(RECORDS[:1], AG_NEWS)) == {"label": "Business"}


def test_the_oracle_answers_gold_and_noise_changes_it() -> None:
    assert SINGLE.oracle_answer([("Sci/Tech", "")], AG_NEWS, 0.0, None) == {"label": "Sci/Tech"}
    assert SINGLE.oracle_answer([("POS", "")], RENAMED, 0.0, None) == {"label": "positive"}
    assert SINGLE.oracle_answer([], AG_NEWS, 0.0, None) == {"label": "World"}
    gold = [("love", ""), ("joy", "")]
    assert MULTI.oracle_answer(gold, GOEMOTIONS, 0.0, None) == {"labels": ["joy", "love"]}
    assert MULTI.oracle_answer([], GOEMOTIONS, 0.0, None) == {"labels": []}
    rng = random.Random(1)
    for _ in range(50):
        noisy = SINGLE.oracle_answer([("Sports", "")], AG_NEWS, 1.0, rng)
        assert noisy["label"] in {"World", "Business", "Sci/Tech"}
        labels = MULTI.oracle_answer(gold, GOEMOTIONS, 1.0, rng)["labels"]
        assert not {"joy", "love"} & set(labels) and len(labels) <= 2
        assert labels == [e for e in EMOTIONS if e in labels]


def test_noise_corrupts_about_that_share_of_single_labels() -> None:
    rng = random.Random(7)
    wrong = sum(
        SINGLE.oracle_answer([("Sports", "")], AG_NEWS, 0.2, rng) != {"label": "Sports"}
        for _ in range(2000)
    )
    assert 300 < wrong < 500


# --- the labeler, end to end through an in-process transport --------------------------------------

RUN = "cls-seam-run"
BATCH = [
    ClassifyRecord(id=f"t{n}", text=f"Title {n}\nDescription {n}", gold=(gold,))
    for n, gold in enumerate(["World", "Sports", "Business", "Sci/Tech"])
]
ANSWERS = {r.id: {"label": (r.gold or ("",))[0]} for r in BATCH}


class MockTransport:
    """Answers each request with `handler(request)`, and keeps the requests."""

    def __init__(self, handler: Callable[[ChatRequest], Completion]) -> None:
        self.handler = handler
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        return self.handler(request)

    async def context_window(self) -> ContextWindow:
        return ContextWindow(128_000, "the mock")


def reply(request: ChatRequest, missing: tuple[str, ...] = ()) -> Completion:
    """Each item's gold label; the batch lines of the items in `missing` left out."""
    ids = request.item_ids
    if len(ids) == 1:
        content = json.dumps(ANSWERS[ids[0]])
    else:
        content = json.dumps({str(n): ANSWERS[i] for n, i in enumerate(ids, 1) if i not in missing})
    return Completion(content, prompt_tokens=10 * len(ids), completion_tokens=5, simulated=False)


def label(
    redis_url: str,
    transport: Transport,
    refusals: SchemaRefusals | None = None,
    records: list[ClassifyRecord] = BATCH,
    **settings: Any,
) -> dict[str, ClassifyResult]:
    async def main() -> dict[str, ClassifyResult]:
        client = redis.asyncio.Redis.from_url(redis_url)
        cfg = config(**settings).model_copy(update={"run_id": RUN})
        store = RunStore(redis.Redis.from_url(redis_url))
        try:
            labeler = ShardLabeler(load_settings(), cfg, transport, client, store, refusals)
            await labeler.label(records)
            raw = await client.hgetall(RunKeys(RUN).results)
            return {k.decode(): ClassifyResult.model_validate_json(v) for k, v in raw.items()}
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_a_batch_of_texts_is_labeled_and_a_partial_answer_is_asked_again_in_halves(
    redis_url: str, redis_client: redis.Redis
) -> None:
    transport = MockTransport(lambda request: reply(request, missing=("t1", "t2")))
    results = label(redis_url, transport, batch_size=4)
    assert [r.item_ids for r in transport.requests] == [("t0", "t1", "t2", "t3"), ("t1",), ("t2",)]
    first = transport.requests[0]
    assert first.messages[-1]["content"].startswith("1: Title 0 Description 0\n2: Title 1")
    assert first.response_format == SINGLE.response_format(BATCH, config())
    assert transport.requests[1].response_format == SINGLE.response_format(BATCH[:1], config())
    assert {i: r.labels for i, r in results.items()} == {r.id: r.gold for r in BATCH}
    assert {r.status for r in results.values()} == {"labeled"}
    assert sum(r.usage.requests for r in results.values()) == 3


def test_a_refused_schema_falls_back_to_json_mode_with_the_classify_prompt(
    redis_url: str, redis_client: redis.Redis
) -> None:
    refusal = (
        "the endpoint rejected the request (400): response_format json_schema is not supported"
    )

    def handler(request: ChatRequest) -> Completion:
        if request.response_format is not None:
            raise SchemaRefused(refusal, Usage(prompt_tokens=20, requests=1))
        # In JSON mode, the shape comes from the prompt alone: check that it says it.
        assert '{"label": <label name>}' in request.messages[0]["content"]
        return reply(request)

    transport = MockTransport(handler)
    results = label(redis_url, transport, SchemaRefusals(), batch_size=2)
    assert {i: r.labels for i, r in results.items()} == {r.id: r.gold for r in BATCH}
    json_mode = [r.item_ids for r in transport.requests if r.response_format is None]
    assert sorted(json_mode) == [("t0", "t1"), ("t2", "t3")]


def test_repairs_failures_and_empty_answers_reach_the_runs_counters(
    redis_url: str, redis_client: redis.Redis
) -> None:
    texts = {"a": ["Joy", "glee"], "b": [], "c": ["love"]}
    records = [ClassifyRecord(id=i, text=f"text {i}") for i in texts]

    def multi(request: ChatRequest) -> Completion:
        lines = {str(n): {"labels": texts[i]} for n, i in enumerate(request.item_ids, 1)}
        return Completion(json.dumps(lines), prompt_tokens=1, completion_tokens=1, simulated=False)

    results = label(
        redis_url,
        MockTransport(multi),
        records=records,
        batch_size=3,
        task="classify-multi",
        labels=GOEMOTIONS,
    )
    assert {i: r.labels for i, r in results.items()} == {"a": ("joy",), "b": (), "c": ("love",)}
    counters = redis_client.hgetall(RunKeys(RUN).counters)
    got = {k.decode(): int(v) for k, v in counters.items()}
    assert got["labeled"] == 3 and got["repaired"] == 1 and got["outside"] == 1
    assert got["empty"] == 1

    redis_client.flushdb()

    def single(request: ChatRequest) -> Completion:
        return Completion(
            json.dumps({"label": "Technology"}),
            prompt_tokens=1,
            completion_tokens=1,
            simulated=False,
        )

    failed = label(redis_url, MockTransport(single), records=BATCH[:1])
    assert failed["t0"].status == "failed" and failed["t0"].labels == ()
    assert failed["t0"].error is not None and "'Technology', not one of" in failed["t0"].error


# --- the shared datasets, through the oracle ---------------------------------------------------

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def ag_news() -> tuple[list[ClassifyRecord], LabelSet]:
    """AG News test.csv as the contract loads it: title and description joined by a line
    break, the class index counted from 1 into classes.txt."""
    path = DATA / "ag_news" / "test.csv"
    if not path.exists():
        pytest.skip(f"AG News not found at {path} (../shared/data is absent)")
    names = (DATA / "ag_news" / "classes.txt").read_text().split("\n")
    names = [n.strip() for n in names if n.strip()]
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    records = [
        ClassifyRecord(
            id=str(i), text=f"{title}\n{description}".strip(), gold=(names[int(label) - 1],)
        )
        for i, (label, title, description) in enumerate(rows)
    ]
    return records, LabelSet(labels=tuple(Label(name=n, tag=n) for n in names))


def goemotions() -> tuple[list[ClassifyRecord], LabelSet]:
    """GoEmotions test.tsv: text, comma-separated label ids from 0, comment id."""
    path = DATA / "goemotions" / "test.tsv"
    if not path.exists():
        pytest.skip(f"GoEmotions not found at {path} (../shared/data is absent)")
    names = [n.strip() for n in (DATA / "goemotions" / "emotions.txt").read_text().split("\n")]
    names = [n for n in names if n]
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file, delimiter="\t"))
    records = [
        ClassifyRecord(id=cid, text=text.strip(), gold=tuple(names[int(i)] for i in ids.split(",")))
        for text, ids, cid in rows
    ]
    return records, LabelSet(labels=tuple(Label(name=n, tag=n) for n in names))


@pytest.mark.parametrize("size", [1, 25])
@pytest.mark.parametrize("dataset", ["ag_news", "goemotions"])
def test_the_oracle_labels_every_item_of_the_shared_datasets_as_its_gold(
    dataset: str, size: int
) -> None:
    """Every request a run would send (the task type's messages, K texts a request, the item
    ids prelabel sends to a local endpoint), answered by the oracle and read back by the task
    type, gives every item its gold: accuracy (exact-set accuracy) 100.00%."""
    task, (records, labels) = (
        ("classify", ag_news()) if dataset == "ag_news" else ("classify-multi", goemotions())
    )
    labeling = task_types.get(task)
    cfg = config(task, labels)
    oracle = Oracle(records, labels, task=task)
    wrong: list[str] = []
    for start in range(0, len(records), size):
        batch = records[start : start + size]
        reply = oracle.respond(labeling.messages(batch, cfg, []), [r.id for r in batch])
        assert reply.unknown == []
        for record, answer in zip(
            batch, labeling.parse(reply.content, len(batch), cfg), strict=True
        ):
            assert not isinstance(answer, ItemError), (record.id, answer)
            result = labeling.predict(record, answer, cfg, Usage())
            assert isinstance(result, ClassifyResult) and result.repairs == ()
            if set(result.labels) != set(record.gold or ()):
                wrong.append(record.id)
    assert wrong == []
    assert len(records) == (7600 if dataset == "ag_news" else 5427)


def test_few_shot_examples_from_the_runs_stored_pool_go_out_as_turns(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The pool as the producer stores it (JSON in Redis) and the similar-examples selector:
    each request carries its texts' closest examples, answered in the request's format."""
    pool = SINGLE.examples(
        [
            ClassifyRecord(id="p1", text="Title 7\nStocks rally", gold=("Business",)),
            ClassifyRecord(id="p2", text="Cup final tonight", gold=("Sports",)),
            ClassifyRecord(id="p3", text="Description 2 of a new phone", gold=("Sci/Tech",)),
        ],
        AG_NEWS,
    )
    redis_client.set(RunKeys(RUN).fewshot, pool_to_json(pool))
    transport = MockTransport(reply)
    results = label(redis_url, transport, batch_size=2, few_shot=2, few_shot_strategy="similar")
    assert {i: r.labels for i, r in results.items()} == {r.id: r.gold for r in BATCH}
    for request in transport.requests:
        roles = [m["role"] for m in request.messages]
        assert roles == ["system", "user", "assistant", "user"]
        shown = json.loads(request.messages[2]["content"])
        assert set(shown) == {"1", "2"}
        assert all(
            set(a) == {"label"} and a["label"] in {"Business", "Sci/Tech", "Sports"}
            for a in shown.values()
        )
    (second,) = [r.messages[1]["content"] for r in transport.requests if "t2" in r.item_ids]
    assert "Description 2 of a new phone" in second  # the closest example to t2's text


def test_a_run_without_labels_is_told_to_pass_a_label_file() -> None:
    empty = config(labels=LabelSet())
    for ask in (
        lambda: SINGLE.messages([NEWS], empty, []),
        lambda: MULTI.response_format([NEWS], empty),
    ):
        with pytest.raises(ConfigError, match="--labels FILE"):
            ask()
