"""A classification label file: names one per line (AG News' classes.txt), or TOML/JSON
`[[labels]]` with name, tag and description (helper A)."""

from __future__ import annotations

from pathlib import Path

from prelabel.labels import read_label_set
from prelabel.model import LabelSet


def read_labels(path: Path) -> LabelSet:
    return read_label_set(path, flag="--labels", key="labels", noun="labels")
