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


def test_dropped_rows_are_logged(tmp_path, caplog):
    f = write_jsonl(tmp_path / "d.jsonl", [tr(en="a", de="b"), tr(en="c", de=None), tr(en="d", de="")])
    with caplog.at_level(logging.INFO, logger="mtl_translate.data.loading"):
        ds = load_multitarget_dataset(str(f), "en", ["de"])
    assert isinstance(ds, datasets.DatasetDict) and list(ds) == ["train"]
    assert ds["train"].num_rows == 1
    assert "dropped 2 of 3 rows" in caplog.text and "d.jsonl" in caplog.text


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


def test_missing_source_in_csv_uses_row_number(tmp_path):
    f = tmp_path / "data.csv"
    f.write_text("en,de\na,b\n,c\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"data\.csv: row 2 has no source text in field en"):
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
