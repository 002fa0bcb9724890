"""Prompts: the ner-v3 wire format (compact answers), a stable system prompt, and the answer
schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import bpe_openai
import pytest

from prelabel.errors import ConfigError
from task_types import Example
from task_types.messages import batch_schema
from task_types.ner.model import CONLL, PROMPT_VERSION, EntityType, NerRecord, Ontology
from task_types.ner.parsing import parse_answer, parse_batch_answer
from task_types.ner.prompts import (
    BUILT_IN_EXAMPLE,
    DEFAULT_TEMPLATE,
    answer_json,
    build_messages,
    copies_an_example,
    load_template,
    response_format,
)
from workers.tokens import count_schema_tokens

CUSTOM = Ontology(
    labels=(
        EntityType(name="DRUG", tag="DRG", description="medicines and active substances"),
        EntityType(name="DISEASE", tag="DIS", description="illnesses and symptoms"),
    )
)
RECORDS = [
    NerRecord.from_tokens(
        "a", ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
    ),
    NerRecord.from_tokens("b", ["Peter", "Blackburn"]),
    NerRecord.from_tokens("c", ["BRUSSELS", "1996-08-22"]),
]


def system(records: list[NerRecord], ontology: Ontology = CONLL) -> str:
    return build_messages(records, ontology)[0]["content"]


def test_messages_are_system_then_the_worked_example_as_a_turn_then_the_sentence() -> None:
    messages = build_messages(RECORDS[:1], CONLL)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert all(set(m) == {"role", "content"} and m["content"] for m in messages)
    # The example is a turn of its own: a small model copied it into answers from the system
    # message (Smith, Paris, Berlin for unrelated sentences).
    assert "Smith" not in messages[0]["content"]
    assert messages[1]["content"] == BUILT_IN_EXAMPLE.text
    assert parse_answer(messages[2]["content"], CONLL) == {
        "PERSON": ["Smith"],
        "ORGANIZATION": [],
        "LOCATION": ["Paris", "Berlin", "Paris"],
        "MISCELLANEOUS": [],
    }


def test_an_answer_that_is_the_worked_example_is_recognised() -> None:
    copied = {"PERSON": ["Smith"], "LOCATION": ["Paris", "Berlin", "Paris"], "MISCELLANEOUS": []}
    assert copies_an_example(copied, RECORDS[0].text, CONLL)
    compact = {"PERSON": ["Smith"], "LOCATION": ["Paris", "Berlin", "Paris"]}
    assert copies_an_example(compact, RECORDS[0].text, CONLL)
    assert not copies_an_example(copied, BUILT_IN_EXAMPLE.text, CONLL)
    assert not copies_an_example({"PERSON": ["Smith"]}, RECORDS[0].text, CONLL)
    assert not copies_an_example(copied, RECORDS[0].text, CUSTOM)


def test_single_record_user_content_is_its_text() -> None:
    messages = build_messages(RECORDS[:1], CONLL)
    assert messages[-1]["content"] == "EU rejects German call to boycott British lamb ."


def test_batch_user_content_is_numbered_lines() -> None:
    messages = build_messages(RECORDS, CONLL)
    assert messages[-1]["content"] == (
        "1: EU rejects German call to boycott British lamb .\n"
        "2: Peter Blackburn\n"
        "3: BRUSSELS 1996-08-22"
    )


def test_batch_lines_stay_one_per_record_when_a_text_holds_a_line_break() -> None:
    odd = NerRecord(id="n", tokens=("a", "b"), text="a\nb", offsets=((0, 1), (2, 3)))
    content = build_messages([odd, RECORDS[1]], CONLL)[-1]["content"]
    assert content.splitlines() == ["1: a b", "2: Peter Blackburn"]


def test_system_prompt_is_the_same_for_every_request_of_a_mode() -> None:
    assert system(RECORDS[:1]) == system(RECORDS[1:2]) == system(RECORDS[2:])
    assert system(RECORDS[:2]) == system(RECORDS) == system(RECORDS[1:])
    # A fresh but equal ontology (as decoded from a RunConfig) gives the same prompt.
    copy = Ontology.model_validate_json(CONLL.model_dump_json())
    assert system(RECORDS, copy) == system(RECORDS)


def test_batched_system_prompt_explains_numbered_lines() -> None:
    assert system(RECORDS) != system(RECORDS[:1])
    assert "line number" in system(RECORDS)
    assert "line number" not in system(RECORDS[:1])


@pytest.mark.parametrize("ontology", [CONLL, CUSTOM], ids=["conll", "custom"])
@pytest.mark.parametrize("size", [1, 3])
def test_system_prompt_lists_every_type_with_its_description(ontology: Ontology, size: int) -> None:
    prompt = system(RECORDS[:size], ontology)
    for entity_type in ontology.labels:
        assert f"{entity_type.name}: {entity_type.description}" in prompt
    assert "Label the named entities" in prompt
    assert "JSON only" in prompt


def test_system_prompt_keeps_the_rules_and_asks_for_compact_answers() -> None:
    for size in (1, 3):
        prompt = system(RECORDS[:size])
        for rule in ("exactly as written", "order of appearance", "once per occurrence"):
            assert rule in prompt
        assert "types only" in prompt
        assert "each type found" in prompt and "({} if none)" in prompt


def test_custom_ontology_prompt_does_not_mention_conll_types() -> None:
    for size in (1, 3):
        prompt = system(RECORDS[:size], CUSTOM)
        assert not re.search(r"PERSON|LOCATION|ORGANIZATION|MISCELLANEOUS", prompt)


@pytest.mark.parametrize("size", [1, 3])
def test_system_prompt_is_compact(size: int) -> None:
    # ner-v3's was 176 and 191 o200k tokens for CoNLL; ner-v3's 141 and 156, of which the
    # types and their descriptions are 100.
    encoding = bpe_openai.get_encoding("o200k_base")
    assert len(encoding.encode(system(RECORDS[:size]))) < 160


def test_answers_render_only_the_types_found() -> None:
    assert answer_json({"LOCATION": ["Rome"], "PERSON": ["Ann"], "MISCELLANEOUS": []}, CONLL) == (
        '{"PERSON":["Ann"],"LOCATION":["Rome"]}'
    )
    assert answer_json({t.name: [] for t in CONLL.labels}, CONLL) == "{}"
    # The built-in worked example goes out compact too.
    assert build_messages(RECORDS[:1], CONLL)[2]["content"] == (
        '{"PERSON":["Smith"],"LOCATION":["Paris","Berlin","Paris"]}'
    )
    # A batch of examples: a line without mentions is `{}`.
    examples = [EXAMPLES[0], Example("Nothing here .", {})]
    reply = build_messages(RECORDS, CONLL, examples=examples)[2]["content"]
    assert reply == '{"1":{"PERSON":["Ann","Bob"],"LOCATION":["Rome"]},"2":{}}'
    assert parse_batch_answer(reply, 2, CONLL)[1] == {t.name: [] for t in CONLL.labels}


def test_answer_shape_without_examples_shows_only_a_type_with_mentions() -> None:
    prompt = system(RECORDS[:1], CUSTOM)
    assert 'Answer shape: {"DRUG":["<mention as written>","<next mention>"]}' in prompt
    assert '"DISEASE"' not in prompt


def test_prompt_examples_are_valid_answers() -> None:
    # The example's answer must obey the prompt's own rules and schema.
    single = build_messages(RECORDS[:1], CONLL)[2]["content"]
    assert parse_answer(single, CONLL)["LOCATION"] == ["Paris", "Berlin", "Paris"]
    assert validate(json.loads(single), response_format(CONLL, 1)) == []
    batched = build_messages(RECORDS, CONLL)[2]["content"]
    assert parse_batch_answer(batched, 1, CONLL) == [parse_answer(single, CONLL)]
    assert validate(json.loads(batched)["1"], response_format(CONLL, 1)) == []


def test_build_messages_needs_a_record() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        build_messages([], CONLL)


# --- response_format ------------------------------------------------------------------------


def validate(instance: Any, fmt: dict[str, Any]) -> list[str]:
    """Errors of `instance` against the format's schema (an empty list when it is valid)."""
    schema = fmt["json_schema"]["schema"]
    try:
        import jsonschema
    except ImportError:
        return subset_errors(instance, schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(instance)]


#: The keywords `subset_errors` understands; the schemas must use no others.
KEYWORDS = {"type", "properties", "required", "additionalProperties", "items"}


def subset_errors(instance: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """A JSON Schema check for the keywords in KEYWORDS, for when jsonschema is absent."""
    unknown = set(schema) - KEYWORDS
    if unknown:
        return [f"{path}: schema keywords {sorted(unknown)} are not checked here"]
    kind = schema.get("type")
    if kind == "string":
        return [] if isinstance(instance, str) else [f"{path}: not a string"]
    if kind == "array":
        if not isinstance(instance, list):
            return [f"{path}: not an array"]
        return [
            e
            for i, x in enumerate(instance)
            for e in subset_errors(x, schema["items"], f"{path}[{i}]")
        ]
    if kind == "object":
        if not isinstance(instance, dict):
            return [f"{path}: not an object"]
        errors = [
            f"{path}: {key} is required"
            for key in schema.get("required", [])
            if key not in instance
        ]
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            errors += [f"{path}: {key} is not allowed" for key in instance if key not in properties]
        for key, sub in properties.items():
            if key in instance:
                errors += subset_errors(instance[key], sub, f"{path}.{key}")
        return errors
    return [f"{path}: type {kind!r} is not checked here"]


def sentence(**mentions: list[str]) -> dict[str, list[str]]:
    """An answer in the full form (every type, ner-v3's), which the schema still accepts."""
    return {"PERSON": [], "ORGANIZATION": [], "LOCATION": [], "MISCELLANEOUS": [], **mentions}


def test_single_response_format_is_a_non_strict_json_schema() -> None:
    fmt = response_format(CONLL, 1)
    assert fmt["type"] == "json_schema"
    # OpenAI's strict mode would require every type: a compact answer leaves some out.
    assert fmt["json_schema"]["strict"] is False
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", fmt["json_schema"]["name"])
    assert validate(sentence(ORGANIZATION=["EU"], MISCELLANEOUS=["German", "British"]), fmt) == []
    assert validate({"ORGANIZATION": ["EU"], "MISCELLANEOUS": ["German", "British"]}, fmt) == []
    assert validate({}, fmt) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"FOOD": []},
        {**sentence(), "FOOD": []},
        sentence(PERSON=[1]),  # type: ignore[list-item]
        sentence(PERSON="Peter"),  # type: ignore[arg-type]
        {"1": sentence()},
    ],
    ids=["unknown-type", "extra-type", "number-item", "lone-string", "batched-shape"],
)
def test_single_response_format_rejects_other_shapes(bad: Any) -> None:
    assert validate(bad, response_format(CONLL, 1)) != []


def test_batch_response_format_requires_every_line() -> None:
    fmt = response_format(CONLL, 3)
    good = {"1": {"PERSON": ["Ann"]}, "2": {}, "3": {"LOCATION": ["Rome"]}}
    assert validate(good, fmt) == []
    assert validate({"1": sentence(PERSON=["Ann"]), "2": sentence(), "3": {}}, fmt) == []
    assert validate({"1": {}, "2": {}}, fmt) != []
    assert validate({**good, "4": {}}, fmt) != []
    assert validate({**good, "2": {"FOOD": []}}, fmt) != []


@pytest.mark.parametrize("size", [1, 4])
def test_every_sentence_object_has_optional_types_and_no_others(size: int) -> None:
    def objects(node: Any) -> list[dict[str, Any]]:
        if not isinstance(node, dict):
            return []
        found = [node] if node.get("type") == "object" else []
        for value in node.values():
            found += objects(value)
        return found

    schemas = objects(response_format(CONLL, size)["json_schema"]["schema"])
    assert len(schemas) == (1 if size == 1 else 2)  # a batch's lines share one definition
    for schema in schemas:
        assert schema["additionalProperties"] is False
    sentences = schemas if size == 1 else schemas[1:]
    for schema in sentences:
        assert list(schema["properties"]) == [t.name for t in CONLL.labels]
        assert "required" not in schema
    if size > 1:
        assert schemas[0]["required"] == [str(i) for i in range(1, size + 1)]


def test_a_batch_schema_defines_its_line_once() -> None:
    """The schema is billed as input: K lines refer to one definition instead of K copies."""
    fmt = response_format(CONLL, 25)
    schema = fmt["json_schema"]["schema"]
    assert schema["properties"]["25"] == {"$ref": "#/$defs/line"}
    assert json.dumps(schema).count('"PERSON"') == 1
    line = schema["$defs"]["line"]
    copies = {"json_schema": {"schema": batch_schema(line, 25, shared=False)}}
    shared, inlined = (count_schema_tokens(f, "gpt-4o-mini") for f in (fmt, copies))
    assert shared < inlined / 4


def test_response_format_needs_a_positive_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        response_format(CONLL, 0)


# --- few-shot examples ------------------------------------------------------------------------

EXAMPLES = [
    Example("Ann met Bob in Rome .", {"PERSON": ["Ann", "Bob"], "LOCATION": ["Rome"]}),
    Example("Rome beat Lazio in Rome .", {"ORGANIZATION": ["Rome", "Lazio"], "LOCATION": ["Rome"]}),
]


def test_single_request_shows_each_example_as_a_user_assistant_pair_before_the_sentence() -> None:
    messages = build_messages(RECORDS[:1], CONLL, examples=EXAMPLES)
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert [m["content"] for m in messages[1::2][:2]] == [e.text for e in EXAMPLES]
    assert messages[-1]["content"] == RECORDS[0].text
    # Every example answer is what the prompt asks for: the types found, ontology order.
    for example, reply in zip(EXAMPLES, messages[2:5:2], strict=True):
        parsed = json.loads(reply["content"])
        assert list(parsed) == [t.name for t in CONLL.labels if example.mentions.get(t.name)]
        assert validate(parsed, response_format(CONLL, 1)) == []
        assert parse_answer(reply["content"], CONLL) == {
            t.name: list(example.mentions.get(t.name, [])) for t in CONLL.labels
        }


def test_batched_request_shows_the_examples_as_one_numbered_pair() -> None:
    messages = build_messages(RECORDS, CONLL, examples=EXAMPLES)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "1: Ann met Bob in Rome .\n2: Rome beat Lazio in Rome ."
    reply = json.loads(messages[2]["content"])
    assert validate(reply, response_format(CONLL, 2)) == []
    assert parse_batch_answer(messages[2]["content"], 2, CONLL)[1]["LOCATION"] == ["Rome"]
    assert messages[3]["content"].startswith("1: EU rejects")


def test_one_example_in_a_batch_still_goes_out_numbered() -> None:
    messages = build_messages(RECORDS, CONLL, examples=EXAMPLES[:1])
    assert messages[1]["content"] == "1: Ann met Bob in Rome ."
    assert list(json.loads(messages[2]["content"])) == ["1"]


def test_examples_replace_the_built_in_example_and_keep_the_prefix_stable() -> None:
    plain = build_messages(RECORDS[:1], CONLL)
    with_examples = build_messages(RECORDS[:1], CONLL, examples=EXAMPLES)
    assert plain[1]["content"] == BUILT_IN_EXAMPLE.text
    assert all("Smith flew" not in m["content"] for m in with_examples)
    assert with_examples[0] == plain[0]
    # The same examples for two sentences: everything but the last message is identical.
    a = build_messages(RECORDS[:1], CONLL, examples=EXAMPLES)
    b = build_messages(RECORDS[1:2], CONLL, examples=EXAMPLES)
    assert a[:-1] == b[:-1] and a[-1] != b[-1]


# --- prompt templates -------------------------------------------------------------------------


def test_the_default_template_gives_the_built_in_prompt() -> None:
    for size in (1, 3):
        built = build_messages(RECORDS[:size], CONLL, template=DEFAULT_TEMPLATE)
        assert built == build_messages(RECORDS[:size], CONLL)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_prompt_file_sets_the_system_prompt_and_a_versioned_hash(
    tmp_path: Path, suffix: str
) -> None:
    system_text = 'Tag {sentences}. Types:\n{types}\n{format}\nNever output {"a": 1}.'
    path = tmp_path / f"prompt{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"system": system_text}))
    else:
        path.write_text(f"system = {json.dumps(system_text)}\n")
    template = load_template(path)
    assert re.fullmatch(rf"{PROMPT_VERSION}\+custom-[0-9a-f]{{8}}", template.version)
    prompt = build_messages(RECORDS, CONLL, template=template.system)[0]["content"]
    assert prompt.startswith("Tag each numbered sentence. Types:\n- PERSON: ")
    assert 'Never output {"a": 1}.' in prompt and "line number" in prompt
    other = tmp_path / f"other{suffix}"
    other.write_text(path.read_text().replace("Tag", "Label"))
    assert load_template(other).version != template.version


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('system = "Label {types}"', "needs {format}"),
        ('system = "{format}"', "needs {types}"),
        ('system = "{types} {format} {typo}"', "unknown placeholder(s) {typo}"),
        ('system = "{types} {format}"\nuser = "x"', "exactly one key"),
        ("system = ", "not valid TOML"),
    ],
)
def test_bad_prompt_files_name_the_file_and_the_fix(
    tmp_path: Path, content: str, needle: str
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_template(path)
    assert needle in str(caught.value) and str(path) in str(caught.value)
