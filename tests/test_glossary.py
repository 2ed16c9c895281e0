"""Glossary in `translate-po`: CSV and TBX terms masked like placeholders and restored verbatim (product names) or as
their required translation, whole words and case-sensitive; a translation that lost a term is not written; bad
files are errors naming file and line."""

import polib
import pytest
import torch

from mtl_translate import MTLTranslationModel, Translator
from mtl_translate.localization import format_report, translate_po
from mtl_translate.localization.glossary import read_glossary
from mtl_translate.placeholders import mask, term_pattern
from tests.conftest import tiny_config
from tests.test_localization import HEADER
from tests.test_placeholders import masked_tokenizer  # noqa: F401 (a fixture)

CSV = "term,de,fr,translate,note\nFirefox,,,no,the browser\nfile,Datei,fichier,,\nGNU sed,,,,\n"
TBX = '''<?xml version="1.0" encoding="UTF-8"?>
<martif type="TBX" xml:lang="en"><text><body>
<termEntry><descrip type="Translation needed">no</descrip>
  <langSet xml:lang="en"><tig><term>Firefox</term></tig></langSet></termEntry>
<termEntry><langSet xml:lang="en"><tig><term>file</term></tig></langSet>
  <langSet xml:lang="de"><tig><term>Datei</term></tig></langSet>
  <langSet xml:lang="fr-FR"><tig><term>fichier</term></tig></langSet></termEntry>
<termEntry><langSet xml:lang="en"><tig><term>GNU sed</term></tig></langSet></termEntry>
</body></text></martif>
'''
TEMPLATE = HEADER + '\nmsgid "Open file in Firefox"\nmsgstr ""\n\nmsgid "File not found"\nmsgstr ""\n\n' \
                    'msgid "Quit GNU sed"\nmsgstr ""\n'
# What the model writes for each masked source (as the encoder's uncased WordPiece decodes it), per language.
OUTPUT = {"open ⟨ 0 ⟩ in ⟨ 1 ⟩": {"de": "⟨0⟩ in ⟨1⟩ öffnen", "fr": "Ouvrir le ⟨0⟩ ⟨1⟩"},
          "⟨ 0 ⟩ not found": {"de": "⟨0⟩ nicht gefunden", "fr": "⟨0⟩ introuvable"},
          "quit ⟨ 0 ⟩": {"de": "Beenden", "fr": "Quitter ⟨0⟩"}}  # German loses the term


@pytest.fixture(params=["csv", "tbx"])
def glossary(request, tmp_path):
    path = tmp_path / f"terms.{request.param}"
    path.write_text(CSV if request.param == "csv" else TBX, encoding="utf-8")
    return path


@pytest.fixture
def scripted_model(masked_tokenizer, monkeypatch):  # noqa: F811
    """A tiny masking model whose generate writes `OUTPUT` for the sources it is given, and records them."""
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(masked_tokenizer, protect_placeholders=True))
    model.seen = []

    def generate(input_ids, attention_mask=None, langs=(), rows=None, **generation):
        sources = masked_tokenizer.source.batch_decode(input_ids, skip_special_tokens=True)
        model.seen += sources
        ids = {lang: [masked_tokenizer[lang].sp_model.encode(OUTPUT[s][lang]) + [3] for s in sources] for lang in langs}
        width = max(len(row) for rows_ in ids.values() for row in rows_)
        out = {lang: torch.tensor([row + [0] * (width - len(row)) for row in rows_]) for lang, rows_ in ids.items()}
        return (out, {lang: torch.zeros(len(t)) for lang, t in out.items()}) if generation.get("mean_logprobs") else out

    monkeypatch.setattr(model, "generate", generate)
    return model


def test_csv_and_tbx_give_the_same_terms_with_capitalised_forms(glossary):
    assert read_glossary(glossary).terms(["de", "fr", "es"]) == {
        "Firefox": {}, "GNU sed": {}, "file": {"de": "Datei", "fr": "fichier"},
        "File": {"de": "Datei", "fr": "Fichier"}}


def test_terms_are_masked_as_whole_words_case_sensitively_longest_first():
    pattern = term_pattern(["sed", "GNU sed", "Firefox"])
    assert mask("GNU sed used sed, not Sed or seds; firefox/Firefox --help", pattern) == (
        "⟨0⟩ used ⟨1⟩, not Sed or seds; firefox/⟨2⟩ ⟨3⟩", ["GNU sed", "sed", "Firefox", "--help"])


def test_terms_come_out_verbatim_or_translated_and_a_lost_term_is_not_written(glossary, scripted_model,
                                                                             masked_tokenizer, tmp_path):  # noqa: F811
    (tmp_path / "demo.pot").write_text(TEMPLATE, encoding="utf-8")
    report = translate_po(tmp_path / "demo.pot", Translator(scripted_model, masked_tokenizer), ["de", "fr"],
                          tmp_path / "po", glossary=glossary)
    assert sorted(scripted_model.seen) == sorted(OUTPUT)  # the encoder never saw a term
    de = {e.msgid: e.msgstr for e in polib.pofile(str(tmp_path / "po" / "de.po"))}
    fr = {e.msgid: e.msgstr for e in polib.pofile(str(tmp_path / "po" / "fr.po"))}
    assert de == {"Open file in Firefox": "Datei in Firefox öffnen", "File not found": "Datei nicht gefunden",
                  "Quit GNU sed": ""}
    assert fr == {"Open file in Firefox": "Ouvrir le fichier Firefox", "File not found": "Fichier introuvable",
                  "Quit GNU sed": "Quitter GNU sed"}
    assert report["de"] | {"path": None} == {"path": None, "entries": 3, "kept": 0, "filled": 2, "mismatch": 1,
                                             "empty": 0, "unsure": 0, "glossary": 2}
    assert report["fr"]["glossary"] == 3 and "glossary: model translations that hold a glossary term" in \
        format_report(report)


def test_a_model_trained_without_masking_cannot_keep_terms(scripted_model, masked_tokenizer):  # noqa: F811
    scripted_model.config.protect_placeholders = False
    with pytest.raises(ValueError, match=r"trained without placeholder masking \(protect_placeholders: false\)"):
        Translator(scripted_model, masked_tokenizer).translate(["Open file"], ["de"], terms={"file": {"de": "Datei"}})


@pytest.mark.parametrize("text, error", [
    ("term,de\nfile,Datei,extra\n", "terms.csv:2: 3 cells under a header of 2 columns; quote a cell that holds a comma."),
    ("term,de,transalte\n", "terms.csv:1: column 'transalte' is neither term, translate, note nor a language code "
                            "(de, pt_BR, fr-FR)."),
    ("name,de\n", "terms.csv:1: the header names no term column; the first line must be like `term,de,fr` (a `term` "
                  "column, then one column per language code)."),
    ("term,de,translate\n\nFirefox,Feuerfuchs,no\n", "terms.csv:3: 'Firefox' is marked translate=no but has a "
                                                     "translation for de; empty those cells or drop the mark."),
    ("term,translate\nFirefox,never\n", "terms.csv:2: translate is 'never'; write yes or no (or leave it empty: yes)."),
    ("term,de\nfile,Datei\nfile,Akte\n", "terms.csv:3: 'file' is already on line 2; keep one row per term."),
    ("term,de\n,Datei\n", "terms.csv:2: the term cell is empty."),
    ('term,de\n"file,Datei\n', "terms.csv:2: not valid CSV (unexpected end of data)."),
    ("term,de\n", "glossary terms.csv holds no term; add rows under its header."),
])
def test_a_malformed_csv_is_an_error_naming_file_and_line(tmp_path, monkeypatch, text, error):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "terms.csv").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        read_glossary("terms.csv")
    assert str(info.value) == error


def test_a_malformed_tbx_is_an_error_naming_file_and_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "terms.tbx").write_text(TBX.replace("</termEntry>\n<termEntry><langSet", "\n<termEntry><langSet", 1))
    with pytest.raises(ValueError, match=r"^terms\.tbx:\d+: not valid TBX \(Opening and ending tag mismatch"):
        read_glossary("terms.tbx")
    (tmp_path / "terms.tbx").write_text(TBX.replace('<langSet xml:lang="en"><tig><term>GNU sed</term></tig></langSet>',
                                                    '<langSet xml:lang="de"><tig><term>GNU sed</term></tig></langSet>'))
    with pytest.raises(ValueError) as info:
        read_glossary("terms.tbx")
    assert str(info.value) == ("terms.tbx:8: the term entry has no term in the source language 'en' (a <langSet "
                               "xml:lang=\"en\"> with a <term>).")
