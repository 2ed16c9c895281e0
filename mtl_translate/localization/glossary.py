"""Glossary for `translate-po` and `translate-file`: terms that must come out verbatim (product names) or as a
required translation.

The model is not asked to respect a term: the Translator masks each one as it masks placeholders and puts back the
verbatim term or its required translation (`Translator.translate(terms=...)`), so the term itself cannot go wrong,
though the grammar around a substituted translation can (a German article does not agree with a noun the model never
saw). A translation that still lacks a term is left untranslated and counted as `mismatch`.

Matching: whole words (not `sed` in `used` or `sed_x`), case-sensitive, longest term first; a term in lower case
that has translations also matches its capitalised form at a sentence start, and its translations are then
capitalised (`file` -> `File` -> `Fichier`).

Files: CSV with a header row, one column per target language code (`de`, `pt_BR`, `fr-FR`) as multilingual term
bases such as Google's glossary CSV and Phrase's term bases lay it out, the term in a column named `term` (or
`source`, or `en`); optional `translate` (`no`: verbatim in every language) and `note`/`comment` columns (for
people, not read). An empty language cell keeps the term verbatim in that language. TBX through translate-toolkit:
each `termEntry`'s source-language term, the first non-deprecated term of each other `langSet`, and
`<descrip type="Translation needed">no</descrip>` for a term kept verbatim; deprecated entries are not used.
"""

import csv
import io
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from lxml import etree
from translate.misc.xml_helpers import getXMLlang
from translate.storage import tbx

from ..placeholders import term_pattern
from .locales import LOCALE_CODE, language_of, tier

_TERM_COLUMNS, _NOTE_COLUMNS = ("term", "source", "en"), ("note", "notes", "comment", "comments", "description")
_NO, _YES = ("no", "false", "0"), ("yes", "true", "1", "")


class Glossary:
    """{term: {locale code as the file writes it: required translation}} read from `path`; a language without a
    translation keeps the term verbatim."""

    def __init__(self, path: str | os.PathLike, translations: dict[str, dict[str, str]]):
        if not translations:
            raise ValueError(f"glossary {path} holds no term; add rows under its header.")
        self.path, self.translations = str(path), translations

    def terms(self, langs: Sequence[str]) -> dict[str, dict[str, str]]:
        """{term as it may occur: {lang: what it becomes}} for `langs`, for `Translator.translate(terms=...)`; the
        column of the language itself before a region or fallback of it (`fr` before `fr-FR`)."""
        out = {}
        for term, by_code in self.translations.items():
            out[term] = {}
            for lang in langs:
                ranked = sorted((rank, code) for code in by_code if (rank := tier(code, lang, True)) is not None)
                if ranked:
                    out[term][lang] = by_code[ranked[0][1]]
        for term, targets in list(out.items()):
            if targets and term[0].islower() and not term[0].isupper():
                out.setdefault(term[0].upper() + term[1:], {lang: t[0].upper() + t[1:] for lang, t in targets.items()})
        return out


def missing_terms(text: str, translation: str, lang: str, terms: Mapping[str, Mapping[str, str]]) -> list[str]:
    """What `translation` should hold for the terms of `text` (the required translation, else the term) but does
    not, as often as `text` has them."""
    if not terms:
        return []
    wanted = Counter(terms[found].get(lang, found) for found in term_pattern(terms).findall(text))
    return [target for target, count in wanted.items() if translation.count(target) < count]


def holds_terms(text: str, terms: Mapping[str, Mapping[str, str]]) -> bool:
    return bool(terms) and term_pattern(terms).search(text) is not None


def load_glossary(glossary: str | os.PathLike | Glossary | None) -> Glossary | None:
    """A glossary already read, or read now from its path (a command reads it before the model loads)."""
    return read_glossary(glossary) if glossary is not None and not isinstance(glossary, Glossary) else glossary


def read_glossary(path: str | os.PathLike) -> Glossary:
    """A .csv or .tbx glossary, or an error naming the file and line of what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"glossary {path} does not exist or is not a file.")
    if path.suffix.lower() == ".csv":
        return Glossary(path, read_csv(path))
    if path.suffix.lower() == ".tbx":
        return Glossary(path, read_tbx(path))
    raise ValueError(f"glossary {path}: not a .csv or .tbx file.")


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not valid UTF-8; save the glossary as UTF-8.") from None
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    translations, lines = {}, {}
    try:
        header = [name.strip() for name in next(rows, [])]
        columns = csv_columns(path, header)
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{path}:{rows.line_num}"
            if len(row) != len(header):
                raise ValueError(f"{where}: {len(row)} cells under a header of {len(header)} columns; quote a cell "
                                 f"that holds a comma.")
            cells = {columns[i]: cell.strip() for i, cell in enumerate(row) if columns[i]}
            term, keep = cells.pop("term"), cells.pop("translate", "").lower()
            if not term:
                raise ValueError(f"{where}: the term cell is empty.")
            if keep not in _NO + _YES:
                raise ValueError(f"{where}: translate is {keep!r}; write yes or no (or leave it empty: yes).")
            targets = {code: cell for code, cell in cells.items() if cell}
            if keep in _NO and targets:
                raise ValueError(f"{where}: {term!r} is marked translate=no but has a translation for "
                                 f"{', '.join(targets)}; empty those cells or drop the mark.")
            if term in lines:
                raise ValueError(f"{where}: {term!r} is already on line {lines[term]}; keep one row per term.")
            translations[term], lines[term] = targets, rows.line_num
    except csv.Error as err:
        raise ValueError(f"{path}:{rows.line_num}: not valid CSV ({err}).") from None
    return translations


def csv_columns(path: Path, header: list[str]) -> list[str | None]:
    """Each column's role: `term`, `translate`, a locale code, or None (a note); an unknown name is an error."""
    names = [name.lower() for name in header]
    term = next((name for name in _TERM_COLUMNS if name in names), None)
    if term is None:
        raise ValueError(f"{path}:1: the header names no term column; the first line must be like "
                         f"`term,de,fr` (a `term` column, then one column per language code).")
    columns = []
    for name, lowered in zip(header, names):
        if lowered == term or lowered == "translate":
            columns.append("term" if lowered == term else "translate")
        elif lowered in _NOTE_COLUMNS:
            columns.append(None)
        elif LOCALE_CODE.fullmatch(name):
            columns.append(name)
        else:
            raise ValueError(f"{path}:1: column {name!r} is neither term, translate, note nor a language code "
                             f"(de, pt_BR, fr-FR).")
    duplicates = [name for name, count in Counter(filter(None, columns)).items() if count > 1]
    if duplicates:
        raise ValueError(f"{path}:1: column {duplicates[0]!r} appears twice.")
    return columns


def read_tbx(path: Path) -> dict[str, dict[str, str]]:
    try:
        with open(path, "rb") as f:
            store = tbx.tbxfile(f)
    except etree.XMLSyntaxError as err:
        raise ValueError(f"{path}:{err.lineno}: not valid TBX ({err.msg}); check it with `xmllint --noout {path}`.") \
            from None
    translations, lines = {}, {}
    source_lang = store.sourcelanguage or getXMLlang(store.document.getroot()) or "en"  # <martif xml:lang="en">
    for unit in store.units:
        where = f"{path}:{unit.xmlelement.sourceline}"
        source = unit.get_source_dom()  # translate-toolkit falls back to the first langSet: another language
        in_source = source is not None and language_of(getXMLlang(source) or "") == language_of(source_lang)
        sources = [t.text.strip() for t in unit.get_source_terms() if not t.deprecated and t.text.strip()]
        if not in_source or not sources:
            raise ValueError(f"{where}: the term entry has no term in the source language {source_lang!r} "
                             f"(a <langSet xml:lang=\"{source_lang}\"> with a <term>).")
        if unit.isobsolete():
            continue
        targets = {}
        for node in unit.getlanguageNodes() if unit.istranslatable() else ():
            if node is not source:
                found = [t.text.strip() for t in unit.get_target_terms(getXMLlang(node)) if not t.deprecated]
                if any(found):
                    targets[getXMLlang(node)] = next(filter(None, found))
        for term in sources:
            if term in lines:
                raise ValueError(f"{where}: {term!r} is already on line {lines[term]}; keep one entry per term.")
            translations[term], lines[term] = targets, unit.xmlelement.sourceline
    return translations

