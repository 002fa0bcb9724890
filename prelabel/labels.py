"""Read a user's label-set file: labels with names, dataset tags and descriptions.

A TOML file (`tomllib`, no new dependency) or a JSON file with the same shape; the list's
key is the task type's (NER's ontology files hold `[[types]]`):

    [[types]]
    name = "PERSON"            # what the model sees and answers with
    tag = "PER"                # what the dataset calls it
    description = "names of people, real or fictional"

The mapping from the model's names to the dataset's tags is explicit: every label names its
tag, and nothing is guessed from the spelling. What a name or a tag may hold is the task
type's to check (`check`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prelabel.errors import ConfigError
from prelabel.files import read_toml_or_json
from prelabel.model import Label, LabelSet

_LABEL_KEYS = {"name", "tag", "description"}

#: Checks one label's raw name and tag (`where` names the entry); raises ConfigError.
LabelCheck = Callable[[str, object, object], None]


def read_label_set(
    path: Path, *, flag: str, key: str, noun: str, check: LabelCheck | None = None
) -> LabelSet:
    """The label set in `path` (TOML or JSON), its labels listed under `key`.

    `flag` is the option that named the file and `noun` what its labels are called, for
    messages; raises ConfigError naming the file and the fix.
    """
    data = _read(path, flag, key)
    unknown = set(data) - {key}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; the file holds [[{key}]]")
    raw_labels = data.get(key)
    if not isinstance(raw_labels, list) or not raw_labels:
        raise ConfigError(f"{path}: no {noun}; add [[{key}]] entries with name, tag, description")
    labels = [_label(path, key, i, raw, check) for i, raw in enumerate(raw_labels, 1)]
    _check_unique(path, [t.name for t in labels], "name", key, fold=True)
    _check_unique(path, [t.tag for t in labels], "tag", key, fold=False)
    return LabelSet(labels=tuple(labels))


def restrict(ontology: LabelSet, tags: Sequence[str], where: str) -> LabelSet:
    """Only the labels of `ontology` whose tag is in `tags` (for `--entity-types`)."""
    known = ontology.by_tag()
    missing = [tag for tag in tags if tag not in known]
    if missing:
        raise ConfigError(
            f"--entity-types {','.join(missing)}: not in {where}; its tags are {','.join(known)}"
        )
    return LabelSet(labels=tuple(t for t in ontology.labels if t.tag in set(tags)))


def _read(path: Path, flag: str, key: str) -> dict[str, Any]:
    data = read_toml_or_json(path, f"{flag} {path}")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an object with a {key!r} list")
    return data


def _label(path: Path, key: str, i: int, raw: object, check: LabelCheck | None) -> Label:
    where = f"{path}: {key.removesuffix('s')} #{i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is not a table with name, tag and description")
    unknown = set(raw) - _LABEL_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; use name, tag, description")
    name, tag, description = raw.get("name"), raw.get("tag"), raw.get("description", "")
    if check is not None:
        check(where, name, tag)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name {name!r} must be a non-empty string")
    if not isinstance(tag, str) or not tag:
        raise ConfigError(f"{where} ({name}): tag {tag!r} must be a non-empty string")
    if not isinstance(description, str) or "\n" in description.strip():
        raise ConfigError(f"{where} ({name}): description must be a one-line string")
    return Label(name=name, tag=tag, description=description.strip())


def _check_unique(path: Path, values: list[str], what: str, key: str, *, fold: bool) -> None:
    seen: set[str] = set()
    for value in values:
        # Names are matched case-insensitively when answers are parsed: "Person" is PERSON.
        folded = value.casefold() if fold else value
        if folded in seen:
            raise ConfigError(f"{path}: {what} {value!r} is used by two {key}; make it unique")
        seen.add(folded)
