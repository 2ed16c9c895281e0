import json
from pathlib import Path

import polib
import pytest

from mtl_translate.data import gettext
from mtl_translate.data.gettext import (
    CORPUS_FILES,
    build_gettext_corpus,
    corpus_is_complete,
    default_roots,
    is_mnemonic_label,
    normalise_domain,
    strip_mnemonic,
)

HEADER = {"Content-Type": "text/plain; charset=UTF-8", "Plural-Forms": "nplurals=2; plural=(n != 1);"}


def write_catalog(root: Path, lang: str, domain: str, entries: list, fmt: str = "po") -> Path:
    catalog = polib.POFile()
    catalog.metadata = dict(HEADER)
    for entry in entries:
        catalog.append(entry if isinstance(entry, polib.POEntry) else polib.POEntry(msgid=entry[0], msgstr=entry[1]))
    directory = root / lang / "LC_MESSAGES"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{domain}.{fmt}"
    catalog.save(str(path)) if fmt == "po" else catalog.save_as_mofile(str(path))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "locale"
    write_catalog(root, "de", "app", [
        ("Open file", "Datei öffnen"),
        ("_Save As", "Speichern _unter"),
        ("Untranslated", ""),
        polib.POEntry(msgid="Fuzzy thing", msgstr="Unscharf", flags=["fuzzy"]),
        polib.POEntry(msgid="Gone", msgstr="Weg", obsolete=True),
        ("%s: %s", "%s: %s"),
        ("{0}", "{0}"),
        ("...", "..."),
        polib.POEntry(msgid="One file", msgid_plural="%d files", msgstr_plural={0: "Eine Datei", 1: "%d Dateien"}),
        ("Shared", "Geteilt"),
        ("Tie", "Zeta"),
    ])
    write_catalog(root, "de", "lib", [
        ("Shared", "Gemeinsam"),
        ("Tie", "Alpha"),
        ("Library error", "Bibliotheksfehler"),
    ], fmt="mo")
    write_catalog(root, "de", "tool", [("Shared", "Geteilt"), ("Hidden\n  gem", "Verstecktes Juwel")], fmt="mo")
    write_catalog(root, "fr", "app", [("Open file", "Ouvrir le fichier"), ("Line one\n  line two", "Ligne un\nligne deux")])
    write_catalog(root, "fr", "lib", [
        ("Library error", "Erreur de bibliothèque"),
        ("user_name is invalid", "user_name est invalide"),
    ], fmt="mo")
    return root


def read_split(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def by_source(out: Path) -> dict[str, dict]:
    return {r["translation"]["en"]: r for split in ("train", "validation", "test") for r in read_split(out, split)}


def build(root, out, **kw):
    kw = {"test_domains": ["tool"], "validation_fraction": 0.0, **kw}
    return build_gettext_corpus(["de", "fr"], out, roots=[root], **kw)


def test_rows_keep_translations_and_drop_noise(root, tmp_path):
    build(root, tmp_path / "out")
    rows = by_source(tmp_path / "out")
    assert set(rows) == {
        "Open file", "Save As", "One file", "%d files", "Shared", "Tie", "Library error",
        "Hidden\n  gem", "Line one\n  line two", "user_name is invalid",
    }  # no untranslated, fuzzy, obsolete, header or placeholder-only msgids
    assert rows["Open file"]["translation"] == {"en": "Open file", "de": "Datei öffnen", "fr": "Ouvrir le fichier"}
    assert rows["Library error"]["translation"]["fr"] == "Erreur de bibliothèque"  # read from .mo
    assert rows["Hidden\n  gem"]["translation"] == {"en": "Hidden\n  gem", "de": "Verstecktes Juwel", "fr": None}
    assert rows["Line one\n  line two"]["translation"]["fr"] == "Ligne un\nligne deux"  # line breaks as written
    assert all(list(r["translation"]) == ["en", "de", "fr"] for r in rows.values())


def test_plural_entry_gives_singular_and_plural_pairs(root, tmp_path):
    build(root, tmp_path / "out")
    rows = by_source(tmp_path / "out")
    assert rows["One file"]["translation"]["de"] == "Eine Datei"
    assert rows["%d files"]["translation"]["de"] == "%d Dateien"


def test_majority_translation_wins_and_ties_go_to_first_domain(root, tmp_path):
    build(root, tmp_path / "out")
    rows = by_source(tmp_path / "out")
    assert rows["Shared"]["translation"]["de"] == "Geteilt"  # app + tool beat lib
    assert rows["Shared"]["domain"] == "app"
    assert rows["Tie"]["translation"]["de"] == "Zeta"  # 1:1, "app" < "lib" (not the alphabetically first text)


@pytest.mark.parametrize("text, label, stripped", [
    ("_Open", True, "Open"),
    ("Save _As", True, "Save As"),
    ("C_ollate", True, "Collate"),
    ("user_name", False, None),
    ("__init__", False, None),
    ("Corrupt MERGE_HEAD file", False, None),
    ("Num_Lock", False, None),
    ("size_t", False, None),
])
def test_mnemonic_rule(text, label, stripped):
    assert is_mnemonic_label(text) is label
    if label:
        assert strip_mnemonic(text) == stripped


def test_mnemonics_stripped_on_both_sides(root, tmp_path):
    assert strip_mnemonic("Ö_ffnen") == "Öffnen" and strip_mnemonic("開く(_O)") == "開く"
    build(root, tmp_path / "out")
    rows = by_source(tmp_path / "out")
    assert rows["Save As"]["translation"]["de"] == "Speichern unter"
    assert rows["user_name is invalid"]["translation"]["fr"] == "user_name est invalide"


def test_test_domain_is_held_out_without_leakage(root, tmp_path):
    stats = build(root, tmp_path / "out", validation_fraction=0.5)
    test = read_split(tmp_path / "out", "test")
    seen = {r["translation"]["en"] for s in ("train", "validation") for r in read_split(tmp_path / "out", s)}
    assert [r["translation"]["en"] for r in test] == ["Hidden\n  gem"]
    assert "Shared" in seen  # also in tool, but app/lib are not held out
    assert stats["test_domains"] == ["tool"]
    assert stats["rows"] == {"train": 5, "validation": 4, "test": 1}
    assert stats["coverage"]["test"] == {"de": 1, "fr": 0}
    assert stats["domains"] == {"app": 7, "lib": 4, "tool": 2}
    assert json.loads((tmp_path / "out" / "stats.json").read_text()) == stats


def test_max_source_words(root, tmp_path):
    build(root, tmp_path / "out", max_source_words=1)
    assert set(by_source(tmp_path / "out")) == {"Shared", "Tie"}


def test_domain_names_merge_across_roots(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_catalog(a, "de", "iso_3166-1", [("Germany", "Deutschland")], fmt="mo")
    write_catalog(b, "de", "iso3166-1", [("France", "Frankreich")], fmt="mo")
    write_catalog(b, "de", "other", [("Spain", "Spanien")])
    stats = build_gettext_corpus(["de"], tmp_path / "out", roots=[a, b], test_domains=["iso_3166_1"])
    assert normalise_domain("iso_3166-1") == normalise_domain("iso3166-1") == "iso31661"
    assert stats["domains"] == {"iso31661": 2, "other": 1}
    assert stats["rows"]["test"] == 2


def many_domains(tmp_path: Path) -> Path:
    root = tmp_path / "many"
    for d in range(12):
        entries = [(f"Message {d} number {i}", f"Nachricht {d} Nummer {i}") for i in range(5 + d)]
        write_catalog(root, "de", f"dom{d:02d}", entries + [("Common", "Gemeinsam")], fmt="mo")
        write_catalog(root, "fr", f"dom{d:02d}", [(entries[0][0], f"Message {d}")], fmt="mo")
    return root


def test_default_test_domains_deterministic_and_no_leakage(tmp_path):
    root = many_domains(tmp_path)
    runs = [build_gettext_corpus(["de", "fr"], tmp_path / f"o{i}", roots=[root], seed=3) for i in range(2)]
    assert runs[0] == runs[1]
    for split in ("train", "validation", "test"):
        assert (tmp_path / "o0" / f"{split}.jsonl").read_bytes() == (tmp_path / "o1" / f"{split}.jsonl").read_bytes()
    stats = runs[0]
    total = sum(stats["rows"].values())
    assert stats["test_domains"] and stats["rows"]["test"] >= 0.1 * total
    assert all(stats["domains"][d] <= 2 * 0.1 * total for d in stats["test_domains"])
    test = {r["translation"]["en"] for r in read_split(tmp_path / "o0", "test")}
    rest = {r["translation"]["en"] for s in ("train", "validation") for r in read_split(tmp_path / "o0", s)}
    assert not test & rest and "Common" in rest
    assert {r["domain"] for r in read_split(tmp_path / "o0", "test")} <= set(stats["test_domains"])


def test_unknown_language_lists_available(root, tmp_path):
    with pytest.raises(ValueError, match=r"'xx'.*available: de, fr.*--roots"):
        build_gettext_corpus(["de", "xx"], tmp_path / "out", roots=[root])


def test_unknown_test_domain_lists_available(root, tmp_path):
    with pytest.raises(ValueError, match=r"nope.*available: app, lib, tool"):
        build(root, tmp_path / "out", test_domains=["nope"])


def test_empty_result_is_an_error(root, tmp_path):
    with pytest.raises(ValueError, match="no usable translations"):
        build(root, tmp_path / "out", max_source_words=0)


@pytest.mark.parametrize("name, content, problem", [
    ("broken.mo", b"not a catalog at all", "magic number is incorrect"),
    ("broken.po", b'msgid "a"\nmsgstr "b" "\n', r"line 2\): unescaped double quote"),
    ("latin1.po", b'msgid "caf\xe9"\nmsgstr "x"\n', "can't decode byte 0xe9"),
])
def test_corrupt_catalog_names_the_file(root, tmp_path, name, content, problem):
    (root / "de" / "LC_MESSAGES" / name).write_bytes(content)
    message = rf"cannot read gettext catalog \S+/de/LC_MESSAGES/{name}: .*{problem}.*corrupt"
    with pytest.raises(ValueError, match=message):
        build(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_corpus_appears_complete_or_not_at_all(root, tmp_path, monkeypatch):
    """Files are written into a hidden sibling renamed into place: an interrupted build leaves no half corpus."""
    out = tmp_path / "data" / "corpus"
    assert not corpus_is_complete(out)

    def interrupted(src, dst):
        assert sorted(p.name for p in Path(src).iterdir()) == sorted(CORPUS_FILES)  # all written before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(gettext.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(root, out)
    assert not out.exists() and list(out.parent.iterdir()) == []  # the partial folder is removed too
    monkeypatch.undo()
    stats = build(root, out)
    assert corpus_is_complete(out) and json.loads((out / "stats.json").read_text())["rows"] == stats["rows"]
    assert list(out.parent.iterdir()) == [out]


def test_half_built_corpus_is_incomplete_and_rebuilt(root, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.jsonl").write_text('{"translation": {"en": "stale"}}\n')  # an older build killed midway
    assert not corpus_is_complete(out)
    build(root, out)
    assert corpus_is_complete(out) and "stale" not in (out / "train.jsonl").read_text()
    (out / "stats.json").unlink()
    assert not corpus_is_complete(out)


def test_build_refuses_to_replace_a_folder_with_other_files(root, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match=r"holds files that are not corpus files \(notes\.txt\).*new or empty"):
        build(root, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_real_system_catalogs(tmp_path):
    if not Path("/usr/share/locale/de/LC_MESSAGES").is_dir():
        pytest.skip("no system gettext catalogs on this machine")
    stats = build_gettext_corpus(["de", "fr"], tmp_path / "out", roots=default_roots())
    assert sum(stats["rows"].values()) > 1000 and stats["rows"]["test"] > 0
    test = {r["translation"]["en"] for r in read_split(tmp_path / "out", "test")}
    rest = {r["translation"]["en"] for s in ("train", "validation") for r in read_split(tmp_path / "out", s)}
    assert not test & rest
    assert "iso31661" in stats["domains"] and "iso_3166-1" not in stats["domains"]


def test_heldout_domains_leave_every_split_and_go_to_heldout(tmp_path):
    """A string of a held-out catalog is in no split (even when another catalog has it too), only in heldout.jsonl,
    at any length (max_source_words limits the other splits); asking for other held-out domains makes an existing corpus incomplete (it is rebuilt)."""
    root = tmp_path / "locale"
    write_catalog(root, "de", "gui", [("Open", "Öffnen"), ("Close", "Schließen"), ("Quit", "Beenden"),
                                      ("Quit the program now", "Das Programm jetzt beenden")])
    write_catalog(root, "de", "cli", [("Open", "Öffnen"), ("display this help and exit", "diese Hilfe anzeigen")])
    out = tmp_path / "out"
    stats = build_gettext_corpus(["de"], out, roots=[root], heldout_domains=["cli"], test_fraction=0,
                                 validation_fraction=0, max_source_words=3)  # held-out strings: every length
    assert sorted(r["translation"]["en"] for r in read_split(out, "heldout")) == ["Open", "display this help and exit"]
    assert {r["domain"] for r in read_split(out, "heldout")} == {"cli"}
    assert sorted(by_source(out)) == ["Close", "Quit"]
    assert stats["heldout_domains"] == ["cli"] and stats["rows"]["heldout"] == 2
    assert corpus_is_complete(out, ["cli"]) and not corpus_is_complete(out, []) and not corpus_is_complete(out, ["gui"])
    with pytest.raises(ValueError, match=r"unknown held-out domain\(s\) \['nope'\]"):
        build_gettext_corpus(["de"], tmp_path / "o2", roots=[root], heldout_domains=["nope"])


def test_whitespace_inside_strings_is_kept_as_written_and_spacing_variants_are_one_row(tmp_path):
    """No-break spaces (U+00A0, U+202F), `…`, line breaks and the aligned columns of `--help` text stay as the
    catalogs write them (only the ends are stripped); strings that differ only in spacing are one row, written the
    way most catalogs write it."""
    root = tmp_path / "locale"
    option = "  -o, --output=FILE      write to FILE\n      (the default is standard output)\n"
    write_catalog(root, "fr", "a", [("File: %s", "Fichier\u00a0: %s"), ("Wait…", "Patientez\u202f!…"),
                                    (option, "  -o, --output=FICHIER   écrire dans FICHIER\n")])
    write_catalog(root, "fr", "b", [(option.replace("      (", " ("), "  -o, --output=FICHIER   écrire\tdans FICHIER")])
    write_catalog(root, "fr", "c", [("File:  %s", "Fichier\u00a0: %s")])
    out = tmp_path / "out"
    stats = build_gettext_corpus(["fr"], out, roots=[root], test_fraction=0, validation_fraction=0)
    rows = {r["translation"]["en"]: r["translation"]["fr"] for r in read_split(out, "train")}
    assert rows == {
        "File: %s": "Fichier\u00a0: %s",  # "File:  %s" (catalog c) is the same row; a is first
        "Wait…": "Patientez\u202f!…",
        option.strip(): "-o, --output=FICHIER   écrire dans FICHIER",  # a and b: one row, a's (first domain)
    }
    assert stats["version"] == gettext.CORPUS_VERSION == 2 and stats["rows"]["train"] == 3


def test_a_corpus_built_with_whitespace_collapsed_is_rebuilt(root, tmp_path, caplog):
    out = tmp_path / "out"
    build(root, out)
    stats = json.loads((out / "stats.json").read_text())
    del stats["version"]  # as builds before version 2 wrote it
    (out / "stats.json").write_text(json.dumps(stats))
    assert not corpus_is_complete(out)
    assert f"{out} was built by an older mtl-translate (corpus version 1, whitespace inside strings collapsed); it is " \
           "rebuilt" in caplog.text
