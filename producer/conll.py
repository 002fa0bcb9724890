"""CoNLL files: decoding and sentence splitting (the tags are read by the task type).

A CoNLL file holds one token per line, columns separated by whitespace, the token first and
the NER tag last (CoNLL-2003 has four: `token POS chunk NER`). Blank lines end sentences and
`-DOCSTART-` lines separate documents. Everything here is pure except `decode_lines`, which
reads the file so that an encoding error can name its line and byte offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prelabel.errors import DatasetError

DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class ConllSentence:
    """One sentence of a CoNLL file; `line` is the 1-based line of its first token."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    line: int
    #: Why the sentence cannot be used (a line that is not UTF-8), or None.
    error: str | None = None


def decode_lines(path: Path, bad: dict[int, str] | None = None) -> Iterator[tuple[int, str]]:
    """Yield `(line number, text)` for each line of a UTF-8 file, without its line ending.

    Decoding line by line is exact for UTF-8 (a newline byte never occurs inside a multibyte
    character), and lets the error name the line and the byte offset of the first bad byte.
    Without `bad`, a line that is not UTF-8 stops the read; with it, the line's reason is
    recorded there by line number and the line is yielded with replacement characters.
    """
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                reason = (
                    f"{path}:{number}: not UTF-8 (byte 0x{raw[e.start]:02x} at byte offset "
                    f"{offset + e.start}); re-save the file as UTF-8"
                )
                if bad is None:
                    raise DatasetError(reason) from None
                bad[number] = reason
                line = raw.decode("utf-8", errors="replace")
            if number == 1:
                line = line.removeprefix("\ufeff")  # a BOM is not part of the first token
            offset += len(raw)
            yield number, line.rstrip("\r\n")


def parse_conll(
    lines: Iterator[tuple[int, str]], path: Path, bad: dict[int, str] | None = None
) -> list[ConllSentence]:
    """Split numbered CoNLL lines into sentences: token from the first column, tag from the last.

    A last sentence without a trailing blank line (a truncated file) is kept. A token line
    with a single column has no tag to read, which means the file is not what we think it
    is, so it stops the load rather than being guessed at.
    """
    sentences: list[ConllSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    errors: list[str] = []

    def flush() -> None:
        if tokens:
            error = errors[0] if errors else None
            sentences.append(ConllSentence(tuple(tokens), tuple(tags), first_line, error))
            tokens.clear()
            tags.clear()
        errors.clear()

    for number, line in lines:
        columns = line.split()
        if not columns:
            flush()
            continue
        if columns[0] == DOCSTART:
            flush()
            continue
        if len(columns) < 2:
            raise DatasetError(
                f"{path}:{number}: one column {columns[0]!r} where a token and its NER tag "
                "were expected; give CoNLL lines as `token ... TAG` (the tag in the last column)"
            )
        if not tokens:
            first_line = number
        if bad and number in bad:
            errors.append(bad[number])
        tokens.append(columns[0])
        tags.append(columns[-1])
    flush()
    return sentences


def read_conll(path: Path) -> list[ConllSentence]:
    """Read a UTF-8 CoNLL file into sentences; raise `DatasetError` if it holds none.

    A sentence with a line that is not UTF-8 is returned with its `error` set, so that it
    is skipped with its reason and the rest of the file is still labeled.
    """
    bad: dict[int, str] = {}
    sentences = parse_conll(decode_lines(path, bad), path, bad)
    if not sentences:
        raise DatasetError(
            f"{path}: no sentences found (the file is empty or holds only blank and "
            "-DOCSTART- lines); point to a CoNLL file with `token ... TAG` lines"
        )
    return sentences
