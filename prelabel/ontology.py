"""Read a user's ontology file: entity types with names, dataset tags and descriptions.

A TOML file (`tomllib`, no new dependency) or a JSON file with the same shape:

    [[types]]
    name = "PERSON"            # what the model sees and answers with
    tag = "PER"                # what the dataset's BIO tags call it (B-PER, I-PER)
    description = "names of people, real or fictional"

The mapping from the model's names to the dataset's tags is explicit: every type names its
tag, and nothing is guessed from the spelling.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prelabel.errors import ConfigError
from prelabel.files import read_toml_or_json
from prelabel.model import EntityType, Ontology

_TYPE_KEYS = {"name", "tag", "description"}
#: A type name is a JSON key in the answer and a property of the strict answer schema.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
#: A tag follows `B-`/`I-` in the dataset's tags, so it holds no whitespace.
_TAG = re.compile(r"[^\s]{1,64}")


def load_ontology(path: Path) -> Ontology:
    """The ontology in `path` (TOML or JSON); raises ConfigError naming the file and the fix."""
    data = _read(path)
    unknown = set(data) - {"types"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {sorted(unknown)}; an ontology file holds [[types]]"
        )
    raw_types = data.get("types")
    if not isinstance(raw_types, list) or not raw_types:
        raise ConfigError(
            f"{path}: no entity types; add [[types]] entries with name, tag, description"
        )
    types = [_entity_type(path, i, raw) for i, raw in enumerate(raw_types, 1)]
    _check_unique(path, [t.name for t in types], "name", fold=True)
    _check_unique(path, [t.tag for t in types], "tag", fold=False)
    return Ontology(types=tuple(types))


def restrict(ontology: Ontology, tags: Sequence[str], where: str) -> Ontology:
    """Only the types of `ontology` whose tag is in `tags` (for `--entity-types`)."""
    known = ontology.by_tag()
    missing = [tag for tag in tags if tag not in known]
    if missing:
        raise ConfigError(
            f"--entity-types {','.join(missing)}: not in {where}; its tags are {','.join(known)}"
        )
    return Ontology(types=tuple(t for t in ontology.types if t.tag in set(tags)))


def _read(path: Path) -> dict[str, Any]:
    data = read_toml_or_json(path, f"--ontology {path}")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an object with a 'types' list")
    return data


def _entity_type(path: Path, i: int, raw: object) -> EntityType:
    where = f"{path}: type #{i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is not a table with name, tag and description")
    unknown = set(raw) - _TYPE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; use name, tag, description")
    name, tag, description = raw.get("name"), raw.get("tag"), raw.get("description", "")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: name {name!r} must be a letter then letters, digits, _ or - (at most 64)"
        )
    if not isinstance(tag, str) or not _TAG.fullmatch(tag) or tag == "O":
        raise ConfigError(
            f"{where} ({name}): tag {tag!r} must be the dataset's tag name, e.g. PER for B-PER"
        )
    if not isinstance(description, str) or "\n" in description.strip():
        raise ConfigError(f"{where} ({name}): description must be a one-line string")
    return EntityType(name=name, tag=tag, description=description.strip())


def _check_unique(path: Path, values: list[str], what: str, *, fold: bool) -> None:
    seen: set[str] = set()
    for value in values:
        # Names are matched case-insensitively when answers are parsed: "Person" is PERSON.
        key = value.casefold() if fold else value
        if key in seen:
            raise ConfigError(f"{path}: {what} {value!r} is used by two types; make it unique")
        seen.add(key)
