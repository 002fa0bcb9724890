"""Loading classification data: AG News and GoEmotions as they are, headerless CSV/TSV,
joined text columns, label names and ids, multi-label gold in every form, Hugging Face
ClassLabel columns, row ranges, label files, and the few-shot pool kept apart from the items.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import datasets
import pytest

from prelabel.errors import ConfigError, DatasetError
from prelabel.model import LabelSet
from producer.labeling import (
    LabelingOptions,
    default_labels,
    resolve_labeling,
    with_label_file,
)
from producer.loading import DatasetSpec, LoadedDataset, load_dataset_records, parse_rows
from task_types import RowFields, SkipItem
from task_types.classify.labelfile import read_labels
from task_types.classify.model import ClassifyRecord
from task_types.classify.records import record_from_row

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
AG_NEWS = SHARED / "ag_news"
GOEMOTIONS = SHARED / "goemotions"
AG_COLUMNS = ("label", "title", "description")
GO_COLUMNS = ("text", "labels", "id")
CLASSES = ("World", "Sports", "Business", "Sci/Tech")


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give `datasets` a fresh cache per test, so no test reads or litters the user's cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")


@pytest.fixture(scope="module")
def ag_news() -> Path:
    if not (AG_NEWS / "test.csv").exists():
        pytest.skip(f"AG News not found at {AG_NEWS} (../shared/data is absent)")
    return AG_NEWS


@pytest.fixture(scope="module")
def goemotions() -> Path:
    if not (GOEMOTIONS / "test.tsv").exists():
        pytest.skip(f"GoEmotions not found at {GOEMOTIONS} (../shared/data is absent)")
    return GOEMOTIONS


def load(
    source: Path | str, task: str = "classify", labels: Path | None = None, **options: object
) -> LoadedDataset:
    """Load as `prelabel run --task TASK --labels LABELS` does: the label file first."""
    spec = DatasetSpec(source=str(source), **options)  # type: ignore[arg-type]
    spec = with_label_file(spec, LabelingOptions(ontology_file=labels, task=task))
    return load_dataset_records(spec, task)


def load_error(source: Path | str, task: str = "classify", **options: object) -> str:
    with pytest.raises(DatasetError) as info:
        load(source, task, **options)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    return write(path, "".join(json.dumps(row) + "\n" for row in rows))


def gold(loaded: LoadedDataset) -> list[tuple[str, ...] | None]:
    return [r.gold for r in loaded.records if isinstance(r, ClassifyRecord)]


# --- the shared files, as they are -----------------------------------------------------------


def test_ag_news_loads_every_row_with_joined_text_and_ids_from_1(ag_news: Path) -> None:
    loaded = load(
        ag_news / "test.csv",
        labels=ag_news / "classes.txt",
        columns=AG_COLUMNS,
        text_field="title,description",
        first_label_id=1,
    )
    assert len(loaded.records) == 7600 and loaded.skipped == []
    assert loaded.labels == CLASSES  # the file's order: the label set's order
    assert Counter(gold(loaded)) == {(name,): 1900 for name in CLASSES}
    first = loaded.records[0]
    assert first.id == "test-000000" and gold(loaded)[0] == ("Business",)
    assert first.text == (
        "Fears for T N pension after talks\nUnions representing workers at Turner   Newall say "
        "they are 'disappointed' after talks with stricken parent firm Federal Mogul."
    )
    # Every text is its row's title and description as Python's csv module reads them.
    with (ag_news / "test.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert [r.text for r in loaded.records] == [f"{t.strip()}\n{d.strip()}" for _, t, d in rows]
    assert gold(loaded) == [(CLASSES[int(label) - 1],) for label, _, _ in rows]


def test_ag_news_held_out_rows_for_few_shot_have_every_class(ag_news: Path) -> None:
    common = {
        "labels": ag_news / "classes.txt",
        "columns": AG_COLUMNS,
        "text_field": "title,description",
        "first_label_id": 1,
    }
    items = load(ag_news / "test.csv", rows=(None, 7200), **common)  # type: ignore[arg-type]
    pool = load(ag_news / "test.csv", rows=(7200, None), **common)  # type: ignore[arg-type]
    assert (len(items.records), len(pool.records)) == (7200, 400)
    assert (items.rows, pool.rows) == ((0, 7200), (7200, 7600))
    assert pool.records[0].id == "test-007200"  # ids count rows of the whole file
    assert Counter(g[0] for g in gold(pool) if g) == {
        "World": 96,
        "Sports": 94,
        "Business": 107,
        "Sci/Tech": 103,
    }


@pytest.mark.parametrize(
    ("split", "rows", "occurrences"),
    [
        ("test", 5427, 6329),
        ("dev", 5426, 6380),
        ("validation", 5426, 6380),
        ("train", 43410, 51103),
    ],
)
def test_goemotions_splits_load_every_row(
    goemotions: Path, split: str, rows: int, occurrences: int
) -> None:
    loaded = load(
        goemotions,
        "classify-multi",
        labels=goemotions / "emotions.txt",
        split=split,
        columns=GO_COLUMNS,
        id_field="id",
    )
    assert len(loaded.records) == rows and loaded.skipped == []
    assert sum(len(g or ()) for g in gold(loaded)) == occurrences  # SOURCE.md's counts
    assert len(loaded.labels) == 28 and loaded.labels[0] == "admiration"
    assert loaded.labels[-1] == "neutral"


def test_goemotions_quoted_texts_lose_their_quotes(goemotions: Path) -> None:
    loaded = load(
        goemotions,
        "classify-multi",
        labels=goemotions / "emotions.txt",
        columns=GO_COLUMNS,
        id_field="id",
    )
    by_id = {r.id: r for r in loaded.records if isinstance(r, ClassifyRecord)}
    # In the file: """We need more content."" ""OK. here's some ballerina shoes."""
    assert by_id["eexh9wg"].text == '"We need more content." "OK. here\'s some ballerina shoes."'
    assert by_id["eexh9wg"].gold == ("neutral",)
    assert by_id["ee4i1fa"].text == (
        "I didn't know this was a \"reveal\" he'd been talking about for awhile."
    )
    assert by_id["eezyizq"].gold == ("disapproval", "neutral")  # "10,27"
    # Every text is what Python's csv module reads (quotes removed, doubled quotes undone),
    # stripped: 149 of them hold a quote, SOURCE.md's count of quoted rows.
    with (goemotions / "test.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert [(r.id, r.text) for r in loaded.records] == [(i, t.strip()) for t, _, i in rows]
    assert sum('"' in r.text for r in loaded.records) == 149
    assert not any(r.text.startswith('"""') for r in loaded.records)


# --- headerless CSV and TSV ------------------------------------------------------------------


def test_headerless_csv_reads_every_column_as_a_string(tmp_path: Path) -> None:
    data = write(
        tmp_path / "news.csv",
        '"3","Oil up","Prices rose."\n"1","12345","NA"\n"2","Cup final",""\n',
    )
    classes = write(tmp_path / "classes.txt", "World\nSports\nBusiness\n")
    loaded = load(
        data,
        labels=classes,
        columns=AG_COLUMNS,
        text_field="title,description",
        first_label_id=1,
    )
    # "12345" and "NA" stay words; an empty description leaves the title alone.
    assert [r.text for r in loaded.records] == ["Oil up\nPrices rose.", "12345\nNA", "Cup final"]
    assert gold(loaded) == [("Business",), ("World",), ("Sports",)]
    assert "CSV" in loaded.source


def test_ids_in_a_string_column_keep_their_spelling(tmp_path: Path) -> None:
    data = write(tmp_path / "rows.csv", "id,text,label\n007,a,x\n1e5,b,y\n")
    loaded = load(data, id_field="id")
    assert [r.id for r in loaded.records] == ["007", "1e5"]  # not 7 and 100000.0
    assert gold(loaded) == [("x",), ("y",)]


def test_a_tsv_file_is_a_table_for_classification_and_conll_for_ner(tmp_path: Path) -> None:
    data = write(tmp_path / "test.tsv", 'Ann\tB-PER\n"Say ""hi"""\tO\n')
    loaded = load(data, columns=("text", "label"))
    assert [r.text for r in loaded.records] == ["Ann", 'Say "hi"']
    assert gold(loaded) == [("B-PER",), ("O",)] and "TSV" in loaded.source
    ner = load_dataset_records(DatasetSpec(source=str(data)), "ner")
    assert "CoNLL" in ner.source


def test_tsv_format_reads_any_extension(tmp_path: Path) -> None:
    data = write(tmp_path / "items.txt", "good\tpos\nbad\tneg\n")
    loaded = load(data, format="tsv", columns=("text", "label"))
    assert gold(loaded) == [("pos",), ("neg",)]


def test_a_folder_of_tsv_splits_maps_dev_to_validation(tmp_path: Path) -> None:
    write(tmp_path / "train.tsv", "from train\t0\n")
    write(tmp_path / "dev.tsv", "from dev\t1\n")
    write(tmp_path / "labels.txt", "zero\none\n")
    for split in ("dev", "validation", "valid"):
        loaded = load(
            tmp_path, labels=tmp_path / "labels.txt", split=split, columns=("text", "label")
        )
        assert [r.text for r in loaded.records] == ["from dev"] and gold(loaded) == [("one",)]


def test_a_header_with_a_byte_order_mark(tmp_path: Path) -> None:
    data = tmp_path / "bom.csv"
    data.write_bytes("\ufefftext,label\nhello,greeting\n".encode())
    assert gold(load(data)) == [("greeting",)]


def test_columns_that_do_not_fit_the_file(tmp_path: Path) -> None:
    data = write(tmp_path / "three.csv", "1,a,b\n2,c,d\n")
    message = load_error(data, columns=("label", "text"))
    assert str(data) in message and "3 fields" in message and "label,text" in message

    headed = write(tmp_path / "headed.csv", "label,text\n1,a\n")
    message = load_error(headed, columns=("label", "text"))
    assert "header" in message and "drop columns" in message

    assert "twice" in load_error(data, columns=("a", "a", "b"))
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"text": "a", "label": "x"}])
    assert "CSV or TSV" in load_error(rows, columns=("text", "label"))


def test_a_header_naming_a_column_twice(tmp_path: Path) -> None:
    data = write(tmp_path / "twice.csv", "text,text\na,b\n")
    message = load_error(data)
    assert "'text' twice" in message and str(data) in message


def test_a_txt_file_is_not_read_as_conll_for_classification(tmp_path: Path) -> None:
    data = write(tmp_path / "texts.txt", "one text\nanother\n")
    message = load_error(data)
    assert "CoNLL" in message and "CSV, TSV, JSONL or Parquet" in message


# --- text columns ----------------------------------------------------------------------------


def test_joined_text_columns_must_all_exist(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "n.jsonl", [{"title": "T", "body": "B", "label": "x"}])
    loaded = load(data, text_field="title,body")
    assert loaded.records[0].text == "T\nB"
    message = load_error(data, text_field="title,description")
    assert "'description'" in message and "title, body, label" in message


def test_text_is_stripped_and_empty_text_is_skipped(tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "t.jsonl",
        [{"text": "  spaced  ", "label": "a"}, {"text": "   ", "label": "a"}, {"text": 3}],
    )
    loaded = load(data)
    assert [r.text for r in loaded.records] == ["spaced"]
    assert [reason for _, reason in loaded.skipped] == ["empty text", "text is a int, not a string"]


# --- gold: names and ids ---------------------------------------------------------------------


def test_label_names_without_a_label_file_are_the_labels(tmp_path: Path) -> None:
    data = write(tmp_path / "named.csv", "text,label\na,Sports\nb,World\nc,\n")
    loaded = load(data)
    assert gold(loaded) == [("Sports",), ("World",), None]  # a blank cell: no gold
    assert loaded.labels == ("Sports", "World")


def test_a_name_outside_the_label_file_is_skipped_with_its_reason(tmp_path: Path) -> None:
    data = write(tmp_path / "named.csv", "text,label\na,Sports\nb,Sprots\n")
    classes = write(tmp_path / "classes.txt", "\n".join(CLASSES) + "\n")
    loaded = load(data, labels=classes)
    assert gold(loaded) == [("Sports",)]
    (where, reason), *_ = loaded.skipped
    assert where.startswith(f"{data} row 2")
    assert "'Sprots' is not one of the 4 labels" in reason and "--labels" in reason


def test_ids_from_0_by_default_and_from_first_label_id(tmp_path: Path) -> None:
    data = write(tmp_path / "ids.csv", "text,label\na,0\nb,3\n")
    classes = write(tmp_path / "classes.txt", "\n".join(CLASSES) + "\n")
    assert gold(load(data, labels=classes)) == [("World",), ("Sci/Tech",)]
    shifted = load(data, labels=classes, first_label_id=-1)
    assert gold(shifted) == [("Sports",)]  # 3 is one past the end from -1


@pytest.mark.parametrize(
    ("label", "first", "hint"),
    [
        ("4", 0, "pass --first-label-id 1"),
        ("0", 1, "pass --first-label-id 0"),
        ("9", 1, "fix the data"),
        ("-1", 0, "fix the data"),
    ],
)
def test_an_id_out_of_range_is_skipped_naming_the_fix(
    tmp_path: Path, label: str, first: int, hint: str
) -> None:
    data = write(tmp_path / "ids.csv", f"text,label\nok,1\nbad,{label}\n")
    classes = write(tmp_path / "classes.txt", "\n".join(CLASSES) + "\n")
    loaded = load(data, labels=classes, first_label_id=first)
    assert len(loaded.records) == 1
    (_, reason), *_ = loaded.skipped
    assert f"label id {label} is out of range" in reason and hint in reason, reason


def test_ids_without_names_ask_for_a_label_file(tmp_path: Path) -> None:
    data = write(tmp_path / "ids.csv", "text,label\na,3\n")
    message = load_error(data)
    assert str(data) in message and "--labels FILE" in message and "id order" in message


def test_a_label_file_whose_names_are_digits_reads_them_as_names(tmp_path: Path) -> None:
    data = write(tmp_path / "stars.csv", "text,label\ngreat,5\nbad,1\n")
    stars = write(tmp_path / "stars.txt", "1\n2\n3\n4\n5\n")
    assert gold(load(data, labels=stars)) == [("5",), ("1",)]


def test_a_toml_label_file_names_tags_and_gives_the_id_order(tmp_path: Path) -> None:
    data = write(tmp_path / "ids.csv", "text,label\na,1\nb,0\n")
    toml = write(
        tmp_path / "labels.toml",
        '[[labels]]\nname = "Negative"\ntag = "neg"\ndescription = "unhappy"\n\n'
        '[[labels]]\nname = "Positive"\ntag = "pos"\n',
    )
    loaded = load(data, labels=toml)
    assert gold(loaded) == [("pos",), ("neg",)] and loaded.labels == ("neg", "pos")


def test_single_label_gold_with_two_labels_suggests_multi_label(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "m.jsonl", [{"text": "a", "label": ["x", "y"]}, {"text": "b"}])
    loaded = load(data)
    (_, reason), *_ = loaded.skipped
    assert "2 gold labels (x, y) for a single-label task" in reason
    assert "--multi-label" in reason


def test_gold_field_defaults_to_the_task_types(tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "both.jsonl", [{"text": "a", "label": "one", "labels": ["two", "three"]}]
    )
    assert gold(load(data)) == [("one",)]
    assert gold(load(data, "classify-multi")) == [("two", "three")]
    assert gold(load(data, gold_field="labels", task="classify-multi")) == [("two", "three")]
    message = load_error(data, gold_field="category")
    assert "'category'" in message and "text, label, labels" in message


# --- multi-label gold ------------------------------------------------------------------------


def test_multi_label_strings_lists_and_literals(tmp_path: Path) -> None:
    emotions = write(tmp_path / "emotions.txt", "admiration\njoy\nlove\nneutral\n")
    data = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"text": "a", "labels": "3,1"},
            {"text": "b", "labels": [2, 1, 2]},
            {"text": "c", "labels": ["love", "joy"]},
            {"text": "d", "labels": "['neutral']"},
            {"text": "e", "labels": "[0, 3]"},
            {"text": "f", "labels": []},
            {"text": "g", "labels": "love"},
        ],
    )
    loaded = load(data, "classify-multi", labels=emotions)
    # Each label once, in the label set's order.
    assert gold(loaded) == [
        ("joy", "neutral"),
        ("joy", "love"),
        ("joy", "love"),
        ("neutral",),
        ("admiration", "neutral"),
        (),
        ("love",),
    ]
    assert loaded.skipped == []


def test_multi_label_bad_values_are_skipped(tmp_path: Path) -> None:
    emotions = write(tmp_path / "emotions.txt", "joy\nlove\n")
    data = write_jsonl(
        tmp_path / "m.jsonl",
        [
            {"text": "a", "labels": "1,7"},
            {"text": "b", "labels": "[1, 2"},
            {"text": "c", "labels": [True]},
            {"text": "d", "labels": "0"},
        ],
    )
    loaded = load(data, "classify-multi", labels=emotions)
    assert gold(loaded) == [("joy",)]
    reasons = [reason for _, reason in loaded.skipped]
    assert "label id 7 is out of range" in reasons[0]
    assert "cannot parse the label list" in reasons[1]
    assert "neither a label name nor an integer id" in reasons[2]


# --- Hugging Face ClassLabel columns, no label file -----------------------------------------


def test_a_saved_dataset_with_a_class_label_column(tmp_path: Path) -> None:
    names = ["World", "Sports", "Business", "Sci/Tech"]
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)}
    )
    folder = tmp_path / "agnews"
    datasets.Dataset.from_dict(
        {"text": ["a", "b", "c"], "label": [3, 0, 1]}, features=features
    ).save_to_disk(str(folder))
    loaded = load(folder)
    assert gold(loaded) == [("Sci/Tech",), ("World",), ("Sports",)]
    assert loaded.labels == tuple(names)  # every class, in the ClassLabel's order


def test_a_saved_dataset_with_a_sequence_of_class_labels(tmp_path: Path) -> None:
    names = ["admiration", "joy", "love", "neutral"]
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "labels": datasets.Sequence(datasets.ClassLabel(names=names)),
        }
    )
    folder = tmp_path / "emotions"
    datasets.DatasetDict(
        {
            "test": datasets.Dataset.from_dict(
                {"text": ["a", "b"], "labels": [[2, 1], [3]]}, features=features
            )
        }
    ).save_to_disk(str(folder))
    loaded = load(folder, "classify-multi")
    assert gold(loaded) == [("joy", "love"), ("neutral",)]
    assert loaded.labels == tuple(names)


def test_a_class_label_column_wins_over_the_label_files_order(tmp_path: Path) -> None:
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    folder = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": ["a"], "label": [1]}, features=features).save_to_disk(
        str(folder)
    )
    reversed_file = write(tmp_path / "labels.txt", "pos\nneg\n")
    assert gold(load(folder, labels=reversed_file)) == [("pos",)]


# --- rows --------------------------------------------------------------------------------------


def ten_rows(tmp_path: Path) -> Path:
    return write(tmp_path / "ten.csv", "text,label\n" + "".join(f"t{i},x\n" for i in range(10)))


@pytest.mark.parametrize(
    ("rows", "limit", "ids"),
    [
        ((2, 5), None, [2, 3, 4]),
        ((None, 2), None, [0, 1]),
        ((-2, None), None, [8, 9]),
        ((3, None), 2, [3, 4]),  # the limit counts within the rows
        ((8, 100), None, [8, 9]),
    ],
)
def test_rows_select_before_the_limit(
    tmp_path: Path, rows: tuple[int | None, int | None], limit: int | None, ids: list[int]
) -> None:
    loaded = load(ten_rows(tmp_path), rows=rows, limit=limit)
    assert [r.id for r in loaded.records] == [f"test-{i:06d}" for i in ids]
    assert [r.text for r in loaded.records] == [f"t{i}" for i in ids]


def test_rows_that_select_nothing(tmp_path: Path) -> None:
    message = load_error(ten_rows(tmp_path), rows=(20, None))
    assert "rows 20: select none of its 10 rows" in message and "0:10" in message


def test_a_skipped_row_names_its_row_in_the_whole_file(tmp_path: Path) -> None:
    data = write(tmp_path / "rows.csv", "text,label\na,x\nb,x\n ,x\nd,x\n")
    loaded = load(data, rows=(1, None))
    assert loaded.skipped == [(f"{data} row 3 (test-000002)", "empty text")]


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        (":7200", (None, 7200)),
        ("7200:", (7200, None)),
        ("-400:", (-400, None)),
        (":", (None, None)),
    ],
)
def test_parse_rows(text: str, rows: tuple[int | None, int | None]) -> None:
    assert parse_rows(text) == rows


@pytest.mark.parametrize("text", ["7200", "1:2:3", "a:b", ""])
def test_parse_rows_refuses_what_is_not_a_slice(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--few-shot-rows .*START:END"):
        parse_rows(text, "--few-shot-rows")


# --- records, without the producer -------------------------------------------------------------


def test_record_from_row_without_gold_column() -> None:
    fields = RowFields(tokens=None, text="text", tags=None)
    record = record_from_row("1", {"text": " hi "}, fields, multi_label=False)
    assert (record.text, record.gold) == ("hi", None)


def test_record_from_row_float_ids_and_bools() -> None:
    fields = RowFields(tokens=None, text="t", tags="y", tag_names=("a", "b"))
    assert record_from_row("1", {"t": "x", "y": 1.0}, fields, multi_label=False).gold == ("b",)
    with pytest.raises(SkipItem, match="neither a label name nor an integer id"):
        record_from_row("1", {"t": "x", "y": False}, fields, multi_label=False)


# --- label files -------------------------------------------------------------------------------


def test_a_plain_label_file_ignores_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "classes.txt", "\nWorld\n  Sports  \n\nSci/Tech")
    labels = read_labels(path)
    assert [(x.name, x.tag, x.description) for x in labels.labels] == [
        ("World", "World", ""),
        ("Sports", "Sports", ""),
        ("Sci/Tech", "Sci/Tech", ""),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("joy\nlove\nJoy\n", ":3: label 'Joy' is listed twice (first on line 1)"),
        ("\n \n", ": no labels; list one label name per line"),
    ],
)
def test_a_plain_label_file_that_is_unusable(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path / "labels.txt", text)
    with pytest.raises(ConfigError) as info:
        read_labels(path)
    assert str(info.value).startswith(str(path)) and fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_or_binary_label_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--labels .*nope\.txt: no such file"):
        read_labels(tmp_path / "nope.txt")
    binary = tmp_path / "labels.txt"
    binary.write_bytes(b"joy\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_labels(binary)


def test_a_json_label_file_with_descriptions(tmp_path: Path) -> None:
    path = write(
        tmp_path / "labels.json",
        json.dumps({"labels": [{"name": "Sports", "tag": "2", "description": "games"}]}),
    )
    labels = read_labels(path)
    assert labels.labels[0].tag == "2" and labels.labels[0].description == "games"
    bad = write(tmp_path / "bad.json", json.dumps({"labels": [{"name": "x"}]}))
    with pytest.raises(ConfigError, match="tag None must be a non-empty string"):
        read_labels(bad)


def test_the_label_file_is_read_before_the_records_only_for_classification(
    tmp_path: Path,
) -> None:
    classes = write(tmp_path / "classes.txt", "World\nSports\n")
    spec = DatasetSpec(source="x.csv")
    read = with_label_file(spec, LabelingOptions(ontology_file=classes, task="classify"))
    assert read.labels == ("World", "Sports")
    ontology = write(tmp_path / "ontology.toml", '[[types]]\nname = "PERSON"\ntag = "PER"\n')
    ner = with_label_file(spec, LabelingOptions(ontology_file=ontology, task="ner"))
    assert ner == spec  # NER's ontology names entity types, not the gold's B-/I- tags


def test_classification_without_labels_anywhere_asks_for_a_label_file(tmp_path: Path) -> None:
    data = write(tmp_path / "texts.csv", "text\nnothing labelled here\n")
    loaded = load(data)
    assert loaded.labels == ()
    with pytest.raises(
        ConfigError, match=r"--task classify: the data names no labels; pass --labels"
    ):
        default_labels(loaded, LabelingOptions(task="classify"))


# --- the few-shot pool, apart from the items ---------------------------------------------------


def pool_case(tmp_path: Path) -> tuple[Path, Path]:
    data = write(
        tmp_path / "test.csv", "".join(f'"{1 + i % 2}","text {i}","body {i}"\n' for i in range(10))
    )
    return data, write(tmp_path / "classes.txt", "World\nSports\n")


def resolve(
    data: Path, classes: Path, rows: tuple[int | None, int | None] | None, **options: object
) -> None:
    spec = DatasetSpec(
        source=str(data),
        columns=AG_COLUMNS,
        text_field="title,description",
        first_label_id=1,
        rows=rows,
    )
    labeling = LabelingOptions(ontology_file=classes, task="classify", **options)  # type: ignore[arg-type]
    spec = with_label_file(spec, labeling)
    resolve_labeling(load_dataset_records(spec, "classify"), spec, labeling)


@pytest.mark.parametrize(
    ("rows", "pool_rows", "shown"),
    [
        ((None, 8), (7, None), "example rows 7:10 overlap the rows being labeled 0:8"),
        ((None, None), (8, None), "example rows 8:10 overlap the rows being labeled 0:10"),
        ((-3, None), None, "example rows 0:10 overlap the rows being labeled 7:10"),
    ],
)
def test_a_pool_overlapping_the_items_in_the_same_file_is_refused(
    tmp_path: Path,
    rows: tuple[int | None, int | None],
    pool_rows: tuple[int | None, int | None] | None,
    shown: str,
) -> None:
    data, classes = pool_case(tmp_path)
    with pytest.raises(ConfigError) as info:
        resolve(data, classes, rows, few_shot=2, few_shot_from=str(data), few_shot_rows=pool_rows)
    message = str(info.value)
    assert shown in message and "examples must never be items being labeled" in message
    assert "--rows" in message and "--few-shot-rows" in message


def test_a_single_file_without_train_beside_names_both_ways_out(tmp_path: Path) -> None:
    data, classes = pool_case(tmp_path)
    with pytest.raises(ConfigError) as info:
        resolve(data, classes, None, few_shot=2)
    message = str(info.value)
    assert "no train.csv beside it" in message
    assert "--few-shot-from" in message and "--few-shot-rows" in message


def test_few_shot_rows_need_few_shot(tmp_path: Path) -> None:
    data, classes = pool_case(tmp_path)
    with pytest.raises(ConfigError, match=r"--few-shot-rows .* pass --few-shot N"):
        resolve(data, classes, (None, 8), few_shot_from=str(data), few_shot_rows=(8, None))


def _has_labeling_half() -> bool:
    import task_types

    return callable(getattr(task_types.get("classify"), "examples", None))


@pytest.mark.skipif(
    not _has_labeling_half(), reason="needs classification's examples() (helper B's labeling half)"
)
def test_a_held_out_pool_of_the_same_file_gives_examples(tmp_path: Path) -> None:
    data, classes = pool_case(tmp_path)
    spec = DatasetSpec(
        source=str(data),
        columns=AG_COLUMNS,
        text_field="title,description",
        first_label_id=1,
        rows=(None, 8),
    )
    options = LabelingOptions(
        ontology_file=classes,
        task="classify",
        few_shot=2,
        few_shot_from=str(data),
        few_shot_rows=(8, None),
    )
    spec = with_label_file(spec, options)
    labeling = resolve_labeling(load_dataset_records(spec, "classify"), spec, options)
    assert [e.text for e in labeling.pool] == ["text 8\nbody 8", "text 9\nbody 9"]
    assert [dict(e.mentions) for e in labeling.pool] == [{"World": ()}, {"Sports": ()}]
    assert labeling.labels == LabelSet(labels=read_labels(classes).labels)


def test_a_folders_split_and_its_file_are_one_table(tmp_path: Path) -> None:
    write(tmp_path / "test.tsv", "".join(f"text {i}\t{i % 2}\tid{i}\n" for i in range(6)))
    write(tmp_path / "train.tsv", "a\t0\tt0\n")
    emotions = write(tmp_path / "emotions.txt", "joy\nlove\n")
    spec = DatasetSpec(source=str(tmp_path), columns=GO_COLUMNS, id_field="id", rows=(None, 4))
    options = LabelingOptions(
        ontology_file=emotions,
        task="classify-multi",
        few_shot=1,
        few_shot_from=str(tmp_path / "test.tsv"),
        few_shot_rows=(3, None),
    )
    spec = with_label_file(spec, options)
    with pytest.raises(ConfigError, match="example rows 3:6 overlap the rows being labeled 0:4"):
        resolve_labeling(load_dataset_records(spec, "classify-multi"), spec, options)
