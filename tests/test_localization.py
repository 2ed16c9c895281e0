"""`translate-po`: catalogs that msgfmt -c accepts, existing translations untouched, placeholders/markup/access keys/
edges kept, plural forms per language, each msgid encoded once; on a real installed catalog and a hand-made one."""

import re
import shutil
import subprocess
from pathlib import Path

import polib
import pytest

from mtl_translate import Translator
from mtl_translate.cli import main
from mtl_translate.data.gettext import default_roots
from mtl_translate.localization import translate_po
from mtl_translate.placeholders import FORMAT_PLACEHOLDER, SPAN, mask, restore

HEADER = r'''# Demo program.
#, fuzzy
msgid ""
msgstr ""
"Project-Id-Version: demo 1.0\n"
"Report-Msgid-Bugs-To: \n"
"POT-Creation-Date: 2024-01-01 00:00+0000\n"
"PO-Revision-Date: YEAR-MO-DA HO:MI+ZONE\n"
"Last-Translator: FULL NAME <EMAIL@ADDRESS>\n"
"Language-Team: LANGUAGE <LL@li.org>\n"
"Language: \n"
"MIME-Version: 1.0\n"
"Content-Type: text/plain; charset=CHARSET\n"
"Content-Transfer-Encoding: 8bit\n"
"Plural-Forms: nplurals=INTEGER; plural=EXPRESSION;\n"
'''
TEMPLATE = HEADER + r'''
#: main.c:10
msgid "_Open"
msgstr ""

msgid "&Save"
msgstr ""

msgid "Tom && Jerry"
msgstr ""

msgctxt "menu"
msgid "Quit"
msgstr ""

msgctxt "button"
msgid "Quit"
msgstr ""

#, c-format
msgid "Cannot open %s: %s"
msgstr ""

#, python-format
msgid "%(count)d of %(total)d done"
msgstr ""

#, c-format
msgid "%d file"
msgid_plural "%d files"
msgstr[0] ""
msgstr[1] ""

#, c-format
msgid "One window"
msgid_plural "%d windows"
msgstr[0] ""
msgstr[1] ""

msgid "Click <b>here</b> or visit <a href=\"https://example.org/x\">the site</a>"
msgstr ""

msgid "\nUsage: demo [OPTION]...\n\n"
msgstr ""

#, c-format
msgid "%s: %s"
msgstr ""
'''
EXISTING_DE = HEADER.replace('"Language: \\n"', '"Language: de\\n"') + r'''
msgctxt "menu"
msgid "Quit"
msgstr "Beenden"

#, fuzzy
msgid "Tom && Jerry"
msgstr "Tom und Jerry"
'''


def shout(text: str) -> str:
    """A stand-in translation: the text upper-cased, what a model must keep (placeholders, ⟨N⟩) left as it is."""
    out, end = [], 0
    for match in SPAN.finditer(text):
        out += [text[end:match.start()].upper(), match[0]]
        end = match.end()
    return "".join(out) + text[end:].upper()


class FakeTranslator:
    """Translator's interface as translate_po uses it, with deterministic output and a record of every call."""

    def __init__(self, langs, table=None, damage=None):
        self.langs, self.table, self.damage, self.calls = langs, table or {}, damage or (lambda text: text), []
        self.model = type("Model", (), {"config": type("Config", (), {"_name_or_path": "acme/mtl-ui"})})()

    def check_languages(self, langs):
        unknown = [lang for lang in langs or [] if lang not in self.langs]
        if unknown:
            raise ValueError(f"unknown target language(s) {unknown}; this model translates into {self.langs}.")
        return list(langs or self.langs)

    def translate(self, texts, langs, *, rows, batch_size, return_confidence=False, **generation):
        self.calls.append((list(texts), {lang: list(rows[lang]) for lang in langs}))
        return unsure({lang: [self.damage(self.table.get((lang, t), shout(t))) if keep else None
                              for t, keep in zip(texts, rows[lang])] for lang in langs}, return_confidence)


def unsure(out: dict, return_confidence: bool):
    """`Translator.translate`'s answer; with `return_confidence`, no confidence (None) for any output."""
    return (out, {lang: [None] * len(texts) for lang, texts in out.items()}) if return_confidence else out


def msgfmt_check(path: Path) -> None:
    if shutil.which("msgfmt") is None:  # .ci/run installs Debian's gettext, so CI always runs this check
        pytest.skip("msgfmt is not installed (Debian package gettext)")
    proc = subprocess.run(["msgfmt", "-c", "-o", "/dev/null", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def entries(path: Path) -> dict:
    return {(e.msgctxt, e.msgid): e for e in polib.pofile(str(path))}


def test_hand_made_template_is_filled_per_language_and_msgfmt_accepts_it(tmp_path):
    (tmp_path / "demo.pot").write_text(TEMPLATE, encoding="utf-8")
    (tmp_path / "po").mkdir()
    (tmp_path / "po" / "de.po").write_text(EXISTING_DE, encoding="utf-8")
    translator = FakeTranslator(["de", "ru", "ja"], table={("ja", "Open"): "開く"})
    report = translate_po(tmp_path / "demo.pot", translator, ["de", "ru", "ja"], tmp_path / "po")

    assert report["de"] == {"path": str(tmp_path / "po" / "de.po"), "entries": 12, "kept": 2, "filled": 10,
                            "mismatch": 0, "empty": 0, "unsure": 0}
    assert report["ru"]["filled"] == report["ja"]["filled"] == 12
    de = entries(tmp_path / "po" / "de.po")
    assert de[("menu", "Quit")].msgstr == "Beenden" and not de[("menu", "Quit")].flags  # a person's work: untouched
    assert de[(None, "Tom && Jerry")].msgstr == "Tom und Jerry"  # fuzzy already: a translator's draft, kept
    expected = {
        "_Open": "_OPEN", "&Save": "&SAVE", "Cannot open %s: %s": "CANNOT OPEN %s: %s",
        "%(count)d of %(total)d done": "%(count)d OF %(total)d DONE",
        "Click <b>here</b> or visit <a href=\"https://example.org/x\">the site</a>":
            "CLICK <b>HERE</b> OR VISIT <a href=\"https://example.org/x\">THE SITE</a>",
        "\nUsage: demo [OPTION]...\n\n": "\nUSAGE: DEMO [OPTION]...\n\n", "%s: %s": "%s: %s",
    }
    assert {msgid: de[(None, msgid)].msgstr for msgid in expected} == expected
    assert de[("button", "Quit")].msgstr == "QUIT"  # same msgid, other context: its own entry
    filled = de[("button", "Quit")]
    assert "fuzzy" in filled.flags and filled.tcomment == "machine translation by acme/mtl-ui"
    assert de[(None, "%d file")].msgstr_plural == {0: "%d FILE", 1: "%d FILES"}

    ru, ja = entries(tmp_path / "po" / "ru.po"), entries(tmp_path / "po" / "ja.po")
    assert ru[(None, "%d file")].msgstr_plural == {0: "%d FILE", 1: "%d FILES", 2: "%d FILES"}
    # form 0 also serves 21, 31, ... in Russian, so it needs msgid_plural's %d: "One window" cannot be it
    assert ru[(None, "One window")].msgstr_plural == {0: "%d WINDOWS", 1: "%d WINDOWS", 2: "%d WINDOWS"}
    assert ja[(None, "One window")].msgstr_plural == {0: "%d WINDOWS"}
    assert ja[(None, "_Open")].msgstr == "開く(_O)"
    assert ru[("menu", "Quit")].msgstr == "QUIT"  # translated in de only: filled for ru

    for lang, forms in (("de", "nplurals=2; plural=(n != 1);"), ("ru", "nplurals=3;"), ("ja", "nplurals=1; plural=0;")):
        po = polib.pofile(str(tmp_path / "po" / f"{lang}.po"))
        assert po.metadata["Language"] == lang and po.metadata["Plural-Forms"].startswith(forms)
        assert po.metadata["Content-Type"] == "text/plain; charset=UTF-8"
        assert po.metadata["Content-Transfer-Encoding"] == "8bit"
        assert po.metadata["X-Generator"].startswith("mtl-translate ")
        assert po.metadata["Project-Id-Version"] == "demo 1.0" and not po.metadata_is_fuzzy
        msgfmt_check(tmp_path / "po" / f"{lang}.po")


def test_each_msgid_is_encoded_once_for_every_language(tmp_path):
    (tmp_path / "demo.pot").write_text(TEMPLATE, encoding="utf-8")
    (tmp_path / "po").mkdir()
    (tmp_path / "po" / "de.po").write_text(EXISTING_DE, encoding="utf-8")
    translator = FakeTranslator(["de", "fr"])
    translate_po(tmp_path / "demo.pot", translator, ["de", "fr"], tmp_path / "po")
    ((texts, rows),) = translator.calls  # one call: the encoder sees each text once, every head decodes it
    assert len(texts) == len(set(texts)) == 12  # 14 msgids: "Quit" (in two contexts) once, "%s: %s" copied
    assert "Click ⟨0⟩here⟨1⟩ or visit ⟨2⟩the site⟨3⟩" in texts and "Open" in texts and "Save" in texts
    assert "Usage: demo [OPTION]..." in texts  # the model gets no surrounding newlines
    assert rows["fr"][texts.index("Quit")] and rows["de"][texts.index("Quit")]  # button Quit: untranslated in de
    assert not rows["de"][texts.index("Tom ⟨0⟩ Jerry")] and rows["fr"][texts.index("Tom ⟨0⟩ Jerry")]


def test_a_translation_that_loses_a_placeholder_or_markup_is_left_untranslated_and_counted(tmp_path):
    (tmp_path / "demo.pot").write_text(HEADER + r'''
#, c-format
msgid "Cannot open %s"
msgstr ""

msgid "Click <b>here</b>"
msgstr ""

msgid "Quit"
msgstr ""
''', encoding="utf-8")
    translator = FakeTranslator(["de"], damage=lambda text: text.replace("%s", "").replace("⟨1⟩", ""))
    report = translate_po(tmp_path / "demo.pot", translator, ["de"], tmp_path / "po")
    assert report["de"] | {"path": None} == {"path": None, "entries": 3, "kept": 0, "filled": 1, "mismatch": 2,
                                              "empty": 0, "unsure": 0}
    de = entries(tmp_path / "po" / "de.po")
    for msgid in ("Cannot open %s", "Click <b>here</b>"):
        assert de[(None, msgid)].msgstr == "" and "fuzzy" not in de[(None, msgid)].flags  # never written broken
    assert de[(None, "Quit")].msgstr == "QUIT"
    msgfmt_check(tmp_path / "po" / "de.po")


class ReorderingTranslator(FakeTranslator):
    """A model that reorders mask tokens: masks each text as the Translator does, answers from `table` by the
    masked text (else the masked text itself) and restores the answer, numbering reordered conversions."""

    def translate(self, texts, langs, *, rows, batch_size, return_confidence=False, **generation):
        masked = [mask(text) for text in texts]
        return unsure({lang: [restore(self.table.get((lang, m), m), spans)[0] if keep else None
                              for (m, spans), keep in zip(masked, rows[lang])] for lang in langs}, return_confidence)


def msgfmt_reviewed(path: Path) -> subprocess.CompletedProcess:
    """`msgfmt -c --check-format` on the catalog as a reviewer would leave it: every fuzzy flag removed (msgfmt does
    not check the format of a fuzzy entry)."""
    if shutil.which("msgfmt") is None:
        pytest.skip("msgfmt is not installed (Debian package gettext)")
    po = polib.pofile(str(path))
    for entry in po:
        entry.flags = [flag for flag in entry.flags if flag != "fuzzy"]
    po.save(str(path.with_suffix(".reviewed.po")))
    return subprocess.run(["msgfmt", "-c", "--check-format", "-o", "/dev/null", str(path.with_suffix(".reviewed.po"))],
                          capture_output=True, text=True)


def test_reordered_conversions_are_numbered_only_where_the_format_flag_allows_it(tmp_path):
    (tmp_path / "demo.pot").write_text(HEADER + r'''
#, c-format
msgid "Copied %s to %s"
msgstr ""

#, python-format
msgctxt "python"
msgid "Copied %s to %s"
msgstr ""

#, python-format
msgid "Copied %(src)s to %(dst)s"
msgstr ""

#, python-brace-format
msgid "Copied {} to {}"
msgstr ""

msgid "%A, day %d"
msgstr ""

#, no-c-format
msgctxt "flagged"
msgid "%A, day %d"
msgstr ""
''', encoding="utf-8")
    table = {("de", "Copied ⟨0⟩ to ⟨1⟩"): "Nach ⟨1⟩ kopiert: ⟨0⟩", ("de", "⟨0⟩, day ⟨1⟩"): "Tag ⟨1⟩, ⟨0⟩"}
    report = translate_po(tmp_path / "demo.pot", ReorderingTranslator(["de"], table), ["de"], tmp_path / "po")
    assert report["de"]["filled"] == 6
    de = {(e.msgctxt, e.msgid): e.msgstr for e in polib.pofile(str(tmp_path / "po" / "de.po"))}
    assert de == {
        (None, "Copied %s to %s"): "Nach %2$s kopiert: %1$s",  # C: each conversion keeps its argument
        ("python", "Copied %s to %s"): "Nach %s kopiert: %s",  # Python's % has no %2$s: the source's order
        (None, "Copied %(src)s to %(dst)s"): "Nach %(dst)s kopiert: %(src)s",  # named: free to move
        (None, "Copied {} to {}"): "Nach {1} kopiert: {0}",
        (None, "%A, day %d"): "Tag %d, %A", ("flagged", "%A, day %d"): "Tag %d, %A",  # a date: directives move
    }
    checked = msgfmt_reviewed(tmp_path / "po" / "de.po")
    assert checked.returncode == 0 and "format" not in checked.stderr  # header warnings only
    po = polib.pofile(str(tmp_path / "po" / "de.po"))  # what the python-format entry got before: msgfmt refuses it
    po.find("Copied %s to %s", msgctxt="python").msgstr = "Nach %2$s kopiert: %1$s"
    po.save()
    checked = msgfmt_reviewed(tmp_path / "po" / "de.po")
    assert checked.returncode == 1 and "'msgstr' is not a valid Python format string, unlike 'msgid'" in checked.stderr

def test_access_keys_go_before_their_letter_in_the_translation_and_ampersands_that_are_none_stay(tmp_path):
    (tmp_path / "demo.pot").write_text(HEADER + "".join(f'\nmsgid "{m}"\nmsgstr ""\n' for m in (
        "Save _As", "E&xit", "AT&T rates", "Fish &amp; Chips")), encoding="utf-8")
    translate_po(tmp_path / "demo.pot", FakeTranslator(["de"], table={("de", "Exit"): "Beenden"}), ["de"],
                 tmp_path / "po")
    de = {e.msgid: e.msgstr for e in polib.pofile(str(tmp_path / "po" / "de.po"))}
    assert de == {"Save _As": "SAVE _AS", "E&xit": "&Beenden", "AT&T rates": "AT&T RATES",
                  "Fish &amp; Chips": "FISH &amp; CHIPS"}
    msgfmt_check(tmp_path / "po" / "de.po")


def test_updating_a_catalog_adds_new_msgids_keeps_every_translation_and_obsoletes_dropped_ones(tmp_path):
    def template(*msgids):
        (tmp_path / "demo.pot").write_text(HEADER + "".join(f'\nmsgid "{m}"\nmsgstr ""\n' for m in msgids))
        return tmp_path / "demo.pot"

    translate_po(template("Open", "Quit"), FakeTranslator(["de"]), ["de"], tmp_path / "po")
    po = polib.pofile(str(tmp_path / "po" / "de.po"))
    po.find("Open").msgstr, po.find("Open").flags = "Öffnen", []  # a translator reviews one entry
    po.save()
    report = translate_po(template("Open", "Save"), FakeTranslator(["de"]), ["de"], tmp_path / "po")
    assert report["de"] | {"path": None} == {"path": None, "entries": 2, "kept": 1, "filled": 1, "mismatch": 0,
                                              "empty": 0, "unsure": 0}
    po = polib.pofile(str(tmp_path / "po" / "de.po"))
    assert [(e.msgid, e.msgstr, bool(e.obsolete)) for e in po] == [
        ("Open", "Öffnen", False), ("Save", "SAVE", False), ("Quit", "QUIT", True)]
    msgfmt_check(tmp_path / "po" / "de.po")
    translator = FakeTranslator(["de"])
    report = translate_po(template("Open", "Save", "Quit"), translator, ["de"], tmp_path / "po")
    assert report["de"]["kept"] == 3 and translator.calls == []  # "Quit" is back with its draft, as with msgmerge
    assert [e.msgid for e in polib.pofile(str(tmp_path / "po" / "de.po")).obsolete_entries()] == []


def test_updating_a_catalog_merges_like_msgmerge_references_and_flags_from_the_template(tmp_path):
    (tmp_path / "demo.pot").write_text(HEADER + r'''
#. TRANSLATORS: the file's name
#: src/main.c:42 src/menu.c:7
#, c-format
msgid "Cannot open %s"
msgstr ""

#: src/main.c:50
#, c-format
msgid "Saved %d of %d"
msgstr ""

#: src/new.c:3
msgid "Print"
msgstr ""
''', encoding="utf-8")
    (tmp_path / "po").mkdir()
    (tmp_path / "po" / "de.po").write_text(EXISTING_DE + r'''
# Reviewed by Anna.
#: main.c:10
msgid "Cannot open %s"
msgstr "Kann %s nicht öffnen"

#: main.c:12
#, fuzzy
#| msgid "Saved %d"
msgid "Saved %d of %d"
msgstr "%d von %d gespeichert"

#: gone.c:1
msgid "Gone"
msgstr "Weg"
''', encoding="utf-8")
    translate_po(tmp_path / "demo.pot", FakeTranslator(["de"]), ["de"], tmp_path / "po")
    text = (tmp_path / "po" / "de.po").read_text()
    assert '''
# Reviewed by Anna.
#. TRANSLATORS: the file's name
#: src/main.c:42 src/menu.c:7
#, c-format
msgid "Cannot open %s"
msgstr "Kann %s nicht öffnen"

#: src/main.c:50
#, c-format, fuzzy
#| msgid "Saved %d"
msgid "Saved %d of %d"
msgstr "%d von %d gespeichert"

# machine translation by acme/mtl-ui
#: src/new.c:3
#, fuzzy
msgid "Print"
msgstr "PRINT"
''' in text  # a person's msgstr, fuzzy state, comment and previous msgid as they were; the rest the template's
    assert text.endswith('''
#~ msgctxt "menu"
#~ msgid "Quit"
#~ msgstr "Beenden"

#, fuzzy
#~ msgid "Tom && Jerry"
#~ msgstr "Tom und Jerry"

#~ msgid "Gone"
#~ msgstr "Weg"
''') and "gone.c" not in text
    msgfmt_check(tmp_path / "po" / "de.po")

def test_a_language_without_known_plural_forms_needs_them_in_its_catalog(tmp_path):
    (tmp_path / "demo.pot").write_text(TEMPLATE, encoding="utf-8")
    with pytest.raises(ValueError, match=r"Plural-Forms of 'xx' are unknown: add a header line 'Plural-Forms: "
                                         r"nplurals=N; plural=EXPR;' to .*xx\.po"):
        translate_po(tmp_path / "demo.pot", FakeTranslator(["xx"]), ["xx"], tmp_path / "po")
    assert not (tmp_path / "po").exists()  # nothing written
    (tmp_path / "po").mkdir()
    (tmp_path / "po" / "xx.po").write_text(HEADER.replace("nplurals=INTEGER; plural=EXPRESSION;",
                                                          "nplurals=2; plural=(n > 1);"), encoding="utf-8")
    assert translate_po(tmp_path / "demo.pot", FakeTranslator(["xx"]), ["xx"], tmp_path / "po")["xx"]["filled"] == 12
    assert polib.pofile(str(tmp_path / "po" / "xx.po")).metadata["Plural-Forms"] == "nplurals=2; plural=(n > 1);"


@pytest.mark.parametrize("lang, count, one", [("de", 2, 0), ("fr", 2, 0), ("es", 2, 0), ("ru", 3, 0), ("ar", 6, 1),
                                              ("ja", 1, 0), ("pl", 3, 0), ("cs", 3, 0), ("ga", 5, 0), ("haw", 2, 0)])
def test_plural_forms_are_gettexts_and_the_form_for_one_gets_the_singular(tmp_path, lang, count, one):
    (tmp_path / "demo.pot").write_text(HEADER + r'''
#, c-format
msgid "%d file"
msgid_plural "%d files"
msgstr[0] ""
msgstr[1] ""
''', encoding="utf-8")
    translate_po(tmp_path / "demo.pot", FakeTranslator([lang]), [lang], tmp_path / "po")
    po = polib.pofile(str(tmp_path / "po" / f"{lang}.po"))
    assert po.metadata["Plural-Forms"].startswith(f"nplurals={count}; plural=")
    assert po.find("%d file").msgstr_plural == {n: "%d FILE" if n == one else "%d FILES" for n in range(count)}
    msgfmt_check(tmp_path / "po" / f"{lang}.po")


def test_a_catalog_never_gets_the_templates_nplurals_integer(tmp_path):
    (tmp_path / "demo.pot").write_text(HEADER + '\nmsgid "Quit"\nmsgstr ""\n', encoding="utf-8")
    translate_po(tmp_path / "demo.pot", FakeTranslator(["xx"]), ["xx"], tmp_path / "po")  # a locale babel lacks
    text = (tmp_path / "po" / "xx.po").read_text()
    assert "Plural-Forms" not in text and 'msgstr "QUIT"' in text
    msgfmt_check(tmp_path / "po" / "xx.po")

def installed_catalog() -> Path:
    """A German catalog that `build-data gettext` reads by default: sed's (Debian) or pycountry's scripts list."""
    candidates = [root / "de" / "LC_MESSAGES" / name for root in default_roots() for name in ("sed.mo", "iso15924.mo")]
    return next(path for path in candidates if path.is_file())


def test_a_real_installed_catalog_round_trips_through_the_model_into_valid_catalogs(tiny_model, tokenizer, tmp_path):
    catalog = polib.mofile(str(installed_catalog()))
    pot = polib.POFile()
    pot.metadata = {"Project-Id-Version": catalog.metadata.get("Project-Id-Version", "demo"),
                    "Content-Type": "text/plain; charset=UTF-8"}
    for e in catalog:
        printf = any(m.startswith("%") for m in FORMAT_PLACEHOLDER.findall(e.msgid))
        pot.append(polib.POEntry(msgid=e.msgid, msgid_plural=e.msgid_plural, msgstr="",
                                 msgstr_plural={0: "", 1: ""} if e.msgid_plural else {},
                                 flags=["c-format"] if printf else []))  # as xgettext marks them: msgfmt -c checks
    pot.save(str(tmp_path / "real.pot"))
    (tmp_path / "po").mkdir()
    human = polib.POFile()  # the first five entries translated by a person already
    human.metadata = {**catalog.metadata}
    for e in list(catalog)[:5]:
        human.append(polib.POEntry(msgid=e.msgid, msgstr=e.msgstr, msgid_plural=e.msgid_plural,
                                   msgstr_plural=dict(e.msgstr_plural)))
    human.save(str(tmp_path / "po" / "de.po"))

    report = translate_po(tmp_path / "real.pot", Translator(tiny_model, tokenizer), ["de", "fr"], tmp_path / "po",
                          model_name="tiny", max_new_tokens=8)
    for lang in ("de", "fr"):
        counts = report[lang]
        assert counts["entries"] == len(catalog)
        assert counts["kept"] + counts["filled"] + counts["mismatch"] + counts["empty"] == len(catalog)
        assert counts["filled"] > 0
        msgfmt_check(tmp_path / "po" / f"{lang}.po")
        for e in polib.pofile(str(tmp_path / "po" / f"{lang}.po")):
            if "fuzzy" in e.flags:
                # no confidence where no form needed the model (sed's msgids "'" and "`")
                assert re.fullmatch(r"machine translation by tiny(, confidence (0\.\d\d|1\.00))?", e.tcomment)
                for msgstr in [e.msgstr] if not e.msgid_plural else e.msgstr_plural.values():
                    assert re.match(r"\s*", msgstr)[0] == re.match(r"\s*", e.msgid)[0]  # leading newlines kept
    assert report["de"]["kept"] == 5 and report["fr"]["kept"] == 0
    de = entries(tmp_path / "po" / "de.po")
    assert all(de[(None, e.msgid)].msgstr == e.msgstr and not de[(None, e.msgid)].flags for e in list(catalog)[:5])


def test_translate_po_command_writes_catalogs_and_reports_bad_input_in_one_line(tiny_model, tokenizer, tmp_path,
                                                                                capsys):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    (tmp_path / "demo.pot").write_text(TEMPLATE, encoding="utf-8")
    main(["translate-po", str(tmp_path / "demo.pot"), "--model", str(tmp_path / "model"), "--langs", "de,fr",
          "--out-dir", str(tmp_path / "po"), "--max-new-tokens", "4", "--num-beams", "2"])
    out = capsys.readouterr().out
    assert re.search(r"^de\s+12\s+0\s+\d+\s+\d+\s+\d+\s+.*de\.po$", out, re.M) and "marked fuzzy" in out
    assert sorted(p.name for p in (tmp_path / "po").iterdir()) == ["de.po", "fr.po"]

    def error(*args):
        with pytest.raises(SystemExit) as exit_info:
            main(["translate-po", *map(str, args)])
        return str(exit_info.value.code)

    assert error(tmp_path / "missing.pot", "--model", tmp_path / "model") == (
        f"mtl-translate translate-po: error: template {tmp_path / 'missing.pot'} does not exist or is not a file.")
    (tmp_path / "bad.pot").write_text('msgid "x"\nmsgstr\n')
    assert error(tmp_path / "bad.pot", "--model", tmp_path / "model").startswith(
        f"mtl-translate translate-po: error: cannot read template {tmp_path / 'bad.pot'}: ")
    assert error(tmp_path / "demo.pot", "--model", tmp_path / "model", "--langs", "de,it").endswith(
        "unknown target language(s) ['it']; this model translates into ['de', 'fr', 'es'].")


def test_an_underscore_or_backslash_the_msgid_lacks_is_taken_out_of_the_translation(tmp_path):
    (tmp_path / "demo.pot").write_text(HEADER + r'''
msgid "Open file"
msgstr ""

#, c-format
msgid "stray \\ before %s"
msgstr ""

msgid "larger than INT_MAX"
msgstr ""

msgid "Read\nWrite"
msgstr ""
''', encoding="utf-8")
    table = {("de", "Open file"): "Datei_öffnen \\ jetzt", ("de", "stray \\ before %s"): "verirrtes_ \\ vor %s",
             ("de", "larger than INT_MAX"): "größer als INT_MAX \\", ("de", "Read\nWrite"): "Lesen\n\\Schreiben"}
    translate_po(tmp_path / "demo.pot", FakeTranslator(["de"], table=table), ["de"], tmp_path / "po")
    de = {e.msgid: e.msgstr for e in polib.pofile(str(tmp_path / "po" / "de.po"))}
    assert de == {"Open file": "Datei öffnen jetzt", "stray \\ before %s": "verirrtes \\ vor %s",
                  "larger than INT_MAX": "größer als INT_MAX", "Read\nWrite": "Lesen\n Schreiben"}  # line kept
    msgfmt_check(tmp_path / "po" / "de.po")
