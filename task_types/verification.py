"""The verification question of `--confidence verify`, written and read in one place.

After an item is labeled, one more short request asks the model whether each label or
mention its answer proposed is right and, where several may apply (NER, multi-label), whether
any is missing. The workers build the question and read its answer; the simulator reads the
question to answer it from gold. The format:

    system: VERIFY_SYSTEM
    user:   Text: <the item's text, on one line>

            Labels:
            - LOCATION: countries, cities, ...

            Proposed:
            1. LOCATION: "Tokyo"        (a mention: its label's name, its text as JSON)
            2. Sports                   (a label: its name)

            <the questions>

and the answer, under a strict schema (`response_format`): `{"1": "yes", "2": "no",
"missing": "no"}` (`missing` only when asked).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prelabel.errors import ItemError
from prelabel.model import LabelSet

#: The response format's schema name; the simulator knows a verification by it (or, in JSON
#: mode, by the system message).
SCHEMA_NAME = "prelabel_verification"
VERIFY_SYSTEM = (
    'You check labels proposed for a text. For each numbered proposal, answer "yes" if it '
    'is right and "no" if it is not. When asked whether anything is missing, answer '
    '"yes" if the text holds something the proposals should have named and do not. '
    "Answer with a JSON object only."
)
MISSING = "missing"
_MENTION = re.compile(r'(\d+)\. (.*?): ("(?:[^"\\]|\\.)*")\Z')
_LABEL = re.compile(r"(\d+)\. (.*)\Z")


@dataclass(frozen=True, slots=True)
class Proposal:
    """A label (by the name the model sees) an answer proposed, with the mention's text for a
    mention (NER) or "" for a label of the whole text (classification)."""

    label: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class Question:
    """A verification question as the simulator reads it back."""

    text: str
    proposals: tuple[Proposal, ...]
    asks_missing: bool


@dataclass(frozen=True, slots=True)
class Verdicts:
    """The answer: True (yes) or False (no) per proposal, and whether something is missing
    (None when not asked)."""

    right: tuple[bool, ...]
    missing: bool | None = None


def messages(
    text: str,
    proposals: Sequence[Proposal],
    labels: LabelSet,
    *,
    asks_missing: bool,
    noun: str,
) -> list[dict[str, str]]:
    """The verification's chat messages for an item's `text` and its answer's `proposals`;
    `noun` names what is proposed in the question (`entities`, `labels`)."""
    lines = [f"Text: {' '.join(text.split())}", "", "Labels:"]
    lines += [
        f"- {t.name}: {t.description}" if t.description else f"- {t.name}" for t in labels.labels
    ]
    lines += ["", "Proposed:"]
    if not proposals:
        lines.append("(none)")
    for n, p in enumerate(proposals, 1):
        lines.append(
            f"{n}. {p.label}: {json.dumps(p.text, ensure_ascii=False)}"
            if p.text
            else f"{n}. {p.label}"
        )
    lines.append("")
    if proposals:
        lines.append('Is each proposal right? Answer "yes" or "no" for each number.')
    if asks_missing:
        lines.append(
            f"Is anything missing: does the text hold {noun} of these labels that the "
            f'proposals do not name? Answer "yes" or "no" as "{MISSING}".'
        )
    return [
        {"role": "system", "content": VERIFY_SYSTEM},
        {"role": "user", "content": "\n".join(lines)},
    ]


def response_format(count: int, *, asks_missing: bool) -> dict[str, Any]:
    """The strict schema of the answer to a question with `count` proposals."""
    keys = [str(n) for n in range(1, count + 1)] + ([MISSING] if asks_missing else [])
    yes_no = {"type": "string", "enum": ["yes", "no"]}
    return {
        "type": "json_schema",
        "json_schema": {
            "name": SCHEMA_NAME,
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {k: yes_no for k in keys},
                "required": keys,
                "additionalProperties": False,
            },
        },
    }


def is_verification(messages: Sequence[Mapping[str, Any]], body: Mapping[str, Any]) -> bool:
    """Whether a chat request is a verification (by its schema's name, or its system
    message in JSON mode)."""
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and isinstance(fmt.get("json_schema"), Mapping):
        return bool(fmt["json_schema"].get("name") == SCHEMA_NAME)
    return bool(messages) and bool(messages[0].get("content") == VERIFY_SYSTEM)


def read_question(messages: Sequence[Mapping[str, Any]]) -> Question:
    """The text, proposals and whether `missing` is asked, of a verification's messages;
    ValueError when they are not one."""
    user = next((m.get("content") for m in messages if m.get("role") == "user"), None)
    if not isinstance(user, str) or not user.startswith("Text: "):
        raise ValueError("not a verification question: no 'Text:' line")
    lines = user.split("\n")
    text = lines[0].removeprefix("Text: ")
    try:
        start = lines.index("Proposed:") + 1
    except ValueError:
        raise ValueError("not a verification question: no 'Proposed:' line") from None
    proposals: list[Proposal] = []
    for line in lines[start:]:
        if not line or line == "(none)":
            break
        mention = _MENTION.match(line)
        if mention:
            proposals.append(Proposal(mention.group(2), json.loads(mention.group(3))))
            continue
        label = _LABEL.match(line)
        if label is None:
            raise ValueError(f"not a verification question: unreadable proposal {line!r}")
        proposals.append(Proposal(label.group(2)))
    return Question(text, tuple(proposals), f'as "{MISSING}"' in user)


def answer(verdicts: Verdicts) -> str:
    """The JSON answer giving `verdicts` (the simulator's)."""
    out = {str(n): "yes" if v else "no" for n, v in enumerate(verdicts.right, 1)}
    if verdicts.missing is not None:
        out[MISSING] = "yes" if verdicts.missing else "no"
    return json.dumps(out, separators=(",", ":"))  # compact, as structured outputs write it


def read_answer(content: str, count: int, *, asks_missing: bool) -> Verdicts:
    """The verdicts of an answer to a question with `count` proposals; ItemError naming what
    is missing or not a yes or no."""
    try:
        data = json.loads(content)
    except ValueError:
        raise ItemError(f"the verification's answer is not JSON: {content[:120]!r}") from None
    if not isinstance(data, dict):
        raise ItemError(f"the verification's answer is not a JSON object: {content[:120]!r}")
    keys = [str(n) for n in range(1, count + 1)] + ([MISSING] if asks_missing else [])
    read: dict[str, bool] = {}
    for key in keys:
        value = data.get(key)
        word = value.strip().casefold() if isinstance(value, str) else value
        if word in ("yes", True):
            read[key] = True
        elif word in ("no", False):
            read[key] = False
        else:
            raise ItemError(
                f"the verification's answer has no yes or no for {key!r}: {content[:120]!r}"
            )
    return Verdicts(
        tuple(read[str(n)] for n in range(1, count + 1)),
        read[MISSING] if asks_missing else None,
    )
