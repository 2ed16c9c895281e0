"""Translation memory for `translate-po` and `translate-file`: what people already translated for the same msgid,
reused before the model.

A human translation of the very same string (same msgctxt, msgid and msgid_plural) in another catalog is a better
draft than any model output, and costs nothing. It is still a draft from another program, so it is marked fuzzy like
a machine translation, with a comment naming where it came from. When sources disagree the most common translation
wins (a tie: the first source read, --tm files in the order given, then installed catalogs by path).

Installed catalogs (`--tm-installed`) are read as the corpus builder finds them (`data/gettext.py`), but never the
template's own domain: its installed catalog holds the answer, which would make any measurement on it meaningless and
would copy an older release's translations. Files named with `--tm` are used as given, the template's domain too.
`translate-file` has no domain (an XLIFF or JSON file names no gettext package), so it reads every installed one.
"""

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import polib
from lxml import etree
from translate.misc.xml_helpers import getXMLlang
from translate.storage import tmx

from ..data.gettext import _catalogs, _read_catalog, default_roots, normalise_domain
from ..placeholders import is_date_format, placeholder_signature
from .locales import LOCALE_CODE, directories, tier
from .po import read_catalog

logger = logging.getLogger(__name__)

Key = tuple[str | None, str, str]  # (msgctxt, msgid, msgid_plural or "")


class TranslationMemory:
    """{lang: {key: [(tier, msgstrs, source path)]}}, kept only for the keys a template asks for."""

    def __init__(self, wanted: set[Key], langs: Sequence[str]):
        self.wanted, self.langs = wanted, list(langs)
        self.candidates: dict[str, dict[Key, list]] = {lang: defaultdict(list) for lang in langs}

    def add(self, code: str, key: Key, msgstrs: tuple[str, ...], source: str, regional: bool) -> bool:
        """Record one translation in locale `code` for every target language it serves; whether it served one."""
        served = False
        for lang in self.langs:
            rank = tier(code, lang, regional)
            if rank is not None:
                served = True
                if key in self.wanted and all(msgstrs):
                    self.candidates[lang][key].append((rank, msgstrs, source))
        return served

    def add_catalog(self, catalog: polib._BaseFile, code: str, source: str, regional: bool) -> bool:
        """The translated entries of a .po/.mo catalog in locale `code` (fuzzy and obsolete ones are no one's word)."""
        served = False
        for entry in catalog:
            if entry.msgid and not entry.obsolete and "fuzzy" not in entry.flags:
                msgstrs = (tuple(entry.msgstr_plural[n] for n in sorted(entry.msgstr_plural)) if entry.msgid_plural
                           else (entry.msgstr,))
                served |= self.add(code, entry_key(entry), msgstrs, source, regional)
        return served or not len(catalog)

    def recall(self, entries: Iterable[polib.POEntry], lang: str) -> list[polib.POEntry]:
        """Fills every entry of `entries` the memory has a usable translation for (fuzzy, with a comment naming its
        source); returns the others, for the model."""
        left = []
        for entry in entries:
            choice = self.choose(entry_key(entry), lang, entry.flags,
                                 len(entry.msgstr_plural) if entry.msgid_plural else 1)
            if choice is None:
                left.append(entry)
                continue
            msgstrs, note = choice
            if entry.msgid_plural:
                entry.msgstr_plural = dict(enumerate(msgstrs))
            else:
                entry.msgstr = msgstrs[0]
            entry.flags.append("fuzzy")
            if len(note) > 76:  # polib wraps a longer line at spaces, then at hyphens: the path gets a line of its own
                note = note.replace(": ", ":\n", 1)
            entry.tcomment = "\n".join(filter(None, [entry.tcomment, note]))
        return left

    def choose(self, key: Key, lang: str, flags: Sequence[str], count: int) -> tuple[tuple[str, ...], str] | None:
        """The most common usable translation of the message `key` (with its gettext `flags`, wanting `count` forms)
        among the best-tier sources, and the note that names them (`translation memory (2 of 3 sources agree):
        <first source>`); None without one. Usable: as many forms as wanted, and a singular keeps its source's format
        placeholders (a broken catalog must not break ours)."""
        found = self.candidates[lang].get(key, [])
        date = is_date_format(key[1], flags)
        signature = placeholder_signature(key[1], date)
        usable = [(rank, msgstrs, source) for rank, msgstrs, source in found
                  if len(msgstrs) == count and (key[2] or placeholder_signature(msgstrs[0], date) == signature)]
        if not usable:
            return None
        best = min(rank for rank, _, _ in usable)
        votes: dict[tuple[str, ...], list[str]] = {}
        for rank, msgstrs, source in usable:
            if rank == best:
                votes.setdefault(msgstrs, []).append(source)
        msgstrs = max(votes, key=lambda m: len(votes[m]))  # max keeps the first of a tie
        total = sum(map(len, votes.values()))
        agree = f" ({len(votes[msgstrs])} of {total} sources agree)" if total > 1 else ""
        return msgstrs, f"translation memory{agree}: {votes[msgstrs][0]}"


def entry_key(entry: polib.POEntry) -> Key:
    """What the memory matches a gettext entry on."""
    return entry.msgctxt, entry.msgid, entry.msgid_plural or ""


def load_memory(wanted: set[Key], langs: Sequence[str], files: Sequence[str | os.PathLike] = (),
                installed: bool = False, roots: Sequence[str | os.PathLike] = (),
                own_domain: str | None = None) -> TranslationMemory:
    """The memory for the messages `wanted` in `langs`: `files` (.po, .mo, .tmx) as given, then with `installed` the
    catalogs under the system's locale roots (`data.gettext.default_roots`) and `roots`, without `own_domain` (the
    template's: `sed.pot` -> `sed`; None: every domain)."""
    memory = TranslationMemory(wanted, langs)
    for path in files:
        read_file(memory, Path(path))
    if installed:
        own = own_domain and normalise_domain(own_domain)
        folders = dict.fromkeys(folder for lang in langs for folder in directories(lang))
        paths = {}  # one vote per file, however many links name it
        for root in [*default_roots(), *map(Path, roots)]:
            if not root.is_dir():
                raise FileNotFoundError(f"locale root {root} (--tm-installed) does not exist or is not a folder.")
            for folder in folders:
                paths.update({path: folder for domain, path in _catalogs(root, folder) if domain != own})
        for path, folder in paths.items():
            memory.add_catalog(_read_catalog(path), folder, str(path), regional=False)
    return memory


def read_file(memory: TranslationMemory, path: Path) -> None:
    """One --tm file into `memory`, or an error naming it; a file in none of the target languages is a warning."""
    if not path.is_file():
        raise FileNotFoundError(f"translation memory {path} (--tm) does not exist or is not a file.")
    if path.suffix == ".tmx":
        served = read_tmx(memory, path)
    elif path.suffix in (".po", ".mo"):
        catalog = read_catalog(path, "translation memory") if path.suffix == ".po" else read_mo(path)
        served = memory.add_catalog(catalog, catalog_language(catalog, path), str(path), regional=True)
    else:
        raise ValueError(f"translation memory {path} (--tm): not a .po, .mo or .tmx file.")
    if not served:
        logger.warning(f"translation memory {path} holds none of the target languages {', '.join(memory.langs)}: "
                       f"not used")


def read_mo(path: Path) -> polib.MOFile:
    try:
        return polib.mofile(str(path))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read translation memory {path}: {err}; it must be a compiled gettext catalog "
                         f"(check it with `msgunfmt {path}`).") from None


def catalog_language(catalog: polib._BaseFile, path: Path) -> str:
    """A catalog's language: its `Language` header, else its place (`<lang>/LC_MESSAGES/x.mo`), else its name
    (`de.po`)."""
    if catalog.metadata.get("Language", "").strip():
        return catalog.metadata["Language"].strip()
    if path.parent.name == "LC_MESSAGES":
        return path.parent.parent.name
    if LOCALE_CODE.fullmatch(path.stem):
        return path.stem
    raise ValueError(f"translation memory {path}: cannot tell its language; add a header line 'Language: de' "
                     f"(its language code) to the catalog, or name it <lang>.po.")


def read_tmx(memory: TranslationMemory, path: Path) -> bool:
    """A TMX file (translate-toolkit): each unit's source-language segment is the msgid, every other segment a
    translation in its `xml:lang`; a `x-context` property is the msgctxt. TMX has no plural forms."""
    try:
        with open(path, "rb") as f:
            store = tmx.tmxfile(f)
    except etree.XMLSyntaxError as err:
        raise ValueError(f"{path}:{err.lineno}: not a valid TMX file ({err.msg}); check it with "
                         f"`xmllint --noout {path}`.") from None
    served = not store.units
    for unit in store.units:
        source = unit.get_source_dom()
        for node in unit.getlanguageNodes():
            if node is not source:
                served |= memory.add(getXMLlang(node) or "", (unit.getcontext() or None, unit.source, ""),
                                     (unit.getNodeText(node),), str(path), regional=True)
    return served
