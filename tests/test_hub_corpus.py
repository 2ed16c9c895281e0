"""`build-data hub` on local files with the real Hub schemas: neulab/ted_multi's parquet conversion,
openlanguagedata/flores_plus (and facebook/flores) configs, Helsinki-NLP/opus-100 pair configs."""

import json
import logging
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mtl_translate.cli import main
from mtl_translate.data.collator import MultiTargetCollator
from mtl_translate.data.hub_corpus import normalise_source
from mtl_translate.data.loading import language_coverage, load_multitarget_dataset

TED = {  # split: [{code: text}] -> rows of `translations` = {language: [...], translation: [...]}
    "train": [
        {"en": "Thank you.", "de": "Danke.", "fr": "Merci.", "pt-br": "Obrigado.", "ja": "ありがとう"},
        {"en": "thank   YOU.", "de": "Vielen Dank.", "fr": "Merci."},  # same key: de conflicts, fr repeats
        {"de": "Nur Deutsch", "fr": "Seulement français"},  # no English
        {"en": "Only Japanese", "ja": "日本語だけ"},  # no requested target
        {"en": "Held out sentence", "de": "Zurückgehalten"},  # also in test
        {"en": "Hello world", "fr": "Bonjour le monde", "es": ""},
    ],
    "validation": [{"en": "Good morning", "de": "Guten Morgen", "pt-br": "Bom dia"}],
    "test": [{"en": "Held out sentence", "de": "Zurückgehalten", "fr": "Retenu"}],
}


def run(*args: str) -> dict:
    main(["build-data", "hub", *args])
    return json.loads(Path(args[args.index("--out") + 1], "stats.json").read_text(encoding="utf-8"))


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line)["translation"] for line in path.read_text(encoding="utf-8").splitlines()]


def error_of(*args: str) -> str:
    with pytest.raises(SystemExit) as caught:
        main(["build-data", "hub", *args])
    return str(caught.value)


@pytest.fixture
def ted_dir(tmp_path: Path) -> Path:
    """Laid out as a download of the parquet conversion: plain_text/<split>/0000.parquet."""
    for split, rows in TED.items():
        folder = tmp_path / "ted" / "plain_text" / split
        folder.mkdir(parents=True)
        translations = [{"language": list(row), "translation": list(row.values())} for row in rows]
        pq.write_table(pa.table({"translations": translations, "talk_name": ["talk"] * len(rows)}),
                       folder / "0000.parquet")
    return tmp_path / "ted"


def write_flores(root: Path, config: str, split: str, texts: dict[int, str], text_column: str = "text") -> None:
    """One flores_plus config/split with all its columns."""
    n = len(texts)
    iso, script = config.split("_")
    table = pa.table({"id": list(texts), "iso_639_3": [iso] * n, "iso_15924": [script] * n,
                      "glottocode": ["xxxx1234"] * n, text_column: list(texts.values()), "url": ["https://x"] * n,
                      "domain": ["wikinews"] * n, "topic": ["t"] * n, "has_image": [False] * n,
                      "has_hyperlink": [False] * n, "last_updated": ["1.0"] * n})
    (root / config).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, root / config / f"{split}.parquet")


def flores_dir(tmp_path: Path, text_column: str = "text") -> Path:
    root = tmp_path / "flores"
    write_flores(root, "eng_Latn", "dev", {1: "One", 2: "Two", 3: "Three"}, text_column)
    write_flores(root, "deu_Latn", "dev", {1: "Eins", 3: "Drei", 4: "Vier"}, text_column)  # no 2; 4 has no English
    write_flores(root, "fra_Latn", "dev", {1: "Un", 2: "Deux", 3: " "}, text_column)
    for config, texts in [("eng_Latn", {1: "Sun"}), ("deu_Latn", {1: "Sonne"}), ("fra_Latn", {1: "Soleil"})]:
        write_flores(root, config, "devtest", texts, text_column)
    return root


def write_pairs(root: Path, config: str, split: str, pairs: list[tuple[str, str]], fmt: str) -> None:
    """One opus-100 config/split: `translation` = {lang: ..., "en": ...}."""
    other = config.replace("en", "").strip("-")
    rows = [{"translation": {other: target, "en": english}} for english, target in pairs]
    (root / config).mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), root / config / f"{split}.parquet")
    else:
        (root / config / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def opus_dir(tmp_path: Path) -> Path:
    root = tmp_path / "opus"
    write_pairs(root, "de-en", "train", [("Hello world", "Hallo Welt"), ("How are you?", "Wie geht's?"),
                                         ("hello  WORLD", "Hallo, Welt"), ("", "Leer"), ("Empty target", ""),
                                         ("Good night", "Gute Nacht")], "jsonl")
    write_pairs(root, "en-fr", "train", [("Hello world", "Bonjour le monde"), ("Only French", "Seulement français")],
                "parquet")
    for config, fmt, morning, night in [("de-en", "jsonl", "Guten Morgen", "Gute Nacht"),
                                        ("en-fr", "parquet", "Bonjour", "Bonne nuit")]:
        write_pairs(root, config, "validation", [("Good morning", morning)], fmt)
        write_pairs(root, config, "test", [("Good night", night)], fmt)
    return root


def test_normalised_source_ignores_case_width_and_spacing():
    assert normalise_source("  Thank\u00a0 YOU.\n") == normalise_source("thank you.") == "thank you."
    assert normalise_source("ＡＢＣ") == "abc"  # NFKC: full-width letters


def test_ted_multi_rows_nulls_dedupe_and_stats(ted_dir, tmp_path, caplog):
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="mtl_translate.data.hub_corpus"):
        stats = run("--layout", "ted_multi", "--dataset", str(ted_dir), "--config", "plain_text",
                    "--langs", "de,fr,pt=pt-br", "--out", str(out))
    assert read_rows(out / "train.jsonl") == [
        {"en": "Thank you.", "de": "Danke.", "fr": "Merci.", "pt": "Obrigado."},
        {"en": "Hello world", "de": None, "fr": "Bonjour le monde", "pt": None},
    ]
    assert read_rows(out / "validation.jsonl") == [{"en": "Good morning", "de": "Guten Morgen", "fr": None,
                                                    "pt": "Bom dia"}]
    assert read_rows(out / "test.jsonl") == [{"en": "Held out sentence", "de": "Zurückgehalten", "fr": "Retenu",
                                              "pt": None}]
    assert stats["revision"] == "refs/convert/parquet"
    assert stats["names"] == {"en": "en", "de": "de", "fr": "fr", "pt": "pt-br"}
    assert stats["rows_read"] == {"train": 6, "validation": 1, "test": 1}
    assert stats["rows"] == {"train": 2, "validation": 1, "test": 1}
    assert stats["dropped"]["train"] == {"no_source": 1, "no_target": 1}
    assert stats["duplicates_merged"]["train"] == {"de": 1, "fr": 0, "pt": 0}
    assert stats["train_rows_dropped_overlap"] == 1
    assert stats["coverage"]["train"] == {"de": 1, "fr": 2, "pt": 1}
    assert stats["rows_joined"] == {"train": 1, "validation": 1, "test": 1}
    assert [r.getMessage() for r in caplog.records if r.name == "mtl_translate.data.hub_corpus"] == [
        f"{ted_dir} split 'validation': no row has a 'fr' target", f"{ted_dir} split 'test': no row has a 'pt' target"]
    train = load_multitarget_dataset(str(out), "en", ["de", "fr", "pt"], split="train")  # as training reads it
    assert language_coverage(train, ["de", "fr", "pt"]) == stats["coverage"]["train"]


@pytest.mark.parametrize("streaming", [[], ["--streaming"]])
def test_ted_multi_max_rows_per_split_reads_only_the_first_rows(ted_dir, tmp_path, streaming):
    stats = run("--layout", "ted_multi", "--dataset", str(ted_dir), "--config", "plain_text", "--langs", "de",
                "--max-rows-per-split", "1", "--out", str(tmp_path / "out"), *streaming)
    assert stats["rows_read"] == {"train": 1, "validation": 1, "test": 1}
    assert read_rows(tmp_path / "out" / "train.jsonl") == [{"en": "Thank you.", "de": "Danke."}]


def test_ted_multi_language_in_no_row_lists_the_codes(ted_dir, tmp_path):
    message = error_of("--layout", "ted_multi", "--dataset", str(ted_dir), "--config", "plain_text",
                       "--langs", "de,pt", "--out", str(tmp_path / "out"))
    assert "language 'pt' (pt) has no target in any split; language codes in its rows: de, en, es, fr, ja, pt-br" \
        in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text_column", ["text", "sentence"])  # flores_plus, facebook/flores
def test_flores_configs_join_by_id(tmp_path, text_column):
    out = tmp_path / "out"
    extra = ["--text-column", text_column] if text_column != "text" else []
    stats = run("--layout", "flores", "--dataset", str(flores_dir(tmp_path, text_column)), "--source", "en=eng_Latn",
                "--langs", "de=deu_Latn,fr=fra_Latn", "--out", str(out), *extra)
    assert sorted(p.name for p in out.iterdir()) == ["stats.json", "test.jsonl", "validation.jsonl"]
    assert read_rows(out / "validation.jsonl") == [
        {"en": "One", "de": "Eins", "fr": "Un"},
        {"en": "Two", "de": None, "fr": "Deux"},
        {"en": "Three", "de": "Drei", "fr": None},
    ]
    assert read_rows(out / "test.jsonl") == [{"en": "Sun", "de": "Sonne", "fr": "Soleil"}]
    assert stats["splits"] == {"validation": "dev", "test": "devtest"}
    assert stats["dropped"] == {"validation": {"no_source": 1, "no_target": 0},
                                "test": {"no_source": 0, "no_target": 0}}
    assert stats["rows_joined"] == {"validation": 1, "test": 1}
    assert stats["coverage"]["validation"] == {"de": 2, "fr": 2}


def test_flores_text_column_missing_says_which_flag(tmp_path):
    message = error_of("--layout", "flores", "--dataset", str(flores_dir(tmp_path, "sentence")),
                       "--source", "en=eng_Latn", "--langs", "de=deu_Latn", "--out", str(tmp_path / "out"))
    assert "config 'eng_Latn' split 'dev': no column 'text' (columns: id, iso_639_3" in message
    assert "pass --text-column (facebook/flores calls it 'sentence')" in message


def test_flores_repeated_id_is_an_error(tmp_path):
    root = flores_dir(tmp_path)
    write_flores(root, "deu_Latn", "dev", {1: "Eins", 2: "Zwei"})
    pq.write_table(pa.concat_tables([pq.read_table(root / "deu_Latn" / "dev.parquet")] * 2),
                   root / "deu_Latn" / "dev.parquet")
    message = error_of("--layout", "flores", "--dataset", str(root), "--source", "en=eng_Latn",
                       "--langs", "de=deu_Latn", "--out", str(tmp_path / "out"))
    assert "config 'deu_Latn' split 'dev': id 1 appears twice (rows 1 and 3)" in message


def test_pairs_pivot_join_on_normalised_english(opus_dir, tmp_path, tokenizer):
    out = tmp_path / "out"
    stats = run("--layout", "pairs", "--dataset", str(opus_dir), "--langs", "de,fr", "--out", str(out))
    assert read_rows(out / "train.jsonl") == [
        {"en": "Hello world", "de": "Hallo Welt", "fr": "Bonjour le monde"},
        {"en": "How are you?", "de": "Wie geht's?", "fr": None},
        {"en": "Only French", "de": None, "fr": "Seulement français"},
    ]
    assert read_rows(out / "validation.jsonl") == [{"en": "Good morning", "de": "Guten Morgen", "fr": "Bonjour"}]
    assert stats["names"] == {"en": "en", "de": "de-en", "fr": "en-fr"}
    assert stats["rows_read"]["train"] == 8
    assert stats["dropped"]["train"] == {"no_source": 1, "no_target": 1}
    assert stats["duplicates_merged"]["train"] == {"de": 1, "fr": 0}
    assert stats["train_rows_dropped_overlap"] == 1
    assert stats["rows_joined"] == {"train": 1, "validation": 1, "test": 1}
    assert stats["coverage"]["train"] == {"de": 2, "fr": 2}
    train = load_multitarget_dataset(str(out), "en", ["de", "fr"], split="train")
    batch = MultiTargetCollator(tokenizer, "en", ["de", "fr"])(list(train))
    assert batch["input_ids"].shape[0] == 3
    assert (batch["labels"]["de"][2] == -100).all() and (batch["labels"]["de"][:2, 0] != -100).all()
    assert (batch["labels"]["fr"][1] == -100).all() and (batch["labels"]["fr"][[0, 2], 0] != -100).all()


def test_hub_pair_configs_go_to_load_dataset(tmp_path, monkeypatch):
    """The Hub path: one `datasets.load_dataset(id, config, split=, revision=, streaming=)` per (config, split)."""
    calls = []

    def fake_load_dataset(name, config, split, revision, streaming):
        calls.append((name, config, split, revision, streaming))
        english = {"train": "Hello", "validation": "Good morning", "test": "Good night"}[split]
        return datasets.Dataset.from_list([{"translation": {config[:2]: f"{config} {split}", "en": english}}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    run("--layout", "pairs", "--dataset", "Helsinki-NLP/opus-100", "--langs", "de,fr=fr-en",
        "--out", str(tmp_path / "out"), "--streaming")
    assert calls == [("Helsinki-NLP/opus-100", config, split, None, True) for split in ("train", "validation", "test")
                     for config in ("de-en", "fr-en")]
    assert read_rows(tmp_path / "out" / "test.jsonl") == [{"en": "Good night", "de": "de-en test", "fr": "fr-en test"}]


def test_hub_ted_multi_reads_the_parquet_conversion(tmp_path, monkeypatch):
    calls = []
    row = {"translations": {"language": ["de", "en"], "translation": ["Hallo", "Hello"]}, "talk_name": "t"}
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda *args, **kwargs: calls.append((args, kwargs)) or datasets.Dataset.from_list([row]))
    run("--layout", "ted_multi", "--dataset", "neulab/ted_multi", "--langs", "de", "--splits", "train",
        "--out", str(tmp_path / "ted"))
    assert calls == [(("neulab/ted_multi", None), dict(split="train", revision="refs/convert/parquet",
                                                       streaming=False))]


def test_hub_load_failure_names_dataset_config_split_and_revision(tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("Dataset 'nobody/none' doesn't exist on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", missing)
    message = error_of("--layout", "pairs", "--dataset", "nobody/none", "--langs", "de", "--out", str(tmp_path / "o"))
    assert "could not load nobody/none config 'de-en' split 'train' (revision main): Dataset 'nobody/none' doesn't " \
           "exist on the Hub; check the dataset id, its configs (--langs CODE=CONFIG)" in message


def test_pairs_without_any_shared_english_is_an_error(tmp_path):
    root = tmp_path / "opus"
    write_pairs(root, "de-en", "train", [("Hello", "Hallo")], "jsonl")
    write_pairs(root, "en-fr", "train", [("Bye", "Salut")], "jsonl")
    message = error_of("--layout", "pairs", "--dataset", str(root), "--langs", "de,fr", "--splits", "train",
                       "--out", str(tmp_path / "out"))
    assert "no 'en' sentence is shared by two of the pair configs ['de-en', 'en-fr']" in message


def test_pairs_source_key_missing_names_the_keys(opus_dir, tmp_path):
    message = error_of("--layout", "pairs", "--dataset", str(opus_dir), "--source", "en=eng", "--langs", "de=de-en",
                       "--out", str(tmp_path / "out"))
    assert "config 'de-en' split 'train': expected a column 'translation' = {'eng': ..., <lang>: ...}, " \
           "found keys ['de', 'en']" in message


@pytest.mark.parametrize("args, problem", [
    (["--layout", "pairs", "--config", "x"], "--config is for ted_multi; the pairs layout takes one config per "
                                             "language from --langs CODE=CONFIG"),
    (["--layout", "pairs", "--splits", "train=dev,eval=devtest"], "output split(s) ['eval'] are not train, "
                                                                  "validation, test"),
    (["--layout", "pairs", "--langs", "en"], "--langs must name at least one target language other than the source"),
    (["--layout", "pairs", "--source", "en,de"], "--source takes one language (CODE or CODE=NAME), got en, de"),
    (["--layout", "pairs", "--splits", "train=nothing"], "no file for split 'nothing'; expected nothing.parquet"),
])
def test_bad_flags_are_clear_errors(opus_dir, tmp_path, args, problem):
    base = {"--dataset": str(opus_dir), "--langs": "de", "--out": str(tmp_path / "out")}
    base.update(zip(args[::2], args[1::2]))
    assert problem in error_of(*[item for pair in base.items() for item in pair])


def test_a_built_corpus_folder_loads_with_every_split_and_no_stats_split(tmp_path):
    """stats.json next to the splits is metadata: loading the folder without a split gives the jsonl splits only."""
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps({"translation": {"en": f"{split} a", "de": "x"}}) + "\n")
    (tmp_path / "stats.json").write_text(json.dumps({"rows": {"train": 1}}))
    loaded = load_multitarget_dataset(str(tmp_path), "en", ["de"])
    assert sorted(loaded) == ["test", "train", "validation"]
    assert loaded["train"][0]["translation"] == {"en": "train a", "de": "x"}
