"""Metavariables of `--help` option tables (`--output=FILE`), translated as the catalogs translate them.

Translators keep option names but translate their values' names (`--output=DATEI`, `--output=FICHIER`), and
translate-toolkit's pofilter `options` check asks for exactly that. A model cannot learn it from an option column it
never sees (columns.py copies the column), so the names are mined from the training pairs: wherever a source writes
`--opt=NAME` and its human translation writes the same option with another value, that value is a vote for NAME's
translation in that language; the most common one wins (at least `MIN_VOTES`). They are saved with the model
(`generation_config.metavariables`) and applied to option columns and descriptions alike, keeping the description
column where it was.
"""

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

MIN_VOTES = 1  # one catalog translating a name is a translator's choice; the most common one wins
# `--opt=NAME` or `--opt[=NAME]`; the option may be masked in training rows (placeholders.py: `⟨3⟩=FILE`).
_VALUE = re.compile(r"(--[A-Za-z0-9][\w-]*|⟨\d+⟩)\[?=([A-Z][A-Z0-9_]*)\b")
_TRANSLATED = r"{option}\[?=([^\s\[\](){{}}<>=,.;:]+)"  # up to a bracket or `=`: `ZIEL[` and `ALT=NEU` are no names


def mine(rows: Iterable[Mapping[str, str | None]], source_lang: str, langs: Iterable[str]) -> dict[str, dict[str, str]]:
    """{lang: {NAME: its translation}} from translation rows ({lang: text or None})."""
    votes = defaultdict(lambda: defaultdict(Counter))  # lang -> NAME -> Counter(translation)
    langs = list(langs)
    for row in rows:
        source = row.get(source_lang) or ""
        for option, name in _VALUE.findall(source):
            for lang in langs:
                target = row.get(lang)
                found = target and re.search(_TRANSLATED.format(option=re.escape(option)), target)
                if found:
                    votes[lang][name][found[1]] += 1
    mined = {}
    for lang in langs:
        names = {name: counter.most_common(1)[0] for name, counter in votes[lang].items()}
        mined[lang] = {name: value for name, (value, n) in sorted(names.items()) if n >= MIN_VOTES and value != name}
    return mined


def rename(text: str, names: Mapping[str, str]) -> str:
    """Every whole-word, case-sensitive NAME of `names` in `text` replaced by its translation, also numbered (`FILE1`
    -> `DATEI1`, as catalogs write it)."""
    if not names:
        return text
    pattern = r"(?<![\w-])(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")(\d*)(?![\w-])"
    return re.sub(pattern, lambda m: names[m[1]] + m[2], text)


def realign(column: str, names: Mapping[str, str]) -> str:
    """An option column (`  -o, --output=FILE      `, padding included) with its names translated, padded to the
    same width so that the description starts where it did (at least two blanks after a longer column)."""
    renamed = rename(column, names)
    if renamed == column or "\n" in column or not column.endswith("  "):
        return renamed
    head = renamed.rstrip(" ")
    return head + " " * max(2, len(column) - len(head))
