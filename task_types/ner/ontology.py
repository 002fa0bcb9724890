"""NER's label set: an ontology file's entity types, and what their names and tags may be.

An ontology file is a label-set file (`prelabel.labels`) whose list is `[[types]]`:

    [[types]]
    name = "PERSON"            # what the model sees and answers with
    tag = "PER"                # what the dataset's BIO tags call it (B-PER, I-PER)
    description = "names of people, real or fictional"
"""

from __future__ import annotations

import re
from pathlib import Path

from prelabel.errors import ConfigError
from prelabel.labels import read_label_set
from task_types.ner.model import Ontology

#: A type name is a JSON key in the answer and a property of the strict answer schema.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,63}")
#: A tag follows `B-`/`I-` in the dataset's tags, so it holds no whitespace.
_TAG = re.compile(r"[^\s]{1,64}")


def load_ontology(path: Path) -> Ontology:
    """The ontology in `path` (TOML or JSON); raises ConfigError naming the file and the fix."""
    return read_label_set(path, flag="--ontology", key="types", noun="entity types", check=_check)


def _check(where: str, name: object, tag: object) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: name {name!r} must be a letter then letters, digits, _ or - (at most 64)"
        )
    if not isinstance(tag, str) or not _TAG.fullmatch(tag) or tag == "O":
        raise ConfigError(
            f"{where} ({name}): tag {tag!r} must be the dataset's tag name, e.g. PER for B-PER"
        )
