"""Which locale's translations may serve a target language: shared by the translation memory and the glossary.

gettext falls back from a regional locale to its language at run time (`pt_BR` reads `pt` catalogs) but never the
other way, and a script modifier is another writing system (`sr@latin` is not `sr`). Files a user names are often
tagged by region (`fr-FR` in a TMX or TBX) and are meant for the language, so they may also serve it.
"""

import re

_LOCALE = re.compile(r"([^_@]+)(?:_[^@]*)?(@.+)?")
LOCALE_CODE = re.compile(r"[a-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})*(?:@\w+)?")  # de, pt_BR, fr-FR, sr@latin, zh_Hans


def normalise(code: str) -> str:
    """`fr-FR`, `fr_fr` -> `fr_fr`: one spelling to compare (BCP 47 dashes, any case)."""
    return code.replace("-", "_").lower()


def language_of(code: str) -> str:
    """The locale without its territory, its script modifier kept: `pt_BR` -> `pt`, `sr_RS@latin` -> `sr@latin`."""
    match = _LOCALE.fullmatch(normalise(code))
    return match[1] + (match[2] or "") if match else normalise(code)


def tier(code: str, lang: str, regional: bool) -> int | None:
    """How well translations in locale `code` serve target `lang`: 0 the same locale, 1 gettext's fallback (`pt`
    for `pt_BR`), or with `regional` a region of the language (`fr_FR` for `fr`); None for another language."""
    code, lang = normalise(code), normalise(lang)
    if code == lang:
        return 0
    if code == language_of(lang) or regional and language_of(code) == lang:
        return 1
    return None


def directories(lang: str) -> list[str]:
    """The folders under a locale root (`<root>/<dir>/LC_MESSAGES`) that hold `lang`'s installed catalogs, best
    first: its own and gettext's fallback (`pt_BR`, then `pt`); never a region of it (`de_CH` for `de`)."""
    return list(dict.fromkeys([lang.replace("-", "_"), language_of(lang.replace("-", "_"))]))
