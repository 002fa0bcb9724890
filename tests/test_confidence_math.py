"""workers.confidence: token spans, votes and verdicts against hand-computed values."""

from __future__ import annotations

import math

import pytest

from task_types.verification import Proposal, Verdicts
from workers.confidence import logprob_confidence, verdict_confidence, vote
from workers.confidence.scan import item_parts
from workers.transports.base import TokenLogprob


def _tokens(*pieces: tuple[str, float]) -> list[TokenLogprob]:
    return [TokenLogprob(text, math.log(p)) for text, p in pieces]


def test_a_mentions_confidence_is_the_product_of_the_tokens_over_its_quoted_value() -> None:
    tokens = _tokens(
        ('{"', 1.0),
        ("PERSON", 0.9),
        ('":', 1.0),
        (' ["', 0.8),  # opens the quote of "John Smith"
        ("John", 0.5),
        (" Smith", 0.6),
        ('",', 0.95),  # closes it
        (' "', 1.0),
        ("Mary", 0.7),
        ('"]}', 0.99),
    )
    content = "".join(t.token for t in tokens)
    (measured,) = logprob_confidence(
        content, tokens, [[Proposal("PERSON", "John Smith"), Proposal("PERSON", "Mary")]]
    ) or [None]
    assert measured is not None
    assert measured.proposals == pytest.approx((0.8 * 0.5 * 0.6 * 0.95, 1.0 * 0.7 * 0.99))
    # The least of the proposals and of every token: "John" at 0.5 is above 0.228.
    assert measured.item == pytest.approx(0.8 * 0.5 * 0.6 * 0.95)


def test_an_early_closing_bracket_lowers_the_item_below_its_proposals() -> None:
    tokens = _tokens(('{"LOC": ["', 0.99), ("Paris", 0.98), ('"', 0.99), ("]}", 0.3))
    content = "".join(t.token for t in tokens)
    (measured,) = logprob_confidence(content, tokens, [[Proposal("LOC", "Paris")]]) or [None]
    assert measured is not None
    assert measured.proposals == pytest.approx((0.99 * 0.98 * 0.99,))
    assert measured.item == pytest.approx(0.3)


def test_tokens_that_do_not_spell_the_answer_give_no_confidence() -> None:
    tokens = _tokens(('{"label": "', 0.9), ("Sports", 0.9))
    assert logprob_confidence('{"label": "Sports"}', tokens, [[Proposal("Sports")]]) is None


def test_whitespace_the_tokens_hold_around_the_answer_is_no_mismatch() -> None:
    """llama.cpp's server strips the newline its grammar ends an answer with from the
    content and keeps it in the tokens (seen with Gemma 3 270M)."""
    tokens = _tokens(('{"label": "', 0.9), ("Sports", 0.8), ('"}', 1.0), ("\n", 0.2), ("", 1.0))
    (measured,) = logprob_confidence('{"label": "Sports"}', tokens, [[Proposal("Sports")]]) or [
        None
    ]
    assert measured is not None
    assert measured.proposals == pytest.approx((0.9 * 0.8 * 1.0,))
    assert measured.item == pytest.approx(0.72)  # the newline after the answer is not its part


def test_a_batch_measures_each_item_on_its_own_part() -> None:
    tokens = _tokens(
        ('{"1": {"label": "', 1.0),
        ("Sports", 0.8),
        ('"}, "2": {"label": "', 1.0),
        ("World", 0.4),
        ('"}}', 1.0),
    )
    content = "".join(t.token for t in tokens)
    measured = logprob_confidence(content, tokens, [[Proposal("Sports")], [Proposal("World")]])
    assert measured is not None
    assert [m.item if m else None for m in measured] == pytest.approx([0.8, 0.4])


def test_an_unusable_item_and_an_unplaced_label_are_told_apart() -> None:
    tokens = _tokens(('{"1": {"label": "', 1.0), ("sport", 0.7), ('"}, "2": 5}', 0.9))
    content = "".join(t.token for t in tokens)
    measured = logprob_confidence(content, tokens, [[Proposal("Sports")], None])
    assert measured is not None
    first, second = measured
    # "sport" was repaired to Sports: not found, so the part's least token stands for it.
    assert first is not None and first.proposals == pytest.approx((0.7,))
    assert second is None


def test_compact_ner_answers_place_each_item_and_mention() -> None:
    """ner-v3 answers leave out the types without mentions (`{}` for none)."""
    tokens = _tokens(
        ('{"1":{},"2":{"', 0.9),
        ("LOCATION", 1.0),
        ('":["', 1.0),
        ("Paris", 0.6),
        ('","', 1.0),
        ("Rome", 0.8),
        ('"]},"3":{"PERSON":["', 1.0),
        ("Ann", 0.7),
        ('"]}}', 0.5),
    )
    content = "".join(t.token for t in tokens)
    parts = item_parts(content, 3)
    assert [content[a:b] for a, b in (p or (0, 0) for p in parts)] == [
        "{}",
        '{"LOCATION":["Paris","Rome"]}',
        '{"PERSON":["Ann"]}',
    ]
    measured = logprob_confidence(
        content,
        tokens,
        [
            [],
            [Proposal("LOCATION", "Paris"), Proposal("LOCATION", "Rome")],
            [Proposal("PERSON", "Ann")],
        ],
    )
    assert measured is not None
    first, second, third = measured
    assert first is not None and first.proposals == () and first.item == pytest.approx(0.9)
    assert second is not None
    assert second.proposals == pytest.approx((0.6, 0.8))
    assert third is not None and third.proposals == pytest.approx((0.7 * 0.5 * 1.0,))


def test_item_parts_of_a_list_and_of_line_keys() -> None:
    listed = '[{"label": "A"}, {"label": "B"}]'
    assert [listed[a:b] for a, b in item_parts(listed, 2)] == ['{"label": "A"}', '{"label": "B"}']
    keyed = '{"line 2": {"x": 1}, "line 1": {"y": 2}}'
    assert [keyed[a:b] for a, b in item_parts(keyed, 2)] == ['{"y": 2}', '{"x": 1}']
    assert item_parts("not json", 2) == [None, None]


P, Q, R = Proposal("PER", "Ann"), Proposal("LOC", "Rome"), Proposal("ORG", "ACME")


def test_vote_keeps_what_more_than_half_hold_and_the_item_is_its_least_sure_call() -> None:
    result = vote([[P, Q], [P, Q], [P], [P, R], None], single=False)
    assert result is not None
    assert result.proposals == (P,)  # Q in 2 of 5: not kept
    assert result.confidences == pytest.approx((0.8,))
    # P 0.8, Q 0.4 -> 0.6, R 0.2 -> 0.8: the least is Q's 0.6.
    assert result.item == pytest.approx(0.6)


def test_vote_counts_a_repeated_mention_by_rank() -> None:
    result = vote([[Q, Q], [Q, Q], [Q]], single=False)
    assert result is not None
    assert result.proposals == (Q, Q)
    assert result.confidences == pytest.approx((1.0, 2 / 3))
    assert result.item == pytest.approx(2 / 3)


def test_single_label_vote_is_the_plurality_and_ties_go_to_the_first_sample() -> None:
    a, b, c = Proposal("Sports"), Proposal("World"), Proposal("Business")
    result = vote([[b], [a], [a], [b], [c]], single=True)
    assert result is not None
    assert result.proposals == (b,)
    assert result.item == pytest.approx(0.4)
    result = vote([None, [a], [a], [b]], single=True)
    assert result is not None and result.proposals == (a,) and result.item == pytest.approx(0.5)


def test_vote_of_nothing_usable_is_none() -> None:
    assert vote([None, None], single=False) is None
    empty = vote([[], []], single=False)
    assert empty is not None and empty.proposals == () and empty.item == 1.0


def test_verdicts_without_logprobs_are_one_and_zero() -> None:
    measured = verdict_confidence(
        Verdicts((True, False), missing=False), '{"1": "yes", "2": "no", "missing": "no"}', None
    )
    assert measured.proposals == (1.0, 0.0)
    assert measured.item == 0.0


def test_verdicts_read_p_yes_from_the_token_or_its_alternatives() -> None:
    tokens = [
        TokenLogprob('{"1": "', 0.0),
        TokenLogprob("yes", math.log(0.9), (("yes", math.log(0.9)), ("no", math.log(0.1)))),
        TokenLogprob('", "2": "', 0.0),
        TokenLogprob("no", math.log(0.7), (("no", math.log(0.7)), ("yes", math.log(0.2)))),
        TokenLogprob('", "3": "', 0.0),
        TokenLogprob("no", math.log(0.6)),  # only "no" is visible: yes = 1 - 0.6
        TokenLogprob('", "missing": "', 0.0),
        TokenLogprob("no", math.log(0.95), (("yes", math.log(0.05)),)),
        TokenLogprob('"}', 0.0),
    ]
    content = "".join(t.token for t in tokens)
    measured = verdict_confidence(Verdicts((True, False, False), missing=False), content, tokens)
    assert measured.proposals == pytest.approx((0.9, 0.2, 0.4))
    assert measured.item == pytest.approx(0.2)  # P(missing = no) is 0.95


def test_a_doubt_about_something_missing_is_the_items() -> None:
    tokens = [
        TokenLogprob('{"1": "', 0.0),
        TokenLogprob("yes", math.log(0.99)),
        TokenLogprob('", "missing": "', 0.0),
        TokenLogprob("no", math.log(0.55), (("yes", math.log(0.45)),)),
        TokenLogprob('"}', 0.0),
    ]
    content = "".join(t.token for t in tokens)
    measured = verdict_confidence(Verdicts((True,), missing=False), content, tokens)
    assert measured.proposals == pytest.approx((0.99,))
    assert measured.item == pytest.approx(0.55)
