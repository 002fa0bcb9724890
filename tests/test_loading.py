"""Loading datasets: every format, split mapping, ids, limits, and every kind of bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import huggingface_hub.constants
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from prelabel.errors import DatasetError
from producer.loading import (
    DatasetSpec,
    LoadedDataset,
    _hub_table,
    load_dataset_records,
)
from task_types.ner.bio import TagError, checked_iob2
from task_types.ner.records import word_spans
from tests.conftest import SAMPLE_CONLL

EU = ["EU", "rejects", "German", "call"]
EU_TAGS = ["B-ORG", "O", "B-MISC", "O"]


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give `datasets` a fresh cache per test, so no test reads or litters the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")


def conll_text(*sentences: list[tuple[str, str]], docstart: bool = True) -> str:
    """CoNLL-2003 style text: 4 columns, a -DOCSTART- header, blank lines between sentences."""
    head = "-DOCSTART- -X- -X- O\n\n" if docstart else ""
    body = "\n\n".join("\n".join(f"{t} X X {tag}" for t, tag in s) for s in sentences)
    return head + body + "\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    return write(path, "".join(json.dumps(row) + "\n" for row in rows))


def load(source: Path | str, **options: object) -> LoadedDataset:
    return load_dataset_records(DatasetSpec(source=str(source), **options))  # type: ignore[arg-type]


def load_error(source: Path | str, **options: object) -> str:
    """The message of the DatasetError the load raises; it must be a single line."""
    with pytest.raises(DatasetError) as info:
        load(source, **options)
    message = str(info.value)
    assert "\n" not in message
    return message


def entities(tags: tuple[str, ...] | None) -> int:
    return sum(1 for tag in tags or () if tag.startswith("B-"))


# --- CoNLL ---------------------------------------------------------------------------------


def test_conll_file_reads_tokens_tags_ids_and_types(tmp_path: Path) -> None:
    path = write(
        tmp_path / "news.conll",
        conll_text(
            list(zip(EU, EU_TAGS, strict=True)), [("Peter", "B-PER"), ("Blackburn", "I-PER")]
        ),
    )

    loaded = load(path, split="test")

    assert [r.id for r in loaded.records] == ["test-000000", "test-000001"]
    first = loaded.records[0]
    assert first.tokens == tuple(EU)
    assert first.text == "EU rejects German call"
    assert first.gold_tags == tuple(EU_TAGS)
    assert loaded.records[1].gold_tags == ("B-PER", "I-PER")
    assert loaded.labels == ("MISC", "ORG", "PER")
    assert loaded.skipped == []
    assert loaded.split == "test"
    assert str(path) in loaded.source and "CoNLL" in loaded.source


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a B-PER\nb O", [("a", "b")], id="two-columns-no-trailing-newline"),
        pytest.param("a\tX\tB-PER\r\nb\tX\tO\r\n", [("a", "b")], id="tabs-and-crlf"),
        pytest.param("\ufeffa X X O\n\n\n\nb X X O\n", [("a",), ("b",)], id="bom-and-blank-runs"),
        pytest.param(
            "-DOCSTART- -X- -X- O\na X X O\n-DOCSTART- -X- -X- O\nb X X O",
            [("a",), ("b",)],
            id="docstart-ends-a-sentence",
        ),
    ],
)
def test_conll_layout_variants(tmp_path: Path, text: str, expected: list[tuple[str, ...]]) -> None:
    loaded = load(write(tmp_path / "x.txt", text))
    assert [r.tokens for r in loaded.records] == expected


def test_conll_iob1_file_is_converted_to_iob2(tmp_path: Path) -> None:
    # IOB1: entities start with I-; B- only separates two adjacent entities of one type.
    sentence = [
        ("Rio", "I-LOC"),
        ("Grande", "I-LOC"),
        ("Lima", "B-LOC"),
        ("and", "O"),
        ("UN", "I-ORG"),
    ]
    loaded = load(write(tmp_path / "iob1.txt", conll_text(sentence)))
    assert loaded.records[0].gold_tags == ("B-LOC", "I-LOC", "B-LOC", "O", "B-ORG")


@pytest.mark.parametrize(
    ("names", "split", "chosen"),
    [
        (["train.txt", "valid.txt", "test.txt"], "test", "test.txt"),
        (["train.txt", "valid.txt", "test.txt"], "valid", "valid.txt"),
        (["train.txt", "valid.txt", "test.txt"], "validation", "valid.txt"),
        (["train.txt", "valid.txt", "test.txt"], "dev", "valid.txt"),
        (["train.txt", "valid.txt", "test.txt"], "train", "train.txt"),
        (["eng.train", "eng.testa", "eng.testb"], "testa", "eng.testa"),
        (["eng.train", "eng.testa", "eng.testb"], "validation", "eng.testa"),
        (["eng.train", "eng.testa", "eng.testb"], "test", "eng.testb"),
        (["eng.train", "eng.testa", "eng.testb"], "testb", "eng.testb"),
        (["train.conll", "dev.conll", "test.conll"], "valid", "dev.conll"),
        (["train.conll", "dev.conll", "README.md"], "train", "train.conll"),
    ],
)
def test_conll_folder_maps_split_names_to_files(
    tmp_path: Path, names: list[str], split: str, chosen: str
) -> None:
    for name in names:
        # Each file's only token is its own name, so the record shows which file was read.
        write(tmp_path / name, conll_text([(name, "O")]))

    loaded = load(tmp_path, split=split)

    assert loaded.records[0].tokens == (chosen,)
    assert loaded.records[0].id == f"{split}-000000"
    assert chosen in loaded.source and tmp_path.name in loaded.source


def test_conll_folder_unknown_split_lists_the_splits_found(tmp_path: Path) -> None:
    for name in ("train.txt", "valid.txt"):
        write(tmp_path / name, conll_text([("a", "O")]))
    message = load_error(tmp_path, split="test")
    assert str(tmp_path) in message
    assert "'test'" in message and "train (train.txt)" in message
    assert "validation (valid.txt)" in message


def test_conll_folder_with_two_files_for_one_split_is_refused(tmp_path: Path) -> None:
    for name in ("test.txt", "eng.testb"):
        write(tmp_path / name, conll_text([("a", "O")]))
    message = load_error(tmp_path, split="test")
    assert "test.txt" in message and "eng.testb" in message


# --- the IOB scheme (pure) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([], []),
        (["O", "O"], ["O", "O"]),
        (["B-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"]),
        (["I-PER", "I-PER"], ["B-PER", "I-PER"]),
        (["I-PER", "B-PER"], ["B-PER", "B-PER"]),
        (["O", "I-LOC", "I-ORG"], ["O", "B-LOC", "B-ORG"]),
        (["B-LOC", "I-ORG"], ["B-LOC", "B-ORG"]),
        (["I-WORK-OF-ART", "I-WORK-OF-ART"], ["B-WORK-OF-ART", "I-WORK-OF-ART"]),
    ],
)
def test_to_iob2(tags: list[str], expected: list[str]) -> None:
    assert checked_iob2(tags) == tuple(expected)


@pytest.mark.parametrize(
    ("tags", "allowed", "fragment"),
    [
        (["O", "X-PER"], None, "unknown tag 'X-PER' at token 1"),
        (["B-"], None, "unknown tag 'B-'"),
        (["PER"], None, "unknown tag 'PER'"),
        (["o"], None, "unknown tag 'o'"),
        (["S-PER"], None, "unknown tag 'S-PER'"),
        (["B-PER", "B-DATE"], frozenset({"PER"}), "type 'DATE'"),
    ],
)
def test_to_iob2_rejects(tags: list[str], allowed: frozenset[str] | None, fragment: str) -> None:
    with pytest.raises(TagError, match=fragment):
        checked_iob2(tags, allowed)


@given(
    st.lists(
        st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]),
        max_size=12,
    )
)
def test_to_iob2_gives_valid_iob2_and_is_idempotent(tags: list[str]) -> None:
    out = checked_iob2(tags)
    assert len(out) == len(tags)
    for i, tag in enumerate(out):
        if tag.startswith("I-"):
            assert i > 0 and out[i - 1][2:] == tag[2:]
    assert checked_iob2(out) == out
    # Conversion never changes where the tokens of an entity type are, only how they start.
    assert [t[2:] for t in out] == [t[2:] for t in tags]


# --- JSONL, CSV, Parquet -------------------------------------------------------------------


def test_jsonl_with_tokens_and_tags(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "data.jsonl",
        [{"tokens": EU, "ner_tags": EU_TAGS}, {"tokens": ["Hi", "there"], "ner_tags": ["O", "O"]}],
    )
    loaded = load(path, split="train")
    assert [r.tokens for r in loaded.records] == [tuple(EU), ("Hi", "there")]
    assert loaded.records[0].gold_tags == tuple(EU_TAGS)
    assert [r.id for r in loaded.records] == ["train-000000", "train-000001"]
    assert loaded.labels == ("MISC", "ORG")
    assert "JSONL" in loaded.source


def test_jsonl_text_only_keeps_the_original_text_and_true_offsets(tmp_path: Path) -> None:
    texts = ["  Élise O'Neil visited São Paulo,  twice!", "U.S.-based firm\tsaid: no."]
    loaded = load(write_jsonl(tmp_path / "t.jsonl", [{"text": t} for t in texts]))
    for record, text in zip(loaded.records, texts, strict=True):
        assert record.text == text
        assert record.gold_tags is None
        assert len(record.tokens) == len(record.offsets)
        for token, (start, end) in zip(record.tokens, record.offsets, strict=True):
            assert text[start:end] == token
    assert loaded.records[0].tokens[:3] == ("Élise", "O'Neil", "visited")
    assert loaded.labels == ()


@given(st.text(alphabet=st.sampled_from("ab -'.,\t\n\u00e9\u0416!_1"), max_size=30))
def test_word_spans_cover_every_non_space_character(text: str) -> None:
    spans = word_spans(text)
    position = 0
    for token, start, end in spans:
        assert text[start:end] == token and token
        assert start >= position and text[position:start].strip() == ""
        position = end
    assert text[position:].strip() == ""


def test_csv_with_list_literals_spaced_strings_and_na_words(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    pd.DataFrame(
        {
            "tokens": [str(EU), "NA said no", json.dumps(["Hi"])],
            "ner_tags": [str(EU_TAGS), "B-ORG O O", '["O"]'],
        }
    ).to_csv(path, index=False)

    loaded = load(path)

    assert [r.tokens for r in loaded.records] == [tuple(EU), ("NA", "said", "no"), ("Hi",)]
    assert loaded.records[1].gold_tags == ("B-ORG", "O", "O")
    assert "CSV" in loaded.source


def test_csv_text_only(tmp_path: Path) -> None:
    path = tmp_path / "text.csv"
    pd.DataFrame({"sentence": ["Hello, Lyon.", "null"]}).to_csv(path, index=False)
    loaded = load(path, text_field="sentence")
    assert [r.tokens for r in loaded.records] == [("Hello", ",", "Lyon", "."), ("null",)]


def test_parquet_with_integer_tags_and_tag_names(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pd.DataFrame(
        {"tokens": [EU, ["Paris"]], "ner_tags": [[3, 0, 7, 0], [5]], "uid": ["a7", "b9"]}
    ).to_parquet(path)
    names = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")

    loaded = load(path, tag_names=names, id_field="uid")

    assert loaded.records[0].gold_tags == tuple(EU_TAGS)
    assert loaded.records[1].gold_tags == ("B-LOC",)
    assert [r.id for r in loaded.records] == ["a7", "b9"]
    # Declared tag names give the entity types, even those no record uses.
    assert loaded.labels == ("LOC", "MISC", "ORG", "PER")
    assert "Parquet" in loaded.source


def test_parquet_integer_tags_use_the_class_label_names(tmp_path: Path) -> None:
    names = ["O", "B-PER", "I-PER"]
    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(datasets.ClassLabel(names=names)),
        }
    )
    path = tmp_path / "labels.parquet"
    datasets.Dataset.from_dict(
        {"tokens": [["Ann", "Lee", "ran"]], "ner_tags": [[1, 2, 0]]}, features=features
    ).to_parquet(str(path))

    loaded = load(path)

    assert loaded.records[0].gold_tags == ("B-PER", "I-PER", "O")
    assert loaded.labels == ("PER",)


def test_integer_tags_without_names_ask_for_tag_names(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ints.jsonl", [{"tokens": ["a"], "ner_tags": [1]}])
    message = load_error(path)
    assert str(path) in message and "tag_names" in message


def test_explicit_format_overrides_the_extension(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.txt", [{"tokens": ["a"], "ner_tags": ["O"]}])
    assert load(path, format="jsonl").records[0].tokens == ("a",)


def test_folder_of_jsonl_files_maps_splits_too(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", [{"text": "from train"}])
    write_jsonl(tmp_path / "dev.jsonl", [{"text": "from dev"}])
    assert load(tmp_path, split="validation").records[0].text == "from dev"


# --- ids and limit -------------------------------------------------------------------------


def test_ids_are_stable_and_count_skipped_items(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.txt",
        conll_text([("a", "O")], [("b", "X-BAD")], [("c", "O")], [("d", "B-LOC")]),
    )
    first, second = load(path), load(path)
    assert [r.id for r in first.records] == ["test-000000", "test-000002", "test-000003"]
    assert first.records == second.records
    assert first.skipped == second.skipped


def test_limit_applies_after_skipping(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.txt", conll_text([("a", "BAD")], [("b", "O")], [("c", "O")], [("d", "O")])
    )
    loaded = load(path, limit=2)
    assert [r.tokens for r in loaded.records] == [("b",), ("c",)]
    assert len(loaded.skipped) == 1


def test_duplicate_ids_from_an_id_field_are_skipped(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [{"k": "x", "text": "one"}, {"k": "x", "text": "two"}, {"k": 3, "text": "three"}],
    )
    loaded = load(path, id_field="k")
    assert [r.id for r in loaded.records] == ["x", "3"]
    assert loaded.skipped == [(f"{path} row 2 (x)", "duplicate id 'x'")]


# --- items that are skipped ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"tokens": ["a", "b"], "ner_tags": ["O"]}, "1 tags for 2 tokens"),
        ({"tokens": ["a"], "ner_tags": ["E-PER"]}, "unknown tag 'E-PER' at token 0"),
        ({"tokens": ["a"], "ner_tags": ["B-DATE"]}, "type 'DATE'"),
        ({"tokens": [], "ner_tags": []}, "empty sentence"),
        ({"tokens": [" ", ""], "ner_tags": ["O", "O"]}, "empty sentence"),
        ({"tokens": ["a", " "], "ner_tags": ["O", "O"]}, "token 1 is empty"),
        ({"tokens": "['a', 'b'", "ner_tags": "O O"}, "cannot parse the tokens list"),
    ],
)
def test_bad_items_are_skipped_with_a_reason(
    tmp_path: Path, row: dict[str, object], reason: str
) -> None:
    good = {"tokens": ["fine"], "ner_tags": ["O"]}
    # CSV stores lists as strings, so one table holds every row shape.
    path = tmp_path / "items.csv"
    pd.DataFrame(
        [{k: str(v) if isinstance(v, list) else v for k, v in r.items()} for r in (good, row)]
    ).to_csv(path, index=False)

    loaded = load(path, labels=("PER",))

    assert [r.tokens for r in loaded.records] == [("fine",)]
    [(where, why)] = loaded.skipped
    assert where == f"{path} row 2 (test-000001)"
    assert reason in why


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_text_is_skipped(tmp_path: Path, text: str) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [{"text": "ok"}, {"text": text}])
    loaded = load(path)
    assert loaded.skipped == [(f"{path} row 2 (test-000001)", "empty sentence")]


def test_text_with_tags_that_do_not_fit_its_words_is_skipped(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "tt.jsonl",
        [{"text": "Ann ran.", "ner_tags": ["B-PER", "O", "O"]}, {"text": "Bo", "ner_tags": []}],
    )
    loaded = load(path)
    assert loaded.records[0].gold_tags == ("B-PER", "O", "O")
    assert "0 tags for 1 tokens" in loaded.skipped[0][1]


def test_conll_skipped_item_names_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.txt", conll_text([("a", "O")], [("b", "O"), ("c", "B-PER"), ("d", "Q")])
    )
    loaded = load(path)
    # Line 1 is -DOCSTART-, 2 blank, 3 "a", 4 blank, 5 "b": the second sentence starts there.
    assert loaded.skipped == [
        (f"{path}:5 (test-000001)", "unknown tag 'Q' at token 2 (expected O, B-TYPE or I-TYPE)")
    ]


def test_every_item_skipped_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "all.txt", conll_text([("a", "BAD")], [("b", "WORSE")]))
    message = load_error(path)
    assert str(path) in message and "none of the 2 items" in message and "'BAD'" in message


# --- files that cannot be read -------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "test.txt"
    message = load_error(missing)
    assert str(missing) in message and "no such file or folder" in message


@pytest.mark.parametrize("name", ["empty.txt", "empty.jsonl", "empty.csv", "empty.parquet"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, "")
    message = load_error(path)
    assert str(path) in message and "empty" in message


def test_conll_without_sentences(tmp_path: Path) -> None:
    path = write(tmp_path / "docs.txt", "-DOCSTART- -X- -X- O\n\n\n-DOCSTART- -X- -X- O\n")
    message = load_error(path)
    assert str(path) in message and "no sentences" in message


def test_a_conll_sentence_that_is_not_utf8_is_skipped_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.txt"
    lines = [b"a X X O\n", b"\n", b"caf\xe9 X X O\n", b"bar X X B-LOC\n", b"\n", b"z X X O\n"]
    path.write_bytes(b"".join(lines))
    offset = len(lines[0]) + len(lines[1]) + lines[2].index(b"\xe9")

    loaded = load_dataset_records(DatasetSpec(source=str(path)))

    assert [r.id for r in loaded.records] == ["test-000000", "test-000002"]
    ((where, reason),) = loaded.skipped
    assert where == f"{path}:3 (test-000001)"
    assert reason.startswith(f"{path}:3: not UTF-8")
    assert f"byte 0xe9 at byte offset {offset}" in reason


@pytest.mark.parametrize("name", ["bad.jsonl", "bad.csv"])
def test_non_utf8_bytes_name_the_line_and_byte(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    lines = {
        ".jsonl": [b'{"text": "ok"}\n', b"\n", b'{"text": "caf\xe9"}\n'],
        ".csv": [b"text\n", b"ok\n", b"caf\xe9\n"],
    }[path.suffix]
    path.write_bytes(b"".join(lines))
    offset = len(lines[0]) + len(lines[1]) + lines[2].index(b"\xe9")

    message = load_error(path)

    assert message.startswith(f"{path}:3: not UTF-8")
    assert f"byte 0xe9 at byte offset {offset}" in message


def test_conll_line_with_one_column(tmp_path: Path) -> None:
    path = write(tmp_path / "one.txt", "a X X O\nlonely\n")
    message = load_error(path)
    assert message.startswith(f"{path}:2:") and "'lonely'" in message


@pytest.mark.parametrize(
    ("lines", "line", "fragment"),
    [
        (['{"text": "ok"}', "not json"], 2, "not valid JSON"),
        (['{"text": "ok"}', "", '{"text": "x"', '{"text": "y"}'], 3, "not valid JSON"),
    ],
)
def test_jsonl_line_that_is_not_json(
    tmp_path: Path, lines: list[str], line: int, fragment: str
) -> None:
    path = write(tmp_path / "broken.jsonl", "\n".join(lines) + "\n")
    message = load_error(path)
    assert message.startswith(f"{path}:{line}: {fragment}")


def test_csv_that_cannot_be_parsed(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.csv", 'text,tokens\n"a b",x\n"c,d\n')
    message = load_error(path)
    assert str(path) in message and "CSV" in message


def test_parquet_that_is_not_parquet(tmp_path: Path) -> None:
    path = write(tmp_path / "fake.parquet", "this is not parquet at all")
    message = load_error(path)
    assert str(path) in message and "Parquet" in message


def test_missing_text_and_tokens_fields_name_the_fields_there(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "f.jsonl", [{"sentence": "hi", "label": 1}])
    message = load_error(path)
    assert str(path) in message
    assert "'tokens'" in message and "'text'" in message and "sentence, label" in message


@pytest.mark.parametrize(("option", "value"), [("id_field", "uid"), ("gold_field", "labels")])
def test_named_field_that_is_missing(tmp_path: Path, option: str, value: str) -> None:
    path = write_jsonl(tmp_path / "f.jsonl", [{"text": "hi", "ner_tags": ["O"]}])
    message = load_error(path, **{option: value})
    assert str(path) in message and repr(value) in message and "text, ner_tags" in message


# --- the Hugging Face hub ------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_hub_offline_gives_one_clean_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # Both libraries read HF_HUB_OFFLINE at import time, so the constants are set as well.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    name = "prelabel-tests/no-such-dataset"
    message = load_error(name)
    assert message.startswith(f"cannot load dataset {name!r} from the Hugging Face hub: offline")
    assert "pass a local file or folder" in message


@pytest.mark.timeout(120)
def test_hub_unreachable_or_unknown_gives_one_clean_line() -> None:
    # Without network the hub client fails on DNS; with network the name does not exist.
    name = "prelabel-tests/no-such-dataset-4f1c"
    message = load_error(name)
    prefix = f"cannot load dataset {name!r} from the Hugging Face hub: "
    reasons = ("the hub cannot be reached", "no such dataset on the hub")
    assert any(message.startswith(prefix + reason) for reason in reasons), message
    assert "pass a local file or folder" in message


def test_hub_unknown_split_names_the_available_ones(tmp_path: Path) -> None:
    # `datasets` resolves a folder like a hub dataset, which exercises the real split check;
    # the public entry would treat the folder as local, hence the private call.
    for split in ("train", "test"):
        pd.DataFrame({"tokens": [["a"]]}).to_parquet(tmp_path / f"{split}.parquet")
    with pytest.raises(DatasetError) as info:
        _hub_table(str(tmp_path), "nope")
    assert (
        str(info.value)
        == f"{tmp_path}: no split 'nope'; available splits: train, test; pass one of them"
    )


# --- shipped and shared data ---------------------------------------------------------------


def test_sample_covers_what_demos_need() -> None:
    loaded = load(SAMPLE_CONLL)
    records = loaded.records
    assert len(records) >= 80 and loaded.skipped == []
    assert loaded.labels == ("LOC", "MISC", "ORG", "PER")
    assert any("I-" in " ".join(r.gold_tags or ()) for r in records)  # multi-token entities
    assert any(entities(r.gold_tags) == 0 for r in records)

    def mentions(record_tags: tuple[str, ...], tokens: tuple[str, ...]) -> list[str]:
        spans: list[list[str]] = []
        for tag, token in zip(record_tags, tokens, strict=True):
            if tag.startswith("B-"):
                spans.append([token])
            elif tag.startswith("I-"):
                spans[-1].append(token)
        return [" ".join(s) for s in spans]

    per_record = [mentions(r.gold_tags or (), r.tokens) for r in records]
    assert any(max(Counter(m).values(), default=0) > 1 for m in per_record)  # repeated mention
    every = {m for ms in per_record for m in ms}
    assert any(a != b and a in b for a in every for b in every)  # "US" inside "USA"


def test_shared_conll_test_split(conll_test_path: Path) -> None:
    loaded = load(conll_test_path, split="test")
    records = loaded.records
    assert len(records) == 3453
    assert sum(len(r.tokens) for r in records) == 46435
    assert sum(entities(r.gold_tags) for r in records) == 5648
    assert loaded.labels == ("LOC", "MISC", "ORG", "PER")
    assert loaded.skipped == []
    assert records[-1].id == "test-003452"
    assert all(r.text == " ".join(r.tokens) for r in records)


def test_blank_or_null_tags_mean_an_unlabeled_item(tmp_path: Path) -> None:
    path = tmp_path / "partly.csv"
    pd.DataFrame({"tokens": ["Ann ran", "Bo sat"], "ner_tags": ["B-PER O", ""]}).to_csv(
        path, index=False
    )
    loaded = load(path)
    assert [r.gold_tags for r in loaded.records] == [("B-PER", "O"), None]


def test_item_without_an_id_is_skipped(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "ids.jsonl", [{"k": "a", "text": "one"}, {"k": None, "text": "two"}]
    )
    loaded = load(path, id_field="k")
    assert [r.id for r in loaded.records] == ["a"]
    assert loaded.skipped == [(f"{path} row 2 ()", "no id in field 'k'")]


# --- the task type's defaults ----------------------------------------------------------------


def test_the_gold_field_defaults_to_the_task_types(tmp_path: Path) -> None:
    assert DatasetSpec(source="x").gold_field is None  # None: the task type's (NER: ner_tags)
    path = write_jsonl(tmp_path / "f.jsonl", [{"tokens": ["Ann"], "ner_tags": ["B-PER"]}])
    assert load(path).records[0].gold_tags == ("B-PER",)


def test_a_tsv_file_is_still_conll_for_ner(tmp_path: Path) -> None:
    path = write(tmp_path / "test.tsv", "EU\tB-ORG\nrejects\tO\n")
    loaded = load(path)
    assert loaded.records[0].tokens == ("EU", "rejects") and "CoNLL" in loaded.source


def test_csv_columns_are_read_as_strings_for_ner_too(tmp_path: Path) -> None:
    path = write(tmp_path / "ids.csv", "uid,text\n007,Ann ran\n1e5,Bo sat\n")
    assert [r.id for r in load(path, id_field="uid").records] == ["007", "1e5"]
