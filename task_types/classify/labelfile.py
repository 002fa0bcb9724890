"""A classification label file (`--labels`), in one of two forms:

- plain text (AG News' classes.txt, GoEmotions' emotions.txt): one label name per line, in id
  order when the data holds integer ids; blank lines are ignored, a name listed twice is an
  error. Each label's name is its tag, with no description.
- TOML or JSON (`.toml`, `.json`): `[[labels]]` entries with name, tag and description, like
  NER's ontology (`prelabel.labels.read_label_set`); the entries' order is the id order.
"""

from __future__ import annotations

from pathlib import Path

from prelabel.errors import ConfigError
from prelabel.labels import read_label_set
from prelabel.model import Label, LabelSet

#: Suffixes read as TOML or JSON `[[labels]]`; any other file is one name per line.
STRUCTURED = frozenset({".toml", ".json"})


def read_labels(path: Path) -> LabelSet:
    """The label set in `path`; ConfigError naming the file (and line) and the fix."""
    if path.suffix.lower() in STRUCTURED:
        return read_label_set(path, flag="--labels", key="labels", noun="labels")
    return _read_names(path)


def _read_names(path: Path) -> LabelSet:
    try:
        # utf-8-sig: a byte-order mark (as some editors on Windows write) is not in a name.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"--labels {path}: no such file; check the path") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"--labels {path}: not UTF-8 (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
            "re-save the file as UTF-8"
        ) from None
    except OSError as e:
        raise ConfigError(f"--labels {path}: cannot be read ({e.strerror or e})") from None
    first_line: dict[str, int] = {}
    labels: list[Label] = []
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        # Names are matched case-insensitively when answers are read: "Joy" is "joy".
        folded = name.casefold()
        if folded in first_line:
            raise ConfigError(
                f"{path}:{number}: label {name!r} is listed twice (first on line "
                f"{first_line[folded]}); list each label once"
            )
        first_line[folded] = number
        labels.append(Label(name=name, tag=name))
    if not labels:
        raise ConfigError(
            f"{path}: no labels; list one label name per line, or give a .toml or .json file "
            "with [[labels]] entries (name, tag, description)"
        )
    return LabelSet(labels=tuple(labels))
