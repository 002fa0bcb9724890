"""Code points and UTF-16 code units: the conversion, its inverse, and the span check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prelabel.errors import DatasetError
from prelabel.offsets import OffsetMap, OffsetUnit, span_matches, utf16_len
from task_types.ner.model import Entity
from task_types.ner.rows import check_entities

# Letters from every plane that matters: ASCII, Latin-1, BMP (CJK), astral (emoji, math).
CHARS = st.sampled_from([*"ab É中", "🎉", "😀", "𝔸", "👩\u200d💻"])
TEXTS = st.lists(CHARS, max_size=30).map("".join)


@pytest.mark.parametrize(
    ("text", "index", "units"),
    [
        ("Paris", 3, 3),
        ("Élise à Zürich", 9, 9),  # BMP only: the same in both units
        ("🎉 Paris", 0, 0),
        ("🎉 Paris", 1, 2),  # after one emoji: one more unit
        ("🎉 Paris", 2, 3),
        ("a😀😀b", 3, 5),
        ("a😀😀b", 4, 6),
        ("𝔸 is a letter", 2, 3),
    ],
)
def test_to_utf16_counts_astral_characters_twice(text: str, index: int, units: int) -> None:
    offsets = OffsetMap.of(text)
    assert offsets.to_utf16(index) == units
    assert offsets.from_utf16(units) == index
    assert offsets.to_utf16(index) == len(text[:index].encode("utf-16-le")) // 2


@given(TEXTS)
def test_round_trip_at_every_character_boundary(text: str) -> None:
    offsets = OffsetMap.of(text)
    for index in range(len(text) + 1):
        units = offsets.to_utf16(index)
        assert units == len(text[:index].encode("utf-16-le")) // 2
        assert offsets.from_utf16(units) == index
        assert offsets.from_unit(offsets.to_unit(index, "codepoint"), "codepoint") == index
    assert utf16_len(text) == len(text.encode("utf-16-le")) // 2


@given(TEXTS)
def test_an_offset_inside_a_surrogate_pair_is_refused(text: str) -> None:
    offsets = OffsetMap.of(text)
    boundaries = {offsets.to_utf16(i) for i in range(len(text) + 1)}
    for units in range(utf16_len(text) + 1):
        if units in boundaries:
            continue
        with pytest.raises(ValueError, match="surrogate pair"):
            offsets.from_utf16(units)


def test_offsets_outside_the_text_are_refused() -> None:
    offsets = OffsetMap.of("🎉ab")
    with pytest.raises(ValueError, match="outside"):
        offsets.to_utf16(4)
    with pytest.raises(ValueError, match="outside"):
        offsets.from_utf16(5)
    with pytest.raises(ValueError, match="outside"):
        offsets.from_unit(-1, "codepoint")


@pytest.mark.parametrize(
    ("text", "begin", "content", "ok"),
    [
        ("EU rejects German call", 11, "German", True),
        ("EU rejects German call", 10, "German", False),
        ("🎉 Zürich", 2, "Zürich", True),
        ("🎉 Zürich", 3, "Zürich", False),  # the UTF-16 offset, read as a code point
        ("abc", -1, "a", False),
        ("abc", 2, "cd", False),
    ],
)
def test_span_matches(text: str, begin: int, content: str, ok: bool) -> None:
    assert span_matches(text, begin, content) is ok


@pytest.mark.parametrize(
    ("offset", "unit", "ok"),
    [
        (2, "codepoint", True),
        (3, "utf16", True),
        (3, "codepoint", False),
        (2, "utf16", False),
        (1, "utf16", False),  # inside the emoji's surrogate pair
        (99, "utf16", False),
    ],
)
def test_holds_reads_the_offset_in_its_unit(offset: int, unit: OffsetUnit, ok: bool) -> None:
    assert OffsetMap.of("🎉 Zürich").holds(offset, "Zürich", unit) is ok


def test_check_entities_names_the_item_and_the_entity() -> None:
    text = "Élise visited Zürich"
    good = Entity(type="PER", start=0, end=5, text="Élise")
    check_entities("train-0", text, [good])
    shifted = Entity(type="LOC", start=13, end=19, text="Zürich")
    with pytest.raises(DatasetError, match=r"item 'train-0', entity 1 \(LOC 'Zürich' at 13-19\)"):
        check_entities("train-0", text, [good, shifted])
    long = Entity(type="MISC", start=0, end=90, text="x" * 90)
    with pytest.raises(DatasetError, match=r"\(MISC 'x{39}…' at 0-90\): the text there is 'Élise"):
        check_entities("train-0", text, [long])
    wrong_end = Entity(type="LOC", start=14, end=21, text="Zürich")
    with pytest.raises(DatasetError, match="entity 0"):
        check_entities("train-0", text, [wrong_end])
