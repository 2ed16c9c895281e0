"""Tests for mtl_translate.data.loading: layouts, sparse targets, and precise error messages."""

import json
import logging

import datasets
import pytest

from mtl_translate.data.loading import language_coverage, load_multitarget_dataset


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def tr(**langs):
    return {"translation": langs}


def test_sparse_targets_become_none_and_extras_are_ignored(tmp_path):
    f = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"translation": {"en": "  Hello ", "de": "Hallo", "fr": None, "es": "Hola"}, "domain": "chat"},
            {"translation": {"en": "Cat", "de": "   ", "fr": "Chat"}, "domain": "pets"},
            {"translation": {"en": "Dog", "de": ""}, "domain": "pets"},  # no target at all: dropped
            {"translation": {"en": "Sun", "fr": "Soleil"}},  # 'de' absent
        ],
    )
    ds = load_multitarget_dataset(str(f), "en", ["de", "fr"], split="train")
    assert isinstance(ds, datasets.Dataset)
    assert ds.column_names == ["translation"]
    assert ds["translation"][:] == [
        {"en": "Hello", "de": "Hallo", "fr": None},
        {"en": "Cat", "de": None, "fr": "Chat"},
        {"en": "Sun", "de": None, "fr": "Soleil"},
    ]
    assert language_coverage(ds, ["en", "de", "fr", "xx"]) == {"en": 3, "de": 1, "fr": 2, "xx": 0}


def test_dropped_rows_are_a_warning(tmp_path, caplog):
    f = write_jsonl(tmp_path / "d.jsonl", [tr(en="a", de="b"), tr(en="c", de=None), tr(en="d", de="")])
    with caplog.at_level(logging.WARNING, logger="mtl_translate.data.loading"):
        ds = load_multitarget_dataset(str(f), "en", ["de"])
    assert isinstance(ds, datasets.DatasetDict) and list(ds) == ["train"]
    assert ds["train"].num_rows == 1
    [record] = [r for r in caplog.records if "dropped" in r.message]
    assert record.levelno == logging.WARNING and "d.jsonl: dropped 2 of 3 rows" in record.message


def test_dropped_rows_show_on_stderr_without_logging_setup(tmp_path, monkeypatch, capsys):
    """No handler configured (as under the CLI): Python's last-resort handler prints WARNINGs to stderr."""
    monkeypatch.setattr(logging.root, "handlers", [])  # remove pytest's capture handlers
    f = write_jsonl(tmp_path / "d.jsonl", [tr(en="a", de="b"), tr(en="c", de=None)])
    load_multitarget_dataset(str(f), "en", ["de"])
    assert "d.jsonl: dropped 1 of 2 rows that have none of the targets ['de']" in capsys.readouterr().err


def test_directory_of_split_files_gives_dataset_dict(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [tr(en="a", de="b"), tr(en="c", fr="d")])
    (tmp_path / "validation.csv").write_text("en,de,fr\nx,y,\n", encoding="utf-8")
    (tmp_path / "test.tsv").write_text('en\tde\tfr\n"quoted" text\t\tz\n', encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored")
    dd = load_multitarget_dataset(str(tmp_path), "en", ["de", "fr"])
    assert isinstance(dd, datasets.DatasetDict)
    assert sorted(dd) == ["test", "train", "validation"]
    assert dd["validation"][0]["translation"] == {"en": "x", "de": "y", "fr": None}
    assert dd["test"][0]["translation"] == {"en": '"quoted" text', "de": None, "fr": "z"}
    one = load_multitarget_dataset(str(tmp_path), "en", ["de", "fr"], split="train")
    assert one.num_rows == 2 and one[1]["translation"] == {"en": "c", "de": None, "fr": "d"}


def test_csv_flat_columns_autodetected_and_read_as_text(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("id,en,de,fr\n1,Hello,Hallo,\n2,1984,NA,1984\n3,Bye,,\n", encoding="utf-8")
    ds = load_multitarget_dataset(str(f), "en", ["de", "fr"], split="train")
    assert ds.column_names == ["translation"]
    assert ds["translation"][:] == [
        {"en": "Hello", "de": "Hallo", "fr": None},
        {"en": "1984", "de": "NA", "fr": "1984"},  # not parsed as int / NaN
    ]


def test_column_mapping_flat(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("source_text,german,fr\nHello,Hallo,Salut\n", encoding="utf-8")
    ds = load_multitarget_dataset(
        str(f), "en", ["de", "fr"], split="train", column_mapping={"en": "source_text", "de": "german"}
    )
    assert ds[0]["translation"] == {"en": "Hello", "de": "Hallo", "fr": "Salut"}


def test_column_mapping_translation_column(tmp_path):
    f = write_jsonl(tmp_path / "p.jsonl", [{"pairs": {"en": "a", "de": "b"}, "translation": "decoy"}])
    ds = load_multitarget_dataset(str(f), "en", ["de"], split="train", column_mapping={"translation": "pairs"})
    assert ds[0]["translation"] == {"en": "a", "de": "b"}


def test_parquet_and_json_array(tmp_path):
    datasets.Dataset.from_dict({"en": ["a", "b"], "de": ["x", None]}).to_parquet(str(tmp_path / "p.parquet"))
    ds = load_multitarget_dataset(str(tmp_path / "p.parquet"), "en", ["de"], split="train")
    assert ds["translation"][:] == [{"en": "a", "de": "x"}]
    (tmp_path / "a.json").write_text(json.dumps([tr(en="a", de="b")]), encoding="utf-8")
    assert load_multitarget_dataset(str(tmp_path / "a.json"), "en", ["de"], split="train").num_rows == 1


def test_hub_path_uses_load_dataset(monkeypatch):
    calls = []
    raw = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"translation": [{"de": "Hallo", "en": "Hello"}]}),
            "test": datasets.Dataset.from_dict({"translation": [{"de": "Ja", "en": "Yes"}]}),
        }
    )

    def fake_load_dataset(name, config=None, split=None, **kwargs):
        calls.append((name, config, split))
        return raw[split] if split else raw

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    dd = load_multitarget_dataset("wmt/wmt16", "en", ["de"], dataset_config="de-en")
    assert calls == [("wmt/wmt16", "de-en", None)]
    assert sorted(dd) == ["test", "train"] and dd["test"][0]["translation"] == {"en": "Yes", "de": "Ja"}
    ds = load_multitarget_dataset("wmt/wmt16", "en", ["de"], split="train", dataset_config="de-en")
    assert calls[-1] == ("wmt/wmt16", "de-en", "train") and ds[0]["translation"] == {"en": "Hello", "de": "Hallo"}


def test_hub_failure_is_wrapped(monkeypatch):
    def boom(*args, **kwargs):
        raise FileNotFoundError("Dataset 'nope/nope' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    with pytest.raises(ValueError, match=r"could not load Hub dataset 'nope/nope \(cfg\)'.*doesn't exist") as e:
        load_multitarget_dataset("nope/nope", "en", ["de"], dataset_config="cfg")
    assert isinstance(e.value.__cause__, FileNotFoundError)


def ted(**langs):  # TranslationVariableLanguages row: parallel lists (a language may repeat)
    pairs = [(code, text) for code, texts in langs.items() for text in (texts if isinstance(texts, list) else [texts])]
    return {"language": [c for c, _ in pairs], "translation": [t for _, t in pairs]}


def test_variable_languages_via_column_mapping(tmp_path):
    f = write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"translations": ted(de="Hallo", en=" Hello ", fr=["Bonjour", "Salut"]), "talk_name": "t1"},
            {"translations": ted(en="Cat", fr="Chat"), "talk_name": "t2"},  # 'de' absent: missing target
            {"translations": ted(en="Dog"), "talk_name": "t3"},  # no target at all: dropped
        ],
    )
    mapping = {"translation": "translations"}
    ds = load_multitarget_dataset(str(f), "en", ["de", "fr"], split="train", column_mapping=mapping)
    assert ds["translation"][:] == [
        {"en": "Hello", "de": "Hallo", "fr": "Bonjour"},  # first 'fr' kept
        {"en": "Cat", "de": None, "fr": "Chat"},
    ]
    with pytest.raises(ValueError, match=r"language 'es' appears in no row \(translation keys found: de, en, fr\)"):
        load_multitarget_dataset(str(f), "en", ["es"], column_mapping=mapping)


def test_variable_languages_missing_source_and_bad_lists(tmp_path):
    f = write_jsonl(tmp_path / "train.jsonl", [{"translation": ted(en="a", de="b")}, {"translation": ted(de="x")}])
    with pytest.raises(ValueError, match=r"train\.jsonl: line 2 has no source text in field translation\.en"):
        load_multitarget_dataset(str(f), "en", ["de"])
    bad = {"language": ["en", "de"], "translation": ["a"]}
    f = write_jsonl(tmp_path / "bad.jsonl", [{"translation": ted(en="a", de="b")}, {"translation": bad}])
    with pytest.raises(ValueError, match=r"bad\.jsonl: line 2: field translation .*not two equal-length lists"):
        load_multitarget_dataset(str(f), "en", ["de"])


def test_variable_languages_from_hub(monkeypatch):
    features = datasets.Features(
        {
            "translations": datasets.TranslationVariableLanguages(languages=["de", "en", "fr"]),
            "talk_name": datasets.Value("string"),
        }
    )
    raw = datasets.Dataset.from_dict(
        {"translations": [{"de": "Hallo", "en": "Hello"}, {"en": "Yes", "fr": "Oui"}], "talk_name": ["a", "b"]},
        features=features,
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None, split=None, **kw: raw)
    ds = load_multitarget_dataset(
        "neulab/ted_multi", "en", ["de", "fr"], split="train", column_mapping={"translation": "translations"}
    )
    assert ds["translation"][:] == [{"en": "Hello", "de": "Hallo", "fr": None}, {"en": "Yes", "de": None, "fr": "Oui"}]


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("bad", [{"de": "x"}, {"en": None, "de": "x"}, {"en": "  ", "de": "x"}])
def test_missing_source_names_file_line_and_field(tmp_path, bad):
    rows = [tr(en="a", de="b")] * 3 + [{"translation": bad}]
    f = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(ValueError) as e:
        load_multitarget_dataset(str(f), "en", ["de"])
    msg = str(e.value)
    assert "train.jsonl: line 4 has no source text in field translation.en" in msg
    assert "non-empty 'en' string" in msg


def test_line_numbers_skip_blank_lines(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps(tr(en="a", de="b")) + "\n\n\n" + json.dumps(tr(en="", de="b")) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.jsonl: line 4 has no source text"):
        load_multitarget_dataset(str(f), "en", ["de"])


@pytest.mark.parametrize("content, message", [
    ("en,de\na,b\n,c\n", r"data\.csv: row 2 has no source text in field en"),  # a row number, not a line
    ("en,de,de\na,b,c\n", r"data\.csv: column\(s\) \['de'\] appear twice in the header"),
    ("en,de\n", r"data\.csv: only a header \(en, de\), no rows; it needs at least one row"),
], ids=["missing source", "repeated header column", "header only"])
def test_bad_csv_is_named(tmp_path, content, message):
    f = tmp_path / "data.csv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_multitarget_dataset(str(f), "en", ["de"])


def test_unknown_language_lists_available_keys(tmp_path):
    f = write_jsonl(tmp_path / "train.jsonl", [tr(en="a", de="b"), tr(en="c", fr="d")])
    with pytest.raises(ValueError) as e:
        load_multitarget_dataset(str(f), "en", ["dee", "fr"])
    msg = str(e.value)
    assert "train.jsonl" in msg and "language 'dee' appears in no row" in msg
    assert "translation keys found: de, en, fr" in msg


def test_unknown_language_in_flat_csv_lists_columns(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("en,de\na,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"data\.csv: language 'fr' appears in no row \(columns found: en, de\)"):
        load_multitarget_dataset(str(f), "en", ["de", "fr"])


def test_non_utf8_line_is_reported(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_bytes(b'{"translation": {"en": "a", "de": "b"}}\n{"translation": {"en": "caf\xe9", "de": "b"}}\n')
    with pytest.raises(ValueError, match=r"train\.jsonl: line 2 is not valid UTF-8"):
        load_multitarget_dataset(str(f), "en", ["de"])


def test_non_utf8_csv_is_reported(tmp_path):
    f = tmp_path / "data.csv"
    f.write_bytes(b"en,de\na,b\nc,d\ncaf\xe9,x\n")
    with pytest.raises(ValueError, match=r"data\.csv: line 4 is not valid UTF-8"):
        load_multitarget_dataset(str(f), "en", ["de"])


def test_invalid_json_line_is_reported(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps(tr(en="a", de="b")) + "\n" + '{"translation": {"en": "x",, }\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.jsonl: line 2 is not valid JSON") as e:
        load_multitarget_dataset(str(f), "en", ["de"])
    assert e.value.__cause__ is not None  # wrapped, not swallowed


def test_missing_file_and_empty_directory(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.jsonl: no such file or directory; expected a local"):
        load_multitarget_dataset(str(tmp_path / "nope.jsonl"), "en", ["de"])
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no split files found; looked for <split>\{\.jsonl,.*train\.jsonl"):
        load_multitarget_dataset(str(tmp_path), "en", ["de"])
    write_jsonl(tmp_path / "train.jsonl", [tr(en="a", de="b")])
    with pytest.raises(ValueError, match=r"no file for split 'test'; found splits \['train'\]"):
        load_multitarget_dataset(str(tmp_path), "en", ["de"], split="test")


def test_empty_file_and_no_targets_after_filtering(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(ValueError, match=r"e\.jsonl: file is empty"):
        load_multitarget_dataset(str(tmp_path / "e.jsonl"), "en", ["de"])
    f = write_jsonl(tmp_path / "dev.jsonl", [tr(en="a", de=None), tr(en="b", de=" ")])
    with pytest.raises(ValueError, match=r"dev\.jsonl: no row has any of the target languages \['de'\] \(2 rows read\)"):
        load_multitarget_dataset(str(f), "en", ["de"])


@pytest.mark.parametrize("value, kind", [(5, "int"), (["x"], "list")])
def test_non_string_target_is_reported(tmp_path, value, kind):
    f = write_jsonl(tmp_path / "train.jsonl", [tr(en="a", de="b"), tr(en="c", de=value)])
    with pytest.raises(ValueError, match=rf"train\.jsonl: line 2: field translation\.de is a {kind} .*not a string"):
        load_multitarget_dataset(str(f), "en", ["de"])


def test_non_string_in_parquet_uses_row_number(tmp_path):
    datasets.Dataset.from_dict({"en": ["a", "b"], "de": [1, 2]}).to_parquet(str(tmp_path / "p.parquet"))
    with pytest.raises(ValueError, match=r"p\.parquet: row 1: field de is a int"):
        load_multitarget_dataset(str(tmp_path / "p.parquet"), "en", ["de"])


def test_bad_arguments(tmp_path):
    f = write_jsonl(tmp_path / "train.jsonl", [tr(en="a", de="b")])
    with pytest.raises(ValueError, match="target_langs is empty"):
        load_multitarget_dataset(str(f), "en", [])
    with pytest.raises(ValueError, match="neither 'translation' nor a requested language"):
        load_multitarget_dataset(str(f), "en", ["de"], column_mapping={"dee": "x"})
    with pytest.raises(ValueError, match=r"no column 'pairs' \(columns: translation\)"):
        load_multitarget_dataset(str(f), "en", ["de"], column_mapping={"translation": "pairs"})
    with pytest.raises(ValueError, match=r"maps 'de' to column 'german', which does not exist"):
        load_multitarget_dataset(str(f), "en", ["de"], column_mapping={"de": "german"})


# ------------------------------------------------------------------------- CSV field counts


@pytest.mark.parametrize(
    "name, text, line, fields, expected, columns",
    [
        ("few.csv", "en,de,fr\na,b,c\nd,e\n", 3, 2, 3, "en, de, fr"),  # pandas would fill fr with ''
        ("many.csv", "en,de\na,b\nc,d,e\n", 3, 3, 2, "en, de"),
        ("many.tsv", "en\tde\na\tb\tc\nd\te\n", 2, 3, 2, "en, de"),  # pandas would shift the row (index column)
    ],
)
def test_csv_row_with_wrong_field_count_names_line_and_columns(tmp_path, name, text, line, fields, expected, columns):
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as e:
        load_multitarget_dataset(str(f), "en", ["de"])
    assert f"{name}: line {line} has {fields} fields, expected {expected} (the header's columns: {columns})" in str(
        e.value)


def test_csv_quoted_fields_with_commas_and_newlines_count_once(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text('en,de\n"Open, then close","Öffnen\nund schließen"\n\nSave,Speichern\n', encoding="utf-8")
    ds = load_multitarget_dataset(str(f), "en", ["de"], split="train")
    assert ds["translation"][:] == [{"en": "Open, then close", "de": "Öffnen\nund schließen"},
                                    {"en": "Save", "de": "Speichern"}]
    (tmp_path / "bad.csv").write_text('en,de\n"a,b",c\nd,e,f\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.csv: line 3 has 3 fields, expected 2"):
        load_multitarget_dataset(str(tmp_path / "bad.csv"), "en", ["de"])


# ------------------------------------------------------------------- long lines, repeated keys


@pytest.mark.parametrize("ext", ["jsonl", "csv", "tsv"])
def test_very_long_lines_load_intact(tmp_path, ext):
    """The loader keeps long texts whole; the collator truncates them to max_source/target_length tokens."""
    long_en, long_de = "word " * 10_000, "Wort " * 40_000  # 50,000 and 200,000 characters (csv's field limit: 131,072)
    f = tmp_path / f"long.{ext}"
    if ext == "jsonl":
        write_jsonl(f, [tr(en=long_en, de=long_de), tr(en="a", de="b")])
    else:
        sep = "," if ext == "csv" else "\t"
        f.write_text(f"en{sep}de\n{long_en}{sep}{long_de}\na{sep}b\n", encoding="utf-8")
    ds = load_multitarget_dataset(str(f), "en", ["de"], split="train")
    assert ds[0]["translation"] == {"en": long_en.strip(), "de": long_de.strip()} and ds.num_rows == 2


def test_repeated_key_in_json_object_names_line_and_key(tmp_path):
    """pyarrow refuses a repeated key (the datasets builder silently kept the last one when keys varied by row)."""
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps(tr(en="a", de="b")) + '\n\n{"translation": {"en": "x", "de": "a", "de": "b"}}\n',
                 encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.jsonl: line 3: key 'de' appears twice in one object .*keep one"):
        load_multitarget_dataset(str(f), "en", ["de"])
    f.write_text(json.dumps(tr(en="a", de="b")) + '\n{"translation": {"en": "x"}, "translation": {"en": "y"}}\n')
    with pytest.raises(ValueError, match=r"train\.jsonl: line 2: key 'translation' appears twice"):
        load_multitarget_dataset(str(f), "en", ["de"])


def test_repeated_key_in_json_array(tmp_path):
    """Arrays are parsed by json (the datasets builder's ujson silently kept the last value)."""
    f = tmp_path / "a.json"
    f.write_text('[{"translation": {"en": "x", "de": "a"}},\n {"translation": {"en": "y", "de": "a", "de": "b"}}]')
    with pytest.raises(ValueError, match=r"a\.json: key 'de' appears twice in one object \(\[\('en', 'y'\)"):
        load_multitarget_dataset(str(f), "en", ["de"])


@pytest.mark.parametrize("line, kind", [("[1, 2]", "list"), ('"text"', "str")])
def test_json_line_that_is_not_an_object(tmp_path, line, kind):
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps(tr(en="a", de="b")) + f"\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"train\.jsonl: line 2 is a {kind} .*not an object"):
        load_multitarget_dataset(str(f), "en", ["de"])


# ------------------------------------------------------------------------- sparse JSON schema


@pytest.mark.parametrize("late", ["absent", "null"])
def test_language_first_seen_after_10_mb_loads(tmp_path, caplog, late):
    """The datasets json builder fixed its schema on its first 10 MB chunk and failed here ("An error occurred
    while generating the dataset"); pyarrow widens the schema as it reads, so no slow fallback is needed."""
    pad = "x" * 600
    ru = {} if late == "absent" else {"ru": None}
    early = [tr(en=f"{pad}{i}", de="x", **ru) for i in range(20_000)]
    later = [{"translation": {"en": "t", "de": "y", "ru": "Привет"}, "domain": "added later"}, tr(en="u", ru="z")]
    f = write_jsonl(tmp_path / "train.jsonl", early + later)
    assert f.stat().st_size > 10 << 20
    with caplog.at_level(logging.INFO, logger="mtl_translate.data.loading"):
        ds = load_multitarget_dataset(str(f), "en", ["de", "ru"], split="train")
    assert "parsing it with json instead" not in caplog.text
    assert ds.num_rows == 20_002 and ds[0]["translation"] == {"en": f"{pad}0", "de": "x", "ru": None}
    assert ds[-2:]["translation"] == [{"en": "t", "de": "y", "ru": "Привет"}, {"en": "u", "de": None, "ru": "z"}]
    assert language_coverage(ds, ["de", "ru"]) == {"de": 20_001, "ru": 2}


def test_json_fallback_counts_lines_like_an_editor(tmp_path, caplog):
    """A value that changes type makes pyarrow fail; the json re-parse names the line, counting only newlines
    (U+2028 is a line break for str.splitlines but valid inside a JSON string) and skipping blank lines."""
    f = tmp_path / "train.jsonl"
    rows = [tr(en="a\u2028b", de="x"), tr(en="c", de="y")]
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "\n" + json.dumps(tr(en="v", de=5)))
    with caplog.at_level(logging.INFO, logger="mtl_translate.data.loading"):
        with pytest.raises(ValueError, match=r"train\.jsonl: line 4: field translation\.de is a int"):
            load_multitarget_dataset(str(f), "en", ["de"])
    assert "parsing it with json instead" in caplog.text
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + '\n{"translation": {"en": 1}}\n')
    with pytest.raises(ValueError, match=r"train\.jsonl: line 4: field translation\.en is a int"):
        load_multitarget_dataset(str(f), "en", ["de"])
