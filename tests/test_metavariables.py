"""Metavariables of option tables (`--output=FILE`) translated as the training catalogs translate them, with the
description column kept where it was."""

from mtl_translate.columns import in_columns
from mtl_translate.metavariables import mine, realign, rename

ROWS = [
    {"en": "  -o, --output=FILE   write to FILE", "de": "  -o, --output=DATEI  in DATEI schreiben",
     "fr": "  -o, --output=FICHIER  écrire dans FICHIER"},
    {"en": "⟨0⟩=FILE read FILE", "de": "⟨0⟩=DATEI DATEI lesen", "fr": None},  # a masked training row
    {"en": "--input=FILE", "de": "--input=FILE"},  # one catalog left it: outvoted
    {"en": "--width=NUM", "de": "--width=NUM", "fr": "--width=NOMBRE"},  # German keeps NUM: nothing to translate
    {"en": "--color[=WHEN]", "de": "--color[=WANN]"},
    {"en": "--pages=FIRST_PAGE[:LAST]", "de": "--pages=ERSTE_SEITE[:LETZTE]"},  # the name ends at a bracket
    {"en": "no option here", "de": "keine Option hier"},
]


def test_names_are_mined_from_the_pairs_most_common_first():
    assert mine(ROWS, "en", ["de", "fr"]) == {"de": {"FILE": "DATEI", "FIRST_PAGE": "ERSTE_SEITE", "WHEN": "WANN"},
                                             "fr": {"FILE": "FICHIER", "NUM": "NOMBRE"}}


def test_names_are_renamed_as_whole_words_and_the_column_keeps_its_width():
    names = {"FILE": "DATEI", "NUM": "ANZAHL"}
    assert rename("FILE, FILE1 or PROFILE; -FILE FILE", names) == "DATEI, DATEI1 or PROFILE; -FILE DATEI"
    assert realign("  -o, --output=FILE      ", names) == "  -o, --output=DATEI     "
    assert realign("  -B, --before-context=NUM  ", names) == "  -B, --before-context=ANZAHL  "  # 2 blanks at least
    assert realign("      --color[=WHEN],", names) == "      --color[=WHEN],"


def test_option_tables_get_the_languages_names_and_plain_texts_do_not():
    texts = ["  -o, --output=FILE      write to FILE", "Open FILE"]

    def translate(parts, rows):
        return {lang: [p.upper() for p in parts] for lang in rows}, None

    out, _ = in_columns(texts, ["de", "fr"], None, translate, {"de": {"FILE": "DATEI"}})
    assert out == {"de": ["  -o, --output=DATEI     WRITE TO DATEI", "OPEN FILE"],
                   "fr": ["  -o, --output=FILE      WRITE TO FILE", "OPEN FILE"]}
