"""Files: reading the settings files users write (TOML or JSON), and writing result files so
that a reader (or a crash) never sees half of one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

from prelabel.errors import ConfigError, DatasetError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def readable_mode(directory: bool = False) -> int:
    """The mode a plain `open` (or `mkdir`) would give under the umask: 0644 (0755) at the
    usual 022. mkstemp and mkdtemp make 0600 and 0700; results are for people to open."""
    return (0o777 if directory else 0o666) & ~_umask()


def write_atomic(path: Path, lines: Iterable[str] | str | bytes) -> None:
    """Write `lines` (or one string, or bytes) to a temporary file beside `path`, then rename
    it over."""
    chunks: Iterable[str | bytes] = [lines] if isinstance(lines, str | bytes) else lines
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, readable_mode())
        try:
            if isinstance(lines, bytes):
                with os.fdopen(fd, "wb") as raw:
                    raw.write(lines)
                    raw.flush()
                    os.fsync(raw.fileno())
            else:
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                    for chunk in chunks:
                        assert isinstance(chunk, str)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise ConfigError(
            f"cannot write {path}: {exc.strerror}; check the output directory"
        ) from exc


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """A new directory beside `path` to write a folder's files into, swapped in for `path`
    (whatever it held) when the block ends, and removed if the block fails: as `write_atomic`
    for a folder. OSError is the caller's to turn into a message."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    os.chmod(tmp, readable_mode(directory=True))  # mkdtemp makes 0700
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_toml_or_json(path: Path, what: str) -> object:
    """The data in a TOML file, or a JSON one (by its `.json` suffix). ConfigError, naming
    `what` (the flag or variable that gave the path, with it), when it cannot be read or
    parsed; the caller checks the data's shape."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what}: cannot be read ({exc.strerror or exc})") from None
    is_json = path.suffix.lower() == ".json"
    try:
        return json.loads(text) if is_json else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        kind = "JSON" if is_json else "TOML"
        raise ConfigError(f"{what}: not valid {kind} ({first})") from None


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a UTF-8 file; an unreadable file is a DatasetError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}; check the path and the encoding") from exc
    yield from enumerate(text.splitlines(), start=1)
