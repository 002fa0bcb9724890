"""Parsing: sloppy answers are repaired, hopeless ones fail with a specific reason."""

from __future__ import annotations

import pytest

from prelabel.errors import ItemError
from task_types import answers
from task_types.answers import MAX_ANSWER_CHARS
from task_types.ner.model import CONLL
from task_types.ner.parsing import MAX_MENTIONS, parse_answer, parse_batch_answer

EMPTY: dict[str, list[str]] = {
    "PERSON": [],
    "ORGANIZATION": [],
    "LOCATION": [],
    "MISCELLANEOUS": [],
}


def answer(**mentions: list[str]) -> dict[str, list[str]]:
    return {**EMPTY, **mentions}


GOOD = '{"PERSON": ["Peter"], "ORGANIZATION": ["EU"], "LOCATION": [], "MISCELLANEOUS": []}'

SLOPPY = [
    pytest.param(GOOD, answer(PERSON=["Peter"], ORGANIZATION=["EU"]), id="clean"),
    pytest.param(
        f"```json\n{GOOD}\n```", answer(PERSON=["Peter"], ORGANIZATION=["EU"]), id="fence"
    ),
    pytest.param(
        f"```\n{GOOD}\n```\n", answer(PERSON=["Peter"], ORGANIZATION=["EU"]), id="bare-fence"
    ),
    pytest.param(
        f"Here are the entities:\n{GOOD}\nHope this helps! {{:)}}",
        answer(PERSON=["Peter"], ORGANIZATION=["EU"]),
        id="prose-around",
    ),
    pytest.param(
        'Format is {TYPE: [mentions]}. Answer: {"PERSON": ["Ann"]}',
        answer(PERSON=["Ann"]),
        id="braces-in-prose-before",
    ),
    pytest.param(
        "{'PERSON': ['Peter'], 'LOCATION': ['Paris', 'Paris'],}",
        answer(PERSON=["Peter"], LOCATION=["Paris", "Paris"]),
        id="single-quotes-trailing-comma",
    ),
    pytest.param(
        "{'PERSON': null, 'LOCATION': ['Rome'], 'ORGANIZATION': None}",
        answer(LOCATION=["Rome"]),
        id="single-quotes-with-null-and-none",
    ),
    pytest.param('{"PERSON": "Peter"}', answer(PERSON=["Peter"]), id="lone-string"),
    pytest.param('{"PERSON": null}', answer(), id="null-type"),
    pytest.param('{"LOCATION": ["Rome"]}', answer(LOCATION=["Rome"]), id="missing-types"),
    pytest.param("{}", answer(), id="empty-object"),
    pytest.param(
        '{"person": ["Ann"], "Location": ["Rome"]}',
        answer(PERSON=["Ann"], LOCATION=["Rome"]),
        id="other-casing",
    ),
    pytest.param(
        '{"PER": ["Ann"], "misc": ["German"]}',
        answer(PERSON=["Ann"], MISCELLANEOUS=["German"]),
        id="dataset-tags-as-keys",
    ),
    pytest.param(
        '{"PERSON": ["Ann"], "person": ["Bob"]}',
        answer(PERSON=["Ann", "Bob"]),
        id="same-type-twice-merges-in-order",
    ),
    pytest.param(
        '{"MISCELLANEOUS": [1996, 2.5], "LOCATION": 7}',
        answer(MISCELLANEOUS=["1996", "2.5"], LOCATION=["7"]),
        id="numbers-become-strings",
    ),
    pytest.param('{"PERSON": ["Ann", null]}', answer(PERSON=["Ann"]), id="null-item-dropped"),
    pytest.param(
        '{"PERSON": ["O\'Neill"], "LOCATION": ["Côte d\'Ivoire"]}',
        answer(PERSON=["O'Neill"], LOCATION=["Côte d'Ivoire"]),
        id="apostrophes-and-unicode",
    ),
    pytest.param(
        '{"FOOD": ["lamb"], "PERSON": []}',
        {**EMPTY, "FOOD": ["lamb"]},
        id="unknown-type-kept",
    ),
    pytest.param(
        '{"PERSON": ["a \\"quoted\\" name}"]}',
        answer(PERSON=['a "quoted" name}']),
        id="escaped-quote-and-brace-in-string",
    ),
]


@pytest.mark.parametrize(("content", "expected"), SLOPPY)
def test_sloppy_answers_are_repaired(content: str, expected: dict[str, list[str]]) -> None:
    parsed = parse_answer(content, CONLL)
    assert parsed == expected
    # Ontology types first, in ontology order: callers iterate in prompt order.
    assert list(parsed)[:4] == [t.name for t in CONLL.labels]


UNREPAIRABLE = [
    pytest.param("", "answer is empty", id="empty"),
    pytest.param("   \n", "answer is empty", id="blank"),
    pytest.param(
        "I cannot help with that.",
        "answer is not JSON: I cannot help with that.",
        id="prose-only",
    ),
    pytest.param('["Peter", "Paris"]', "answer is not JSON: ", id="list-not-object"),
    pytest.param('{"PERSON": ["Pet', "answer is not JSON: ", id="truncated"),
    pytest.param(
        '{"PERSON": [{"name": "Peter"}]}',
        "answer for PERSON holds a JSON object where a mention string belongs",
        id="object-inside-list",
    ),
    pytest.param(
        '{"LOCATION": [["Paris"]]}',
        "answer for LOCATION holds a list where a mention string belongs",
        id="list-inside-list",
    ),
    pytest.param(
        '{"PERSON": {"first": "Peter"}}',
        "answer for PERSON is a JSON object, not a list of mentions",
        id="object-for-type",
    ),
    pytest.param(
        '{"PERSON": true}', "answer for PERSON is a boolean, not a list of mentions", id="boolean"
    ),
]


@pytest.mark.parametrize(("content", "reason"), UNREPAIRABLE)
def test_unrepairable_answers_raise_item_error(content: str, reason: str) -> None:
    with pytest.raises(ItemError) as caught:
        parse_answer(content, CONLL)
    assert str(caught.value).startswith(reason)
    assert "\n" not in str(caught.value)


def test_not_json_reason_quotes_at_most_80_characters_on_one_line() -> None:
    content = "no json here\n" + "x" * 200
    with pytest.raises(ItemError) as caught:
        parse_answer(content, CONLL)
    quoted = str(caught.value).removeprefix("answer is not JSON: ")
    assert quoted == ("no json here " + "x" * 200)[:80]


# --- batched answers ------------------------------------------------------------------------


def test_batch_answer_one_entry_per_line() -> None:
    content = '{"1": {"PERSON": ["Ann"]}, "2": {"LOCATION": "Rome"}, "3": {}}'
    assert parse_batch_answer(content, 3, CONLL) == [
        answer(PERSON=["Ann"]),
        answer(LOCATION=["Rome"]),
        answer(),
    ]


def test_batch_answer_missing_line_fails_only_that_line() -> None:
    content = '```json\n{"1": {"PERSON": ["Ann"]}, "3": {"LOCATION": ["Rome"]}}\n```'
    first, second, third = parse_batch_answer(content, 3, CONLL)
    assert first == answer(PERSON=["Ann"])
    assert isinstance(second, ItemError)
    assert str(second) == "line 2 is missing from the batched answer"
    assert third == answer(LOCATION=["Rome"])


def test_batch_answer_bad_line_value_fails_only_that_line() -> None:
    content = '{"1": ["Ann"], "2": {"PERSON": [{"x": 1}]}, "3": null, "4": {"PERSON": ["Bob"]}}'
    results = parse_batch_answer(content, 4, CONLL)
    assert [str(r) for r in results[:3]] == [
        'line 1 is not a JSON object: ["Ann"]',
        "line 2: answer for PERSON holds a JSON object where a mention string belongs: {'x': 1}",
        "line 3 is not a JSON object: null",
    ]
    assert all(isinstance(r, ItemError) for r in results[:3])
    assert results[3] == answer(PERSON=["Bob"])


def test_batch_answer_ignores_extra_lines_and_accepts_sloppy_keys() -> None:
    content = "{1: {'person': 'Ann'}, ' 2 ': {'PER': ['Bob']}, '9': {'PERSON': ['Zed']}}"
    assert parse_batch_answer(content, 2, CONLL) == [
        answer(PERSON=["Ann"]),
        answer(PERSON=["Bob"]),
    ]


@pytest.mark.parametrize("content", ["", "sorry, no", '{"1": {"PERSON": ["Ann"]'])
def test_unreadable_batch_answer_fails_every_line_alike(content: str) -> None:
    results = parse_batch_answer(content, 3, CONLL)
    assert len(results) == 3
    assert all(isinstance(r, ItemError) for r in results)
    assert len({str(r) for r in results}) == 1


# --- wrappers, list-shaped batches, sloppy line keys ------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        '{"entities": {"PERSON": ["Ann"], "LOCATION": []}}',
        "Sure! ```json\n{'answer': {'person': 'Ann'}}\n```",
        '{"1": {"PERSON": ["Ann"]}}',
    ],
    ids=["entities-wrapper", "fenced-python-wrapper", "batched-shape-for-one"],
)
def test_single_answer_in_one_more_object_is_unwrapped(content: str) -> None:
    assert parse_answer(content, CONLL) == answer(PERSON=["Ann"])


def test_a_lone_type_holding_mentions_is_not_mistaken_for_a_wrapper() -> None:
    assert parse_answer('{"PER": ["Ann"]}', CONLL) == answer(PERSON=["Ann"])
    with pytest.raises(ItemError, match="answer for PERSON is a JSON object"):
        parse_answer('{"PERSON": {"first": "Ann"}}', CONLL)


def test_batch_answer_as_a_list_is_read_by_position() -> None:
    content = 'Here you go:\n[{"PERSON": ["Ann"]}, {}, {"LOCATION": "Rome"}]'
    assert parse_batch_answer(content, 3, CONLL) == [
        answer(PERSON=["Ann"]),
        answer(),
        answer(LOCATION=["Rome"]),
    ]


def test_batch_answer_list_of_the_wrong_length_is_not_guessed() -> None:
    results = parse_batch_answer('[{"PERSON": ["Ann"]}, {}]', 3, CONLL)
    assert all(isinstance(r, ItemError) for r in results)


@pytest.mark.parametrize(
    "content",
    [
        '{"answers": {"1": {"PERSON": ["Ann"]}, "2": {}}}',
        '{"line 1": {"PERSON": ["Ann"]}, "Line 2": {}}',
        '{"#1": {"PERSON": ["Ann"]}, "2.": {}}',
        '{"Sentence 1:": {"PERSON": ["Ann"]}, "sentence 2": {}}',
    ],
    ids=["wrapper", "line-n", "hash-and-dot", "sentence-n"],
)
def test_batch_answer_sloppy_keys_and_wrappers(content: str) -> None:
    assert parse_batch_answer(content, 2, CONLL) == [answer(PERSON=["Ann"]), answer()]


# --- bounded work (issue 14.4) -------------------------------------------------------------------


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Characters each brace match was allowed to scan (the parser's only superlinear risk)."""
    spans: list[int] = []
    real = answers._matching_brace

    def counting(text: str, start: int, limit: int, *brackets: str) -> int | None:
        spans.append(limit - start)
        return real(text, start, limit, *brackets)

    monkeypatch.setattr(answers, "_matching_brace", counting)
    return spans


@pytest.mark.parametrize(
    "answer",
    ["{" * 150_000, "{" * 75_000 + "[" * 75_000, 'x {"a": ' * 20_000, "{'" * 75_000],
    ids=["open-braces", "braces-then-brackets", "repeated-prefix", "quotes"],
)
def test_parsing_a_looping_answer_scans_a_bounded_multiple_of_it(
    scanned: list[int], answer: str
) -> None:
    """A model stuck repeating `{` cost 20 s of CPU at 16,000 characters (every `{` was
    scanned to the end): the scan is now charged against a budget of a few times the answer."""
    with pytest.raises(ItemError, match="not JSON"):
        parse_answer(answer, CONLL)
    assert sum(scanned) <= (answers.SCAN_FACTOR + 1) * len(answer)
    scanned.clear()
    errors = parse_batch_answer(answer, 3, CONLL)
    assert all(isinstance(e, ItemError) for e in errors)
    assert sum(scanned) <= (answers.SCAN_FACTOR + 1) * len(answer)


def test_an_answer_after_junk_braces_is_still_found(scanned: list[int]) -> None:
    answer = "Notes: {draft} {x} " + '{"PERSON": ["Ann"]}'
    assert parse_answer(answer, CONLL)["PERSON"] == ["Ann"]


def test_an_answer_longer_than_the_bound_fails_without_being_scanned(scanned: list[int]) -> None:
    answer = '{"PERSON": [' + '"Tokyo", ' * (MAX_ANSWER_CHARS // 9) + '"Tokyo"]}'
    with pytest.raises(ItemError, match=r"characters, more than the 200,000 read.*looping"):
        parse_answer(answer, CONLL)
    assert scanned == []
    assert all(isinstance(e, ItemError) for e in parse_batch_answer(answer, 2, CONLL))


def test_an_answer_with_more_mentions_than_a_sentence_can_hold_fails() -> None:
    answer = '{"LOCATION": [' + ", ".join(['"Tokyo"'] * (MAX_MENTIONS + 1)) + "]}"
    with pytest.raises(ItemError, match=f"more than {MAX_MENTIONS} mentions"):
        parse_answer(answer, CONLL)
    fine = '{"LOCATION": [' + ", ".join(['"Tokyo"'] * MAX_MENTIONS) + "]}"
    assert len(parse_answer(fine, CONLL)["LOCATION"]) == MAX_MENTIONS
