"""Alignment: mentions land on the right tokens, every time, or are reported with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from task_types.ner.alignment import CLAIMED, EMPTY, NOT_FOUND, REPEATED, Alignment, align
from task_types.ner.model import CONLL, EntityType, NerRecord, Ontology


def record(text: str) -> NerRecord:
    return NerRecord.from_tokens("r1", text.split())


def placed(result: Alignment) -> list[tuple[str, str, int]]:
    return [(e.type, e.text, e.start) for e in result.entities]


def missed(result: Alignment) -> list[tuple[str, str, str]]:
    return [(u.type, u.mention, u.reason) for u in result.unaligned]


CASES = [
    pytest.param(
        "Paris fans love Paris .",
        {"LOCATION": ["Paris", "Paris"]},
        [("LOC", "Paris", 0), ("LOC", "Paris", 16)],
        [],
        id="repeated-mention-goes-to-each-occurrence",
    ),
    pytest.param(
        "Paris to Lyon to Paris",
        {"LOCATION": ["Lyon", "Paris"]},
        [("LOC", "Lyon", 9), ("LOC", "Paris", 17)],
        [],
        id="cursor-places-after-previous-mention-of-type",
    ),
    pytest.param(
        "The USA beat the US team",
        {"LOCATION": ["US"]},
        [("LOC", "US", 17)],
        [],
        id="no-match-inside-a-word",
    ),
    pytest.param(
        "The USA won",
        {"LOCATION": ["US"]},
        [],
        [("LOCATION", "US", NOT_FOUND)],
        id="substring-only-is-not-found",
    ),
    pytest.param(
        "Peter Blackburn spoke to Blackburn",
        {"PERSON": ["Peter Blackburn", "Blackburn"]},
        [("PER", "Peter Blackburn", 0), ("PER", "Blackburn", 25)],
        [],
        id="multi-token-then-its-last-token",
    ),
    pytest.param(
        "He flew to Washington , D.C . today",
        {"LOCATION": ["Washington, D.C."]},
        [("LOC", "Washington , D.C .", 11)],
        [],
        id="whitespace-differences",
    ),
    pytest.param(
        "Welcome to New York",
        {"LOCATION": ["NewYork"]},
        [("LOC", "New York", 11)],
        [],
        id="model-dropped-a-space",
    ),
    pytest.param(
        "EU rejects German call",
        {"ORGANIZATION": ["eu"], "MISCELLANEOUS": ["GERMAN"]},
        [("ORG", "EU", 0), ("MISC", "German", 11)],
        [],
        id="case-insensitive-fallback",
    ),
    pytest.param(
        "apple growers and Apple shares",
        {"ORGANIZATION": ["Apple"]},
        [("ORG", "Apple", 18)],
        [],
        id="exact-case-before-any-case",
    ),
    pytest.param(
        "Berlin and Paris",
        {"LOCATION": ["Paris", "Berlin"]},
        [("LOC", "Berlin", 0), ("LOC", "Paris", 11)],
        [],
        id="out-of-order-mentions",
    ),
    pytest.param(
        "Bank of England sold England bonds",
        {"ORGANIZATION": ["Bank of England"], "LOCATION": ["England"]},
        [("ORG", "Bank of England", 0), ("LOC", "England", 21)],
        [],
        id="claimed-tokens-are-skipped",
    ),
    pytest.param(
        "Bank of England rose",
        {"ORGANIZATION": ["Bank of England"], "LOCATION": ["England"]},
        [("ORG", "Bank of England", 0)],
        [("LOCATION", "England", CLAIMED)],
        id="mentions-never-overlap",
    ),
    pytest.param(
        "Paris .",
        {"LOCATION": ["Paris", "Paris"]},
        [("LOC", "Paris", 0)],
        [("LOCATION", "Paris", REPEATED)],
        id="more-repeats-than-occurrences",
    ),
    pytest.param(
        "Tokyo fans met in Tokyo .",
        {"LOCATION": ["Tokyo"] * 6},
        [("LOC", "Tokyo", 0), ("LOC", "Tokyo", 18)],
        [("LOCATION", "Tokyo", REPEATED)] * 4,
        id="a-looping-model-repeats-a-mention",
    ),
    pytest.param(
        "Lyon beat Paris in Paris",
        {"ORGANIZATION": ["Paris"], "LOCATION": ["Paris"]},
        [("ORG", "Paris", 10), ("LOC", "Paris", 19)],
        [],
        id="same-string-two-types-two-occurrences",
    ),
    pytest.param(
        "EU rejects British lamb",
        {"FOOD": ["lamb"], "ORGANIZATION": ["EU"]},
        [("ORG", "EU", 0)],
        [("FOOD", "lamb", "type 'FOOD' is not in the ontology")],
        id="unknown-type",
    ),
    pytest.param(
        "Peter spoke",
        {"PERSON": ["John", "Peter"]},
        [("PER", "Peter", 0)],
        [("PERSON", "John", NOT_FOUND)],
        id="unplaceable-mention",
    ),
    pytest.param(
        "Peter spoke",
        {"PERSON": ["", "  ", "Peter"]},
        [("PER", "Peter", 0)],
        [("PERSON", "", EMPTY), ("PERSON", "  ", EMPTY)],
        id="empty-mention",
    ),
    pytest.param(
        "Peter spoke",
        {"PERSON": [], "LOCATION": []},
        [],
        [],
        id="no-mentions",
    ),
]


@pytest.mark.parametrize(("text", "mentions", "entities", "unaligned"), CASES)
def test_align_cases(
    text: str,
    mentions: dict[str, list[str]],
    entities: list[tuple[str, str, int]],
    unaligned: list[tuple[str, str, str]],
) -> None:
    result = align(record(text), mentions, CONLL)
    assert placed(result) == entities
    assert missed(result) == unaligned


def test_tags_are_iob2_over_tokens() -> None:
    rec = record("Peter Blackburn met EU officials in New York City .")
    mentions = {
        "PERSON": ["Peter Blackburn"],
        "ORGANIZATION": ["EU"],
        "LOCATION": ["New York City"],
    }
    result = align(rec, mentions, CONLL)
    assert result.tags == (
        "B-PER", "I-PER", "O", "B-ORG", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O",
    )  # fmt: skip


def test_adjacent_entities_of_one_type_get_separate_b_tags() -> None:
    result = align(record("Smith Jones"), {"PERSON": ["Smith", "Jones"]}, CONLL)
    assert result.tags == ("B-PER", "B-PER")


def test_spans_follow_offsets_of_any_spacing() -> None:
    # A record whose text is not single-spaced: spans must come from its own offsets.
    rec = NerRecord(
        id="r2",
        tokens=("Hello", "New", "York", "!"),
        text="Hello  New\tYork !",
        offsets=((0, 5), (7, 10), (11, 15), (16, 17)),
    )
    result = align(rec, {"LOCATION": ["New York"]}, CONLL)
    assert placed(result) == [("LOC", "New\tYork", 7)]
    assert result.tags == ("O", "B-LOC", "I-LOC", "O")


def test_losing_type_is_placed_first_on_a_second_pass() -> None:
    # LOCATION goes first in this ontology and would take the "England" inside the bank.
    ontology = Ontology(
        labels=(EntityType(name="LOC", tag="LOC"), EntityType(name="ORG", tag="ORG"))
    )
    rec = record("Bank of England sold England bonds")
    result = align(rec, {"LOC": ["England"], "ORG": ["Bank of England"]}, ontology)
    assert placed(result) == [("ORG", "Bank of England", 0), ("LOC", "England", 21)]
    assert result.unaligned == ()


def test_unaligned_are_ordered_by_type_then_mention() -> None:
    result = align(
        record("Peter spoke"),
        {"ZOO": ["x"], "LOCATION": ["Rome", "Oslo"], "PERSON": ["Anna"]},
        CONLL,
    )
    assert [(u.type, u.mention) for u in result.unaligned] == [
        ("PERSON", "Anna"),
        ("LOCATION", "Rome"),
        ("LOCATION", "Oslo"),
        ("ZOO", "x"),
    ]


# --- properties ------------------------------------------------------------------------

#: Disjoint alphabets per type (and for O) make every gold answer unambiguous: when two
#: types share a string, nothing in the answer says which occurrence is whose.
ALPHABETS = {"O": "xyz", "PER": "aAb", "ORG": "cCd", "LOC": "eEf", "MISC": "gGh"}
NAMES = {t.tag: t.name for t in CONLL.labels}


@st.composite
def gold_records(draw: st.DrawFn) -> tuple[NerRecord, list[tuple[int, int, str]]]:
    """A record with random spacing and gold spans (first token, last token, tag)."""
    segments = draw(
        st.lists(
            st.tuples(st.sampled_from(sorted(ALPHABETS)), st.integers(1, 3)), min_size=1, max_size=8
        )
    )
    tokens: list[str] = []
    spans: list[tuple[int, int, str]] = []
    for kind, length in segments:
        alphabet = ALPHABETS[kind]
        words = draw(
            st.lists(st.text(alphabet, min_size=1, max_size=3), min_size=length, max_size=length)
        )
        if kind != "O":
            spans.append((len(tokens), len(tokens) + length - 1, kind))
        tokens.extend(words)
    separators = draw(
        st.lists(
            st.sampled_from([" ", "  ", "\t", " \n "]), min_size=len(tokens), max_size=len(tokens)
        )
    )
    text, offsets = "", []
    for token, separator in zip(tokens, separators, strict=True):
        offsets.append((len(text), len(text) + len(token)))
        text += token + separator
    rec = NerRecord(id="h", tokens=tuple(tokens), text=text, offsets=tuple(offsets))
    return rec, spans


def gold_tags(length: int, spans: list[tuple[int, int, str]]) -> tuple[str, ...]:
    tags = ["O"] * length
    for first, last, tag in spans:
        tags[first] = f"B-{tag}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{tag}"
    return tuple(tags)


@settings(max_examples=300, deadline=None)
@given(gold=gold_records(), spacing=st.sampled_from(["as-is", "none", "single"]))
def test_gold_mentions_align_back_to_gold_spans(
    gold: tuple[NerRecord, list[tuple[int, int, str]]], spacing: str
) -> None:
    rec, spans = gold
    mentions: dict[str, list[str]] = {t.name: [] for t in CONLL.labels}
    expected = []
    for first, last, tag in spans:
        start, end = rec.offsets[first][0], rec.offsets[last][1]
        text = rec.text[start:end]
        mention = {"as-is": text, "none": "".join(text.split()), "single": " ".join(text.split())}
        mentions[NAMES[tag]].append(mention[spacing])
        expected.append((tag, start, end))
    result = align(rec, mentions, CONLL)
    assert [(e.type, e.start, e.end) for e in result.entities] == expected
    assert result.tags == gold_tags(len(rec.tokens), spans)
    assert result.unaligned == ()


@settings(max_examples=300, deadline=None)
@given(
    gold=gold_records(),
    mentions=st.dictionaries(
        st.sampled_from(["PERSON", "LOCATION", "OTHER"]),
        st.lists(st.text("xyzaAbeE \t", max_size=6), max_size=4),
    ),
)
def test_any_answer_gives_whole_token_disjoint_spans_or_reasons(
    gold: tuple[NerRecord, list[tuple[int, int, str]]], mentions: dict[str, list[str]]
) -> None:
    rec, _ = gold
    result = align(rec, mentions, CONLL)
    token_starts = {start for start, _ in rec.offsets}
    token_ends = {end for _, end in rec.offsets}
    for entity in result.entities:
        assert entity.text == rec.text[entity.start : entity.end]
        assert entity.start in token_starts
        assert entity.end in token_ends
    for before, after in zip(result.entities, result.entities[1:], strict=False):
        assert before.end <= after.start
    assert len(result.entities) + len(result.unaligned) == sum(len(m) for m in mentions.values())
    assert len(result.tags) == len(rec.tokens)


# --- the CoNLL-2003 test split -----------------------------------------------------------


def read_conll(path: Path) -> list[NerRecord]:
    records: list[NerRecord] = []
    tokens: list[str] = []
    tags: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        columns = line.split()
        if columns and columns[0] != "-DOCSTART-":
            tokens.append(columns[0])
            tags.append(columns[-1])
        elif tokens:
            records.append(NerRecord.from_tokens(str(len(records)), tokens, tags))
            tokens, tags = [], []
    return records


def gold_mentions(rec: NerRecord) -> dict[str, list[str]]:
    assert rec.gold_tags is not None
    by_tag = CONLL.by_tag()
    mentions: dict[str, list[str]] = {t.name: [] for t in CONLL.labels}
    tags = rec.gold_tags
    i = 0
    while i < len(tags):
        if not tags[i].startswith("B-"):
            i += 1
            continue
        tag = tags[i][2:]
        last = i
        while last + 1 < len(tags) and tags[last + 1] == f"I-{tag}":
            last += 1
        mentions[by_tag[tag].name].append(rec.text[rec.offsets[i][0] : rec.offsets[last][1]])
        i = last + 1
    return mentions


def test_conll_gold_mentions_align_back_to_gold_tags(conll_test_path: Path) -> None:
    records = read_conll(conll_test_path)
    assert len(records) > 3000
    wrong = [
        rec.id
        for rec in records
        if (result := align(rec, gold_mentions(rec), CONLL)).tags != rec.gold_tags
        or result.unaligned
    ]
    assert wrong == []


def test_a_lone_string_is_one_mention() -> None:
    result = align(record("Peter spoke"), {"PERSON": "Peter"}, CONLL)
    assert placed(result) == [("PER", "Peter", 0)]


def test_an_unplaced_mention_keeps_a_bounded_text() -> None:
    """One item's result must stay small in Redis and in the files, whatever the answer."""
    from task_types.ner.alignment import MAX_KEPT_CHARS

    result = align(record("Paris ."), {"LOCATION": ["x" * 100_000], "FOOD": ["y" * 5000]}, CONLL)
    assert [len(u.mention) for u in result.unaligned] == [MAX_KEPT_CHARS, MAX_KEPT_CHARS]
