"""`translate-file`: each format's untranslated units filled and marked for review in its own way, everything else
unchanged after the round trip (units, and bytes where the serializer keeps them), the format's placeholders,
markup and access keys kept, and bad input named with what to do."""

import re
from pathlib import Path

import pytest
from translate.storage import factory

from mtl_translate import Translator
from mtl_translate.cli import main
from mtl_translate.localization import translate_po
from mtl_translate.localization.files import format_file_report, translate_file
from mtl_translate.localization.formats import FORMATS, read_store

from .test_constrained_decoding import ScoredTranslator
from .test_glossary import CSV as GLOSSARY_CSV
from .test_glossary import OUTPUT, scripted_model  # noqa: F401 (a fixture)
from .test_localization import FakeTranslator
from .test_memory import catalog
from .test_placeholders import masked_tokenizer  # noqa: F401 (a fixture)

XLIFF = '''<?xml version="1.0" encoding="UTF-8"?>
<xliff version="1.2" xmlns="urn:oasis:names:tc:xliff:document:1.2">
  <file original="app.c" source-language="en" target-language="de" datatype="plaintext">
    <body>
      <trans-unit id="open">
        <source>_Open file</source>
        <target state="translated">Datei _öffnen</target>
      </trans-unit>
      <trans-unit id="save">
        <source>Save %s as %s</source>
      </trans-unit>
      <trans-unit id="click">
        <source>Click <g id="1">here</g> &amp; go</source>
        <target/>
      </trans-unit>
      <trans-unit id="quit">
        <source>~Quit</source>
      </trans-unit>
    </body>
  </file>
</xliff>
'''
XLIFF2 = '''<?xml version="1.0" encoding="UTF-8"?>
<xliff xmlns="urn:oasis:names:tc:xliff:document:2.0" version="2.0" srcLang="en" trgLang="fr">
  <file id="f1">
    <unit id="open">
      <segment state="final">
        <source>Open file</source>
        <target>Ouvrir le fichier</target>
      </segment>
    </unit>
    <unit id="save">
      <segment>
        <source>Save <pc id="1">all</pc> files</source>
      </segment>
    </unit>
  </file>
</xliff>
'''
TS = '''<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="de_DE">
<context>
    <name>MainWindow</name>
    <message>
        <location filename="../mainwindow.ui" line="14"/>
        <source>&amp;Open</source>
        <translation>Ö&amp;ffnen</translation>
    </message>
    <message>
        <source>Deleted %1 of %2 files</source>
        <translation type="unfinished"></translation>
    </message>
    <message>
        <source>&amp;Save</source>
        <translation type="unfinished"></translation>
    </message>
    <message numerus="yes">
        <source>%n file(s)</source>
        <translation type="unfinished">
            <numerusform></numerusform>
            <numerusform></numerusform>
        </translation>
    </message>
</context>
</TS>
'''
PO = r'''msgid ""
msgstr ""
"Language: de\n"
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

#, c-format
msgid "Open %s"
msgstr "Öffne %s"

#, c-format
msgid "%d file"
msgid_plural "%d files"
msgstr[0] ""
msgstr[1] ""

msgid "~Save"
msgstr ""
'''
ANDROID = '''<?xml version="1.0" encoding="utf-8"?>
<resources xmlns:xliff="urn:oasis:names:tc:xliff:document:1.2">
    <string name="app_name" translatable="false">Notes</string>
    <string name="open">Open file</string>
    <string name="greeting">Hello, %1$s! You have %2$d new notes.</string>
    <string name="count">Deleted <xliff:g id="count">%d</xliff:g> notes</string>
    <string name="bold">Tap <b>here</b> to start</string>
    <plurals name="notes">
        <item quantity="one">%d note</item>
        <item quantity="other">%d notes</item>
    </plurals>
</resources>
'''
ANDROID_DE = '''<?xml version="1.0" encoding="utf-8"?>
<resources xmlns:xliff="urn:oasis:names:tc:xliff:document:1.2">
    <!-- reviewed by Anna -->
    <string name="open">Datei öffnen</string>
    <string name="old">Alt</string>
</resources>
'''
I18NEXT = '{\n  "title": "Welcome, {{name}}!",\n  "menu": {"open": "Open file", "save": "Save"},\n' \
          '  "item_one": "{{count}} item",\n  "item_other": "{{count}} items"\n}\n'
I18NEXT_DE = '{\n    "menu": {\n        "open": "Datei öffnen"\n    }\n}\n'
PROPERTIES = "# Main window\napp.title=My App\ngreeting=Hello {0}, you have {1} messages\nmenu.open=&Open\n"
PROPERTIES_DE = "# Hauptfenster\napp.title=Meine App\n"
YAML = 'en:\n  hello: "Hello %{name}"\n  menu:\n    open: Open file\n'


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def units(path, name):
    return {u.getid(): (str(u.source), str(u.target)) for u in read_store(path, name, "test").units
            if not u.isheader()}


def test_xliff_12_fills_untranslated_units_needs_review_with_inline_markup_and_keeps_the_rest(tmp_path):
    report = translate_file(write(tmp_path, "app.xlf", XLIFF), FakeTranslator(["de"]), tmp_path / "out.xlf")
    assert {k: report[k] for k in ("format", "units", "kept", "filled", "mismatch", "empty")} == {
        "format": "xliff", "units": 4, "kept": 1, "filled": 3, "mismatch": 0, "empty": 0}
    text = (tmp_path / "out.xlf").read_text()
    assert '''      <trans-unit id="open">
        <source>_Open file</source>
        <target state="translated">Datei _öffnen</target>
      </trans-unit>''' in text  # a person's translation, byte for byte
    assert '''<target state="needs-review-translation">SAVE %s AS %s</target>
        <note from="translator">machine translation by acme/mtl-ui</note>''' in text
    assert '<target state="needs-review-translation">CLICK <g id="1">HERE</g> &amp; GO</target>' in text
    assert '<target state="needs-review-translation">~QUIT</target>' in text
    assert text.count('approved="no"') == 3
    store = factory.getobject(str(tmp_path / "out.xlf"))
    assert [u.source for u in store.units] == ["_Open file", "Save %s as %s", "Click here & go", "~Quit"]


def test_xliff_20_drafts_stay_initial_with_their_inline_elements(tmp_path):
    report = translate_file(write(tmp_path, "app.xliff", XLIFF2), FakeTranslator(["fr"]), tmp_path / "o.xliff")
    assert (report["format"], report["filled"], report["kept"]) == ("xliff2", 1, 1)
    text = (tmp_path / "o.xliff").read_text()
    assert '<segment state="final">\n        <source>Open file</source>\n        <target>Ouvrir le fichier</target>' in text
    assert '<segment state="initial">\n        <source>Save <pc id="1">all</pc> files</source>\n        <target>SAVE ' \
           '<pc id="1">ALL</pc> FILES</target>' in text
    assert '<note category="translator">machine translation by acme/mtl-ui</note>' in text


def test_qt_ts_keeps_arg_markers_and_access_keys_and_marks_unfinished(tmp_path):
    translator = FakeTranslator(["de"], table={("de", "Deleted ⟨0⟩ of ⟨1⟩ files"): "⟨1⟩ von ⟨0⟩ gelöscht",
                                                ("de", "Save"): "Speichern"})
    report = translate_file(write(tmp_path, "app_de.ts", TS), translator, tmp_path / "out" / "app_de.ts")
    assert (report["filled"], report["kept"]) == (3, 1)
    assert translator.calls[0][0] == ["Deleted ⟨0⟩ of ⟨1⟩ files", "Save", "⟨0⟩ file(s)"]  # %1, %n, & never reach it
    text = (tmp_path / "out" / "app_de.ts").read_text()
    assert text.startswith(TS[:TS.index("<message>")])  # language="de_DE" and the rest of the head kept
    assert TS[TS.index("<message>"):TS.index("</message>") + 10] in text
    assert '<translation type="unfinished">%2 von %1 gelöscht</translation>' in text
    assert '<translation type="unfinished">&amp;Speichern</translation>' in text
    assert "<numerusform>%n FILE(S)</numerusform>\n            <numerusform>%n FILE(S)</numerusform>" in text
    assert text.count("<translatorcomment>machine translation by acme/mtl-ui</translatorcomment>") == 3


def test_po_gets_fuzzy_plural_forms_and_tilde_access_keys(tmp_path):
    translator = FakeTranslator(["de"], table={("de", "Save"): "Speichern"})
    report = translate_file(write(tmp_path, "de.po", PO), translator, tmp_path / "de.new.po")
    assert (report["filled"], report["kept"]) == (2, 1)
    text = (tmp_path / "de.new.po").read_text()
    assert '#, c-format\nmsgid "Open %s"\nmsgstr "Öffne %s"\n' in text
    assert '#, c-format, fuzzy\nmsgid "%d file"\nmsgid_plural "%d files"\nmsgstr[0] "%d FILE"\nmsgstr[1] "%d FILES"' \
           in text
    assert '# machine translation by acme/mtl-ui\n#, fuzzy\nmsgid "~Save"\nmsgstr "~Speichern"' in text


def test_android_adds_the_missing_strings_to_the_translation_and_keeps_what_it_has(tmp_path):
    template = write(tmp_path, "values/strings.xml", ANDROID)
    target = write(tmp_path, "values-de/strings.xml", ANDROID_DE)
    report = translate_file(target, FakeTranslator(["de"]), tmp_path / "out/strings.xml", "de", template=template)
    assert {k: report[k] for k in ("units", "kept", "filled", "mismatch")} == {
        "units": 5, "kept": 1, "filled": 4, "mismatch": 0}  # app_name is translatable="false"
    text = (tmp_path / "out/strings.xml").read_text()
    assert text.startswith(ANDROID_DE[:ANDROID_DE.index("</resources>")])  # comment, own and extra keys as they were
    assert units(tmp_path / "out/strings.xml", "android") | {} == {
        "open": ("Datei öffnen", "Datei öffnen"), "old": ("Alt", "Alt"),
        "greeting": ("HELLO, %1$s! YOU HAVE %2$d NEW NOTES.",) * 2,
        "count": ('DELETED <xliff:g id="count">%d</xliff:g> NOTES',) * 2,
        "bold": ("TAP <b>HERE</b> TO START",) * 2, "notes": ("%d NOTE", "%d NOTE")}
    assert '<item quantity="one">%d NOTE</item>\n        <item quantity="other">%d NOTES</item>' in text
    assert text.count("<!-- machine translation by acme/mtl-ui -->") == 4


def test_android_new_language_gets_its_plural_forms(tmp_path):
    template = write(tmp_path, "values/strings.xml", ANDROID)
    translate_file(tmp_path / "values-ru/strings.xml", FakeTranslator(["ru"]), tmp_path / "ru.xml", "ru",
                   template=template)
    text = (tmp_path / "ru.xml").read_text()
    assert [q for q in ("one", "few", "many", "other") if f'<item quantity="{q}">' in text] == [
        "one", "few", "many", "other"]
    assert not (tmp_path / "values-ru").exists()


def test_android_markup_a_file_cannot_hold_is_a_mismatch_not_escaped_text(tmp_path):
    template = write(tmp_path, "values/strings.xml", ANDROID)
    target = write(tmp_path, "de.xml", '<?xml version="1.0" encoding="utf-8"?>\n<resources>\n</resources>\n')
    report = translate_file(target, FakeTranslator(["de"]), tmp_path / "out.xml", "de", template=template)
    assert report["mismatch"] == 1 and "count" not in units(tmp_path / "out.xml", "android")


def test_i18next_json_nests_new_keys_keeps_interpolation_and_plural_suffixes(tmp_path):
    template = write(tmp_path, "en.json", I18NEXT)
    target = write(tmp_path, "de.json", I18NEXT_DE)
    translator = FakeTranslator(["de"])
    report = translate_file(target, translator, tmp_path / "out.json", "de", template=template,
                            file_format="i18next")
    assert (report["filled"], report["kept"]) == (3, 1)
    assert "⟨0⟩" in translator.calls[0][0][0] and "{{" not in " ".join(translator.calls[0][0])
    assert (tmp_path / "out.json").read_text() == (
        '{\n    "menu": {\n        "open": "Datei öffnen",\n        "save": "SAVE"\n    },\n'
        '    "title": "WELCOME, {{name}}!",\n    "item_one": "{{count}} ITEM",\n    "item_other": "{{count}} ITEMS"\n}\n')


def test_java_properties_keep_message_format_arguments_and_comments(tmp_path):
    template = write(tmp_path, "Messages.properties", PROPERTIES)
    target = write(tmp_path, "Messages_de.properties", PROPERTIES_DE)
    translator = FakeTranslator(["de"], table={("de", "Hello ⟨0⟩, you have ⟨1⟩ messages"): "⟨1⟩ Nachrichten für ⟨0⟩"})
    translate_file(target, translator, tmp_path / "out.properties", "de", template=template)
    assert (tmp_path / "out.properties").read_bytes() == (  # ISO-8859-1, as java.util.Properties reads it
        PROPERTIES_DE + "# machine translation by acme/mtl-ui\ngreeting={1} Nachrichten für {0}\n"
        "# machine translation by acme/mtl-ui\nmenu.open=&OPEN\n").encode("latin-1")


def test_rails_yaml_new_language_gets_its_root_key(tmp_path):
    template = write(tmp_path, "en.yml", YAML)
    report = translate_file(tmp_path / "de.yml", FakeTranslator(["de"]), tmp_path / "out.yml", "de",
                            template=template)
    assert report["format"] == "ruby-yaml"
    assert (tmp_path / "out.yml").read_text() == "de:\n  hello: HELLO %{name}\n  menu:\n    open: OPEN FILE\n"


def test_a_lost_placeholder_leaves_the_unit_untranslated(tmp_path):
    translator = FakeTranslator(["de"], damage=lambda text: text.replace("⟨1⟩", ""))
    report = translate_file(write(tmp_path, "app_de.ts", TS), translator, tmp_path / "out.ts")
    assert report["mismatch"] == 1
    assert '<source>Deleted %1 of %2 files</source>\n        <translation type="unfinished"></translation>' in \
        (tmp_path / "out.ts").read_text()


def test_bad_input_is_named_with_what_to_do(tmp_path):
    fake = FakeTranslator(["de"])
    with pytest.raises(ValueError, match=r"app\.docx: translate-file does not read 'docx' files; it reads \.xlf.*"
                                         r"pass --format"):
        translate_file(write(tmp_path, "app.docx", "x"), fake, tmp_path / "o")
    with pytest.raises(ValueError, match=r"cannot read the file .*broken\.xlf as XLIFF 1\.2 \(.*\); fix the file"):
        translate_file(write(tmp_path, "broken.xlf", "<xliff><file>"), fake, tmp_path / "o.xlf")
    with pytest.raises(ValueError, match=r"strings\.xml is Android resources: .* pass it as --template"):
        translate_file(write(tmp_path, "strings.xml", ANDROID), fake, tmp_path / "o.xml", "de")
    with pytest.raises(ValueError, match=r"--out .*app\.ts is also the file .*app\.ts"):
        translate_file(write(tmp_path, "app.ts", TS), fake, tmp_path / "app.ts")
    with pytest.raises(ValueError, match=r"unknown target language\(s\) \['ja'\]"):
        translate_file(tmp_path / "app.ts", fake, tmp_path / "o.ts", "ja")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.docx", "app.ts", "broken.xlf", "strings.xml"]


def test_every_format_has_an_extension_or_a_name_and_a_review_rule():
    assert set(FORMATS) == {"xliff", "xliff2", "ts", "po", "android", "json", "i18next", "properties", "yaml",
                            "ruby-yaml"}
    assert all(f.store_class() for f in FORMATS.values())


def test_translate_file_command_with_a_real_model(tiny_model, tokenizer, tmp_path, capsys):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    template = write(tmp_path, "values/strings.xml", ANDROID)
    main(["translate-file", str(tmp_path / "values-de/strings.xml"), "--template", str(template), "--lang", "de",
          "--out", str(tmp_path / "de.xml"), "--model", str(tmp_path / "model"), "--max-new-tokens", "4"])
    out = capsys.readouterr().out
    assert "(android): units 5  kept 0  filled" in out and "an XML comment" in out
    assert set(units(tmp_path / "de.xml", "android")) <= {"open", "greeting", "count", "bold", "notes"}
    with pytest.raises(SystemExit) as exit_info:
        main(["translate-file", str(tmp_path / "x.xlf"), "--out", str(tmp_path / "y.xlf"), "--model", "missing"])
    assert str(exit_info.value.code) == f"mtl-translate translate-file: error: the file {tmp_path / 'x.xlf'} does not " \
                                        "exist or is not a file."


def test_memory_fills_exact_matches_before_the_model_xliff_marked_for_review_with_the_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the notes name the memory as given
    tm = catalog(Path("tm/de.po"), "de", (None, "Save %s as %s", "%s als %s speichern"), ("menu", "~Quit", "~Beenden"),
                 (None, "Click here & go", "Hier klicken"))
    translator = FakeTranslator(["de"])
    report = translate_file(write(tmp_path, "app.xlf", XLIFF), translator, tmp_path / "out.xlf", tm=[tm])
    assert {k: report[k] for k in ("units", "kept", "memory", "filled", "mismatch", "empty", "unsure")} == {
        "units": 4, "kept": 1, "memory": 1, "filled": 2, "mismatch": 0, "empty": 0, "unsure": 0}
    text = (tmp_path / "out.xlf").read_text()
    assert '''<target state="needs-review-translation">%s als %s speichern</target>
        <note from="translator">translation memory: tm/de.po</note>''' in text
    assert '<target state="needs-review-translation">~QUIT</target>' in text  # "menu" context: not this unit
    assert '<target state="needs-review-translation">CLICK <g id="1">HERE</g> &amp; GO</target>' in text  # markup
    [(texts, _)] = translator.calls
    assert texts == ["Click ⟨0⟩here⟨1⟩ ⟨2⟩ go", "Quit"]  # a plain "Click here & go" would lose the markup
    assert "memory 1  filled 2" in format_file_report(report) and "memory: units filled from translation memory" in \
        format_file_report(report)


def test_memory_fills_json_keys_and_plurals_with_as_many_forms_as_the_language_has(tmp_path):
    tm = catalog(tmp_path / "de.po", "de", (None, "Save", "Speichern"),
                 ("{{count}} item", "{{count}} items", ["{{count}} Eintrag", "{{count}} Einträge"]))
    template, target = write(tmp_path, "en.json", I18NEXT), write(tmp_path, "de.json", I18NEXT_DE)
    translator = FakeTranslator(["de"])
    report = translate_file(target, translator, tmp_path / "out.json", "de", template=template, file_format="i18next",
                            tm=[tm])
    assert (report["memory"], report["filled"], report["kept"]) == (2, 1, 1)
    assert (tmp_path / "out.json").read_text() == (
        '{\n    "menu": {\n        "open": "Datei öffnen",\n        "save": "Speichern"\n    },\n'
        '    "title": "WELCOME, {{name}}!",\n    "item_one": "{{count}} Eintrag",\n'
        '    "item_other": "{{count}} Einträge"\n}\n')
    [(texts, _)] = translator.calls
    assert texts == ["Welcome, ⟨0⟩!"]
    report = translate_file(target, FakeTranslator(["ru"]), tmp_path / "ru.json", "ru", template=template,
                            file_format="i18next", tm=[catalog(tmp_path / "ru.po", "ru", (
                                "{{count}} item", "{{count}} items", ["{{count}} a", "{{count}} b"]))])
    assert report["memory"] == 0  # two forms cannot fill Russian's four


def test_glossary_terms_stay_verbatim_or_take_their_translation_and_a_lost_term_is_not_written(
        scripted_model, masked_tokenizer, tmp_path):  # noqa: F811
    units = "".join(f'<trans-unit id="{i}"><source>{text}</source></trans-unit>'
                    for i, text in enumerate(("Open file in Firefox", "File not found", "Quit GNU sed")))
    xliff = XLIFF[:XLIFF.index("<body>") + 6] + units + XLIFF[XLIFF.index("</body>"):]
    report = translate_file(write(tmp_path, "app.xlf", xliff), Translator(scripted_model, masked_tokenizer),
                            tmp_path / "out.xlf", glossary=write(tmp_path, "terms.csv", GLOSSARY_CSV))
    assert sorted(scripted_model.seen) == sorted(OUTPUT)  # the encoder never saw a term
    assert {k: report[k] for k in ("filled", "mismatch", "glossary")} == {"filled": 2, "mismatch": 1, "glossary": 2}
    assert {u.source: u.target for u in read_store(tmp_path / "out.xlf", "xliff", "test").units} == {
        "Open file in Firefox": "Datei in Firefox öffnen", "File not found": "Datei nicht gefunden",
        "Quit GNU sed": None}  # German lost "GNU sed": left untranslated
    assert "glossary 2" in format_file_report(report)


def test_confidence_is_in_the_note_and_units_below_min_confidence_stay_untranslated(tmp_path):
    template = write(tmp_path, "Messages.properties", PROPERTIES)
    target = write(tmp_path, "Messages_de.properties", PROPERTIES_DE)
    translator = ScoredTranslator({"Hello ⟨0⟩, you have ⟨1⟩ messages": 0.3, "Open": 0.871})
    report = translate_file(target, translator, tmp_path / "all.properties", "de", template=template)
    assert (report["filled"], report["unsure"]) == (2, 0)
    assert "# machine translation by acme/mtl-ui, confidence 0.30\ngreeting=DE Hello {0}, you have {1} messages\n" \
           "# machine translation by acme/mtl-ui, confidence 0.87\n" in (tmp_path / "all.properties").read_text()
    report = translate_file(target, translator, tmp_path / "sure.properties", "de", template=template,
                            min_confidence=0.5)
    assert {k: report[k] for k in ("kept", "filled", "mismatch", "empty", "unsure")} == {
        "kept": 1, "filled": 1, "mismatch": 0, "empty": 0, "unsure": 1}
    assert (tmp_path / "sure.properties").read_text() == PROPERTIES_DE + \
        "# machine translation by acme/mtl-ui, confidence 0.87\nmenu.open=DE &Open\n"  # no greeting
    assert "unsure 1" in format_file_report(report) and "unsure: confidence below --min-confidence" in \
        format_file_report(report)
    with pytest.raises(ValueError, match=r"min_confidence must be a number from 0 to 1 .*got 87\."):
        translate_file(target, translator, tmp_path / "x.properties", "de", template=template, min_confidence=87)


def test_translate_file_memory_and_confidence_flags_end_to_end(tiny_model, tokenizer, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    catalog(Path("tm/de.po"), "de", (None, "~Quit", "~Beenden"))
    main(["translate-file", write(tmp_path, "app.xlf", XLIFF).name, "--out", "out.xlf", "--model", "model",
          "--tm", "tm/de.po", "--min-confidence", "1", "--max-new-tokens", "4"])
    out = capsys.readouterr().out
    counts = re.search(r"units 4  kept 1  memory 1  filled 0  mismatch (\d+)  empty (\d+)  unsure (\d+)\n", out)
    assert counts and sum(map(int, counts.groups())) == 2  # every confidence is below 1: no model draft written
    assert '<target state="needs-review-translation">~Beenden</target>\n        <note from="translator">translation ' \
           'memory: tm/de.po</note>' in (tmp_path / "out.xlf").read_text()
    assert (tmp_path / "out.xlf").read_text().count("state=") == 2  # the person's and the memory's


@pytest.mark.parametrize("option, value, error", [
    ("tm", "missing.po", "translation memory missing.po (--tm) does not exist or is not a file."),
    ("tm", "memory.txt", "translation memory memory.txt (--tm): not a .po, .mo or .tmx file."),
    ("tm", "broken.tmx", "broken.tmx:3: not a valid TMX file (Opening and ending tag mismatch"),
    ("tm", "memory.po", "translation memory memory.po: cannot tell its language; add a header line 'Language: de'"),
    ("glossary", "missing.csv", "glossary missing.csv does not exist or is not a file."),
    ("glossary", "terms.csv", "terms.csv:2: 3 cells under a header of 2 columns; quote a cell that holds a comma."),
])
def test_a_bad_memory_or_glossary_file_is_translate_pos_error_before_the_model_loads(tmp_path, monkeypatch, option,
                                                                                    value, error):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "memory.txt", "Save = Speichern\n")
    write(tmp_path, "terms.csv", "term,de\nfile,Datei,extra\n")
    write(tmp_path, "broken.tmx", '<tmx version="1.4">\n<body><tu>\n</body></tmx>\n')
    catalog(tmp_path / "memory.po", None, (None, "Save", "Speichern"))
    write(tmp_path, "demo.pot", 'msgid "Save"\nmsgstr ""\n')
    files = {"tm": [value]} if option == "tm" else {"glossary": value}
    with pytest.raises((ValueError, FileNotFoundError)) as po_error:
        translate_po("demo.pot", FakeTranslator(["de"]), ["de"], "po", **files)
    with pytest.raises((ValueError, FileNotFoundError)) as file_error:
        translate_file(write(tmp_path, "app.xlf", XLIFF), FakeTranslator(["de"]), "out.xlf", **files)
    assert str(file_error.value) == str(po_error.value) and str(po_error.value).startswith(error)
    with pytest.raises(SystemExit) as exit_info:  # a model that does not exist: the file is checked first
        main(["translate-file", "app.xlf", "--out", "out.xlf", "--model", "missing", f"--{option}", value])
    assert exit_info.value.code == f"mtl-translate translate-file: error: {po_error.value}"
    assert not (tmp_path / "out.xlf").exists() and not (tmp_path / "po").exists()


def test_memory_matches_a_po_units_msgctxt_and_its_plural(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    po = PO + '\nmsgctxt "menu"\nmsgid "Quit"\nmsgstr ""\n\nmsgctxt "toolbar"\nmsgid "Quit"\nmsgstr ""\n'
    catalog(Path("tm.po"), "de", ("menu", "Quit", "Beenden"), (None, "~Save", "~Sichern"),
            ("%d file", "%d files", ["%d Datei", "%d Dateien"]))
    report = translate_file(write(tmp_path, "de.po", po), FakeTranslator(["de"]), "out.po", tm=["tm.po"])
    assert (report["memory"], report["filled"]) == (3, 1)
    text = (tmp_path / "out.po").read_text()
    assert '# translation memory: tm.po\n#, fuzzy\nmsgctxt "menu"\nmsgid "Quit"\nmsgstr "Beenden"' in text
    assert '#, fuzzy\nmsgctxt "toolbar"\nmsgid "Quit"\nmsgstr "QUIT"' in text
    assert 'msgid_plural "%d files"\nmsgstr[0] "%d Datei"\nmsgstr[1] "%d Dateien"' in text
