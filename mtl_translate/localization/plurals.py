"""Plural forms of a language, and which msgid each `msgstr[n]` is translated from.

The forms come from translate-toolkit's table of gettext's conventional Plural-Forms (what the installed catalogs,
Pootle and Poedit use, and what `pofilter`'s nplurals check expects: French and Spanish 2, Russian 3, not CLDR's
3 and 4; babel's own table follows CLDR there since 2.17), and for a language outside that table from babel: its
table, else the CLDR rule itself when it is written in `n` alone (gettext cannot evaluate CLDR's other operands).
"""

import gettext
import re

import polib
from babel import Locale, UnknownLocaleError
from babel.messages.plurals import PLURALS, get_plural
from babel.plural import to_gettext
from translate.lang.data import languages as GETTEXT_PLURALS  # code -> (name, nplurals, plural)

from ..placeholders import placeholder_signature

_NPLURALS = re.compile(r"nplurals\s*=\s*(\d+)")
_PLURAL = re.compile(r"plural\s*=\s*([^;]+)")


def plural_forms(lang: str, header: str | None = None) -> str | None:
    """The Plural-Forms of `lang`: the catalog's own header first (translators set it), else gettext's conventional
    ones, else babel's (CLDR's); None for a language neither knows (and for the template's `nplurals=INTEGER`)."""
    if header and valid_forms(header):
        return header
    known = GETTEXT_PLURALS.get(lang.replace("-", "_")) or GETTEXT_PLURALS.get(re.split(r"[-_@]", lang)[0])
    if known:
        return f"nplurals={known[1]}; plural={known[2]};"
    try:
        locale = Locale.parse(lang.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return None
    if str(locale) in PLURALS or locale.language in PLURALS:
        return get_plural(locale).plural_forms
    forms = to_gettext(locale.plural_form)
    return forms if valid_forms(forms) else None


def valid_forms(forms: str) -> bool:
    """A Plural-Forms value with a number of forms and an expression in `n` that gettext can evaluate."""
    rule = _PLURAL.search(forms)
    try:
        return bool(_NPLURALS.search(forms) and rule and gettext.c2py(rule[1]))
    except (ValueError, SyntaxError):
        return False


def plural_sources(entry: polib.POEntry, forms: str) -> list[str]:
    """The msgid each `msgstr[n]` is translated from. A small model cannot inflect for a number, so the form the
    rule picks for n = 1 (form 1 in Arabic, whose form 0 is for n = 0) comes from `msgid` and every other form from
    `msgid_plural` (the best it can do: "1 Datei", "%d Dateien"). Where that form also serves other numbers
    (Russian 21, 31, ...) and `msgid` lacks `msgid_plural`'s placeholders ("One file"), it comes from
    `msgid_plural` too, because `msgfmt -c` requires its placeholders there."""
    rule = gettext.c2py(_PLURAL.search(forms)[1])
    one = rule(1)
    one_numbers = sum(rule(n) == one for n in range(1001))
    same = placeholder_signature(entry.msgid) == placeholder_signature(entry.msgid_plural)
    singular = entry.msgid if same or one_numbers < 5 else entry.msgid_plural  # gettext's test for "one number"
    return [singular if form == one else entry.msgid_plural for form in range(nplurals(forms))]


def nplurals(forms: str) -> int:
    """The number of `msgstr[n]` of a Plural-Forms header."""
    return int(_NPLURALS.search(forms)[1])
