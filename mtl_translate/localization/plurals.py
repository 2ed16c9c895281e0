"""Plural forms of a language, and which msgid each `msgstr[n]` is translated from."""

import gettext
import re

import polib

from ..placeholders import placeholder_signature

# Standard gettext Plural-Forms of the languages we ship (as in the GNU gettext manual and the languages' teams).
_EAST_SLAVIC = "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);"
PLURAL_FORMS = {
    **dict.fromkeys(["de", "en", "es", "it", "nl", "sv", "pt", "da", "nb", "fi", "el", "hu", "et", "ca", "eo"],
                    "nplurals=2; plural=(n != 1);"),
    **dict.fromkeys(["fr", "pt_BR"], "nplurals=2; plural=(n > 1);"),
    **dict.fromkeys(["ja", "zh", "ko", "vi", "th", "id"], "nplurals=1; plural=0;"),
    "ru": _EAST_SLAVIC, "uk": _EAST_SLAVIC, "be": _EAST_SLAVIC,
    "pl": "nplurals=3; plural=(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
    "cs": "nplurals=3; plural=(n==1) ? 0 : (n>=2 && n<=4) ? 1 : 2;",
    "sk": "nplurals=3; plural=(n==1) ? 0 : (n>=2 && n<=4) ? 1 : 2;",
}
_NPLURALS = re.compile(r"nplurals\s*=\s*(\d+)")
_PLURAL = re.compile(r"plural\s*=\s*([^;]+)")


def plural_forms(lang: str, header: str | None = None) -> str | None:
    """The Plural-Forms of `lang`: the catalog's own header first (translators set it), else the table."""
    if header and _NPLURALS.search(header) and (rule := _PLURAL.search(header)):
        try:
            gettext.c2py(rule[1])
            return header
        except ValueError:  # a broken expression: the table's, if it has one
            pass
    language, *region = re.split(r"[-_]", lang, maxsplit=1)  # pt-br, pt_BR -> pt_BR, then pt
    return PLURAL_FORMS.get("_".join([language.lower(), *(r.upper() for r in region)])) or PLURAL_FORMS.get(
        language.lower())


def plural_sources(entry: polib.POEntry, forms: str) -> list[str]:
    """The msgid each `msgstr[n]` is translated from. A small model cannot inflect for a number, so form 0 comes
    from `msgid` and every other form from `msgid_plural` (the best it can do: "1 Datei", "%d Dateien"). Where form 0
    also serves other numbers (Russian 21, 31, ...) and `msgid` lacks `msgid_plural`'s placeholders ("One file"),
    form 0 comes from `msgid_plural` too, because `msgfmt -c` requires its placeholders there."""
    count = nplurals(forms)
    rule = gettext.c2py(_PLURAL.search(forms)[1])
    form0_numbers = sum(rule(n) == 0 for n in range(1001))
    same = placeholder_signature(entry.msgid) == placeholder_signature(entry.msgid_plural)
    first = entry.msgid if same or form0_numbers < 5 else entry.msgid_plural  # gettext's test for "one number"
    return [first] + [entry.msgid_plural] * (count - 1)



def nplurals(forms: str) -> int:
    """The number of `msgstr[n]` of a Plural-Forms header."""
    return int(_NPLURALS.search(forms)[1])
