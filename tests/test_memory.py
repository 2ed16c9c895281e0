"""Translation memory in `translate-po`: exact msgctxt+msgid(+plural) reuse before the model, majority vote, a comment
naming the source, the template's own domain never served by installed catalogs, opt-in; .po, .mo and .tmx files."""

import logging
from pathlib import Path

import polib
import pytest

from mtl_translate.cli import main
from mtl_translate.localization import format_report, translate_po
from mtl_translate.localization.locales import directories, tier
from tests.test_localization import HEADER, FakeTranslator, entries

TEMPLATE = HEADER + r'''
msgid "Save"
msgstr ""

msgctxt "menu"
msgid "Quit"
msgstr ""

msgctxt "toolbar"
msgid "Quit"
msgstr ""

msgid "Quit"
msgstr ""

#, c-format
msgid "%d file"
msgid_plural "%d files"
msgstr[0] ""
msgstr[1] ""
'''


def catalog(path, lang, *items, mo=False):
    """A catalog of `items`: (msgctxt, msgid, msgstr) or (msgid, msgid_plural, [forms]); `mo`: compiled."""
    po = polib.POFile()
    po.metadata = {"Language": lang, "Content-Type": "text/plain; charset=UTF-8"} if lang else {}
    for a, b, c in items:
        po.append(polib.POEntry(msgid=a, msgid_plural=b, msgstr_plural=dict(enumerate(c))) if isinstance(c, list)
                  else polib.POEntry(msgctxt=a, msgid=b, msgstr=c))
    path.parent.mkdir(parents=True, exist_ok=True)
    po.save_as_mofile(str(path)) if mo else po.save(str(path))
    return path


@pytest.fixture
def template(tmp_path, monkeypatch):
    """demo.pot in the current folder, so that the paths comments name are short."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.pot").write_text(TEMPLATE, encoding="utf-8")
    return tmp_path / "demo.pot"


@pytest.fixture
def no_system_catalogs(monkeypatch):
    """Installed catalogs only under the roots a test gives (this machine's would change the answers)."""
    monkeypatch.setattr("mtl_translate.localization.memory.default_roots", lambda: [])


def test_exact_match_with_context_and_plural_is_reused_fuzzy_with_its_source_before_the_model(template, tmp_path):
    tm = catalog(Path("tm/de.po"), "de", ("menu", "Quit", "Beenden"), ("toolbar", "Quit", "Verlassen"),
                 ("%d file", "%d files", ["%d Datei", "%d Dateien"]), ("other", "Save", "Sichern"))
    translator = FakeTranslator(["de", "ru"])
    report = translate_po(template, translator, ["de", "ru"], tmp_path / "po", tm=[tm])

    de = entries(tmp_path / "po" / "de.po")
    assert de[("menu", "Quit")].msgstr == "Beenden" and de[("toolbar", "Quit")].msgstr == "Verlassen"
    assert de[("menu", "Quit")].tcomment == f"translation memory: {tm}" and "fuzzy" in de[("menu", "Quit")].flags
    assert de[(None, "%d file")].msgstr_plural == {0: "%d Datei", 1: "%d Dateien"}
    assert de[(None, "Quit")].msgstr == "QUIT" and de[(None, "Save")].msgstr == "SAVE"  # no match without a context
    assert de[(None, "Quit")].tcomment == "machine translation by acme/mtl-ui"
    assert report["de"] | {"path": None} == {"path": None, "entries": 5, "kept": 0, "memory": 3, "filled": 2,
                                             "mismatch": 0, "empty": 0, "unsure": 0}
    assert report["ru"]["memory"] == 0 and report["ru"]["filled"] == 5  # a German file serves no Russian entry
    [(texts, rows)] = translator.calls
    assert rows["de"] == [text in ("Quit", "Save") for text in texts]  # the model is asked only the rest
    assert "memory: 3 entries from translation memory (fuzzy, with a comment naming the source), 7 from the model" \
        in format_report(report)


def test_a_plural_is_reused_only_with_as_many_forms_as_the_language_has(template):
    two = catalog(Path("two/ru.po"), "ru", ("%d file", "%d files", ["%d файл", "%d файла"]))  # ru has 3 forms
    translate_po(template, FakeTranslator(["ru"]), ["ru"], "po", tm=[two])
    assert entries(Path("po/ru.po"))[(None, "%d file")].msgstr_plural == {0: "%d FILE", 1: "%d FILES", 2: "%d FILES"}
    three = catalog(Path("three/ru.po"), "ru", ("%d file", "%d files", ["%d файл", "%d файла", "%d файлов"]))
    translate_po(template, FakeTranslator(["ru"]), ["ru"], "po3", tm=[two, three])
    entry = entries(Path("po3/ru.po"))[(None, "%d file")]
    assert entry.msgstr_plural == {0: "%d файл", 1: "%d файла", 2: "%d файлов"}
    assert entry.tcomment == "translation memory: three/ru.po"  # the unusable one is no vote


def test_sources_that_disagree_give_the_most_common_translation_and_say_how_many_agreed(template, tmp_path):
    first = catalog(Path("a/de.po"), "de", (None, "Save", "Sichern"))
    second = catalog(Path("b/de.mo"), "de", (None, "Save", "Speichern"), mo=True)
    third = catalog(Path("c/de.po"), "de", (None, "Save", "Speichern"))
    translate_po(template, FakeTranslator(["de"]), ["de"], tmp_path / "po", tm=[first, second, third])
    save = entries(tmp_path / "po" / "de.po")[(None, "Save")]
    assert save.msgstr == "Speichern"
    assert save.tcomment == "translation memory (2 of 3 sources agree): b/de.mo"


def test_a_translation_that_drops_a_placeholder_or_is_fuzzy_is_not_reused(tmp_path):
    (tmp_path / "demo.pot").write_text(HEADER + '\n#, c-format\nmsgid "Open %s"\nmsgstr ""\n\nmsgid "Save"\n'
                                                'msgstr ""\n', encoding="utf-8")
    (tmp_path / "de.po").write_text('msgid ""\nmsgstr "Language: de\\n"\n\nmsgid "Open %s"\nmsgstr "Öffnen"\n\n'
                                    '#, fuzzy\nmsgid "Save"\nmsgstr "Sichern"\n', encoding="utf-8")
    report = translate_po(tmp_path / "demo.pot", FakeTranslator(["de"]), ["de"], tmp_path / "po",
                          tm=[tmp_path / "de.po"])
    assert report["de"]["memory"] == 0 and report["de"]["filled"] == 2


def test_installed_catalogs_never_serve_the_templates_own_domain_but_named_files_do(template, tmp_path,
                                                                                    no_system_catalogs):
    root = Path("locale")
    own = catalog(root / "de" / "LC_MESSAGES" / "demo.mo", "de", (None, "Save", "ANSWER"), mo=True)
    catalog(root / "de" / "LC_MESSAGES" / "other.mo", "de", (None, "Save", "Speichern"), ("menu", "Quit", "Ende"),
            mo=True)
    catalog(root / "de_CH" / "LC_MESSAGES" / "other.mo", "de_CH", ("toolbar", "Quit", "Schluss"), mo=True)
    report = translate_po(template, FakeTranslator(["de"]), ["de"], tmp_path / "po", tm_installed=True,
                          tm_roots=[root])
    de = entries(tmp_path / "po" / "de.po")
    assert de[(None, "Save")].msgstr == "Speichern" and de[("menu", "Quit")].msgstr == "Ende"
    comment = f"translation memory:{tmp_path / 'locale/de/LC_MESSAGES/other.mo'}"  # a line per 78 characters
    assert de[(None, "Save")].tcomment.replace("\n", "") == comment
    assert de[("toolbar", "Quit")].msgstr == "QUIT"  # de_CH is a region of de, not de itself
    assert report["de"]["memory"] == 2

    translate_po(template, FakeTranslator(["de"]), ["de"], tmp_path / "named", tm=[own])  # used as given
    assert entries(tmp_path / "named" / "de.po")[(None, "Save")].msgstr == "ANSWER"


def test_without_memory_flags_every_entry_is_the_models_even_with_catalogs_installed(template):
    translator = FakeTranslator(["de"])
    report = translate_po(template, translator, ["de"], "po")
    assert set(report["de"]) == {"path", "entries", "kept", "filled", "mismatch", "empty", "unsure"}
    assert report["de"]["filled"] == 5
    assert all(e.tcomment == "machine translation by acme/mtl-ui" for e in polib.pofile("po/de.po"))
    assert "memory" not in format_report(report)
    installed = translate_po(template, FakeTranslator(["de"]), ["de"], "with", tm_installed=True)
    if not installed["de"]["memory"]:  # Debian's bash, make and libc catalogs translate "Quit"
        pytest.skip("no German catalog installed here translates the template's msgids")
    assert entries(Path("with/de.po"))[(None, "Quit")].msgstr != "QUIT"


def test_tmx_units_give_each_language_with_context_and_regional_codes(template, tmp_path):
    (tmp_path / "ui.tmx").write_text('''<?xml version="1.0" encoding="utf-8"?>
<tmx version="1.4"><header srclang="en" datatype="plaintext" segtype="sentence" adminlang="en" o-tmf="x"
 creationtool="x" creationtoolversion="1"/><body>
<tu><prop type="x-context">menu</prop><tuv xml:lang="en"><seg>Quit</seg></tuv><tuv xml:lang="de"><seg>Beenden</seg>
</tuv><tuv xml:lang="fr-FR"><seg>Quitter</seg></tuv></tu>
<tu><tuv xml:lang="en"><seg>Save</seg></tuv><tuv xml:lang="pt-BR"><seg>Salvar</seg></tuv></tu>
</body></tmx>''', encoding="utf-8")
    report = translate_po(template, FakeTranslator(["de", "fr"]), ["de", "fr"], tmp_path / "po",
                          tm=[tmp_path / "ui.tmx"])
    assert entries(tmp_path / "po" / "de.po")[("menu", "Quit")].msgstr == "Beenden"
    assert entries(tmp_path / "po" / "fr.po")[("menu", "Quit")].msgstr == "Quitter"
    assert entries(tmp_path / "po" / "fr.po")[(None, "Quit")].msgstr == "QUIT"
    assert report["de"]["memory"] == report["fr"]["memory"] == 1


def test_bad_memory_files_are_errors_naming_them(template, tmp_path, caplog):
    def error(path):
        with pytest.raises((ValueError, FileNotFoundError)) as info:
            translate_po(template, FakeTranslator(["de"]), ["de"], tmp_path / "po", tm=[path])
        return str(info.value)

    (tmp_path / "broken.tmx").write_text('<tmx version="1.4">\n<body>\n<tu>\n</body></tmx>\n', encoding="utf-8")
    assert error(tmp_path / "broken.tmx").startswith(f"{tmp_path / 'broken.tmx'}:4: not a valid TMX file (")
    nameless = catalog(tmp_path / "memory.po", None, (None, "Save", "Speichern"))
    assert error(nameless) == (f"translation memory {nameless}: cannot tell its language; add a header line "
                               f"'Language: de' (its language code) to the catalog, or name it <lang>.po.")
    (tmp_path / "bad.mo").write_bytes(b"not a catalog")
    assert error(tmp_path / "bad.mo").startswith(f"cannot read translation memory {tmp_path / 'bad.mo'}: ")
    assert error(tmp_path / "de.po.gz") == f"translation memory {tmp_path / 'de.po.gz'} (--tm) does not exist or is " \
                                           f"not a file."
    (tmp_path / "tm.xliff").write_text("<xliff/>", encoding="utf-8")
    assert error(tmp_path / "tm.xliff") == f"translation memory {tmp_path / 'tm.xliff'} (--tm): not a .po, .mo or " \
                                           f".tmx file."
    assert not (tmp_path / "po").exists()  # nothing written
    with caplog.at_level(logging.WARNING):
        translate_po(template, FakeTranslator(["de"]), ["de"], tmp_path / "po",
                     tm=[catalog(tmp_path / "ja.po", "ja", (None, "Save", "保存"))])
    assert f"translation memory {tmp_path / 'ja.po'} holds none of the target languages de: not used" in caplog.text


def test_locales_follow_gettext_fallback_and_named_files_may_be_regional():
    assert directories("pt_BR") == ["pt_BR", "pt"] and directories("de") == ["de"]
    assert directories("sr_RS@latin") == ["sr_RS@latin", "sr@latin"]
    assert tier("pt_BR", "pt_BR", False) == 0 and tier("pt", "pt_BR", False) == 1
    assert tier("de_CH", "de", False) is None and tier("fr-FR", "fr", True) == 1 and tier("sr", "sr@latin", True) is None


def test_command_passes_memory_options(template, tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_translate_po(template, translator, langs, out_dir, **kwargs):
        seen.update(kwargs)
        return {"de": {"path": "po/de.po", "entries": 1, "kept": 0, "memory": 1, "filled": 0, "mismatch": 0,
                       "empty": 0, "unsure": 0}}

    monkeypatch.setattr("mtl_translate.localization.translate_po", fake_translate_po)
    monkeypatch.setattr("mtl_translate.cli.load_translator", lambda args: None)
    main(["translate-po", str(template), "--model", "m", "--tm", "a.po", "b.tmx", "--tm-installed", "/opt/locale",
          "--glossary", "terms.csv"])
    assert (seen["tm"], seen["tm_installed"], seen["tm_roots"], seen["glossary"]) == (
        ["a.po", "b.tmx"], True, ["/opt/locale"], "terms.csv")
    assert "memory: 1 entries from translation memory" in capsys.readouterr().out
    main(["translate-po", str(template), "--model", "m", "--tm-installed"])
    assert (seen["tm"], seen["tm_installed"], seen["tm_roots"], seen["glossary"]) == ([], True, (), None)
    main(["translate-po", str(template), "--model", "m"])
    assert seen["tm_installed"] is False
