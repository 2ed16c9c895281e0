"""Multi-target parallel corpus from gettext catalogs (software localisation strings).

Every ``<root>/<lang>/LC_MESSAGES/<domain>.mo|.po`` maps English msgids to one
language, so reading the same domain for several languages and joining on the
msgid yields one English sentence with many targets -- exactly the shape a
multi-target model trains on. Coverage is naturally sparse (not every catalog
exists in every language), so missing targets are ``null``.

The test split holds out whole catalogs (domains): test BLEU then measures
unseen software text rather than strings memorised from another catalog.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import polib

from ..placeholders import FORMAT_PLACEHOLDER

logger = logging.getLogger(__name__)

_WORD_WITH_UNDERSCORE = re.compile(r"(\S*)_([^\W\d_]\S*)")
_CJK_MNEMONIC = re.compile(r"\s*\(_[^\W\d_]\)")  # "開く(_O)"
_MNEMONIC = re.compile(r"_(?=[^\W\d_])")
CORPUS_FILES = ("train.jsonl", "validation.jsonl", "test.jsonl", "stats.json")
# stats.json's "version": 2 keeps whitespace inside strings as written; builds without it (1) collapsed it and are
# rebuilt, since tokenizers trained on them cannot learn `Fichier\u00a0: %s` or the columns of `--help` text.
CORPUS_VERSION = 2
HELDOUT_FILE = "heldout.jsonl"


def default_roots() -> list[Path]:
    """System locale dir plus the iso-codes catalogs pycountry ships (country/language names)."""
    import pycountry

    candidates = [Path("/usr/share/locale"), Path(pycountry.__file__).parent / "locales"]
    return [root for root in candidates if root.is_dir()]


def normalise_domain(name: str) -> str:
    """``iso_3166-1`` (Debian) and ``iso3166-1`` (pycountry) are one catalog: drop ``_``/``-``."""
    return re.sub(r"[-_]", "", name).lower()


def is_mnemonic_label(text: str) -> bool:
    """True when the single ``_`` in ``text`` is a GTK access-key marker, not part of an identifier.

    A marker starts a word (``_Open``, ``Save _As``) or sits inside a capitalised
    word (``C_ollate``, ``Fo_lder``); ``user_name``, ``MERGE_HEAD`` and ``__init__`` are identifiers.
    """
    match = _WORD_WITH_UNDERSCORE.search(text)
    if text.count("_") != 1 or match is None:
        return False
    before, after = match.groups()
    if not before or not before[-1].isalnum():
        return True
    word = before + after
    return word[0].isupper() and not any(c.isupper() for c in word[1:])


def strip_mnemonic(text: str) -> str:
    """Drop one access-key marker; translations put it anywhere (``Ö_ffnen``, ``開く(_O)``)."""
    return _MNEMONIC.sub("", _CJK_MNEMONIC.sub("", text), count=1)


def join_key(text: str) -> str:
    """Whitespace collapsed: catalogs that differ only in spacing or line breaks give one row (the text kept in the
    row is as written, the `majority` of its forms)."""
    return " ".join(text.split())


def vote(candidates: dict[str, list], text: str, domain: str) -> None:
    """One more catalog (`domain`) writes `text`; candidates[text] = [count, alphabetically first domain]."""
    tally = candidates.setdefault(text, [0, domain])
    tally[0] += 1
    tally[1] = min(tally[1], domain)


def majority(candidates: dict[str, list]) -> str:
    """The text most catalogs write (ties: the alphabetically first domain's, then the first in code-point order)."""
    return min(candidates, key=lambda t: (-candidates[t][0], candidates[t][1], t))


def _teaches_nothing(text: str) -> bool:
    """Placeholders, punctuation and digits only (``%s: %s``, ``{0}``, ``...``)."""
    return not any(c.isalpha() for c in FORMAT_PLACEHOLDER.sub("", text))


def _pairs(entry) -> list[tuple[str, str]]:
    """(msgid, translation) pairs of one entry.

    Plurals give two pairs: ``msgid`` with form 0 and ``msgid_plural`` with form 1,
    the first non-singular form (for languages with more forms, e.g. Russian
    "few", that is the best single match for an English plural).
    """
    if entry.msgid_plural:
        forms = entry.msgstr_plural
        return [(entry.msgid, forms.get(0, "")), (entry.msgid_plural, forms.get(1, ""))]
    return [(entry.msgid, entry.msgstr)]


def _read_catalog(path: Path):
    """Parse a catalog; a file polib cannot read is an error naming it, never silently skipped."""
    try:
        return (polib.pofile if path.suffix == ".po" else polib.mofile)(str(path))
    except Exception as err:  # polib raises OSError, ValueError, UnicodeDecodeError, ...
        raise ValueError(
            f"cannot read gettext catalog {path}: {err}; it is corrupt or truncated: fix, reinstall or remove it "
            "(or leave its root out of --roots)"
        ) from err


def _catalogs(root: Path, lang: str) -> list[tuple[str, Path]]:
    """(domain, path) for one language dir; symlinked aliases (iso_3166.mo) resolve to their target's name."""
    directory = root / lang / "LC_MESSAGES"
    files = sorted(directory.glob("*.mo")) + sorted(directory.glob("*.po")) if directory.is_dir() else []
    return [(normalise_domain(f.resolve().stem), f.resolve()) for f in files]


def _available_langs(roots: Sequence[Path]) -> list[str]:
    return sorted({d.parent.name for r in roots for d in r.glob("*/LC_MESSAGES") if any(d.glob("*.[mp]o"))})


def _pick_test_domains(strings_of: dict[str, set[str]], n_rows: int, fraction: float, seed: int) -> list[str]:
    """Seeded shuffle of domains, taken until the rows they alone cover reach ``fraction``.

    A domain larger than twice the target is skipped so one huge catalog never is the whole test set.
    """
    target = fraction * n_rows
    order = sorted(strings_of)
    random.Random(seed).shuffle(order)
    other_domains = Counter(s for strings in strings_of.values() for s in strings)
    chosen, test_rows = [], 0
    for domain in order:
        if test_rows >= target:
            break
        if len(strings_of[domain]) > 2 * target:
            continue
        chosen.append(domain)
        for string in strings_of[domain]:
            other_domains[string] -= 1
            test_rows += other_domains[string] == 0
    if not chosen:
        logger.warning("no domain fits test_fraction=%s of %d rows: the test split is empty", fraction, n_rows)
    return sorted(chosen)


def build_gettext_corpus(
    langs: Sequence[str],
    out_dir: str | os.PathLike,
    roots: Sequence[str | os.PathLike] | None = None,
    source_lang: str = "en",
    test_domains: Sequence[str] | None = None,
    test_fraction: float = 0.1,
    validation_fraction: float = 0.05,
    max_source_words: int | None = None,
    seed: int = 0,
    heldout_domains: Sequence[str] = (),
) -> dict:
    """Write ``train/validation/test.jsonl`` and ``stats.json`` to ``out_dir`` (replacing a previous corpus there,
    all at once); return the stats.

    One row per distinct English string (mnemonic stripped; compared with whitespace collapsed, `join_key`, and kept
    as written, `written_form`: no-break spaces, line breaks and aligned columns stay; only the ends are stripped):
    ``{"translation": {source_lang: ..., lang: str | None, ...}, "domain": d}`` where
    ``d`` is the alphabetically first domain the string occurs in. When catalogs
    disagree, the most frequent translation wins (ties: alphabetically first domain).
    A string is in test only if every domain it occurs in is a test domain.
    ``stats["domains"]`` counts the distinct strings each domain contributes.

    ``heldout_domains`` are kept out of every split: each string that occurs in one of them (whatever other
    domains have it too) goes to ``heldout.jsonl`` only, so that scores on it measure catalogs training never saw;
    their strings are kept at every length (``max_source_words`` limits what is trained and tuned on).
    """
    langs = list(dict.fromkeys(langs))
    if source_lang in langs:
        raise ValueError(f"source language {source_lang!r} cannot also be a target language")
    out = Path(os.path.abspath(out_dir))  # "." has no name to put a sibling next to
    check_replaceable(out)
    roots = [Path(r) for r in (default_roots() if roots is None else roots)]
    root_names = ", ".join(map(str, roots)) or "(none)"
    # votes[english][lang][translation] = [count, first domain]
    votes: dict[str, dict[str, dict[str, list]]] = defaultdict(lambda: defaultdict(dict))
    strings_of: dict[str, set[str]] = defaultdict(set)  # domain -> join keys
    written: dict[str, dict[str, list]] = defaultdict(dict)  # join key -> English strings as written -> tally

    heldout_set = {normalise_domain(d) for d in heldout_domains}
    for lang in langs:
        catalogs = sorted({c for root in roots for c in _catalogs(root, lang)})
        if not catalogs:
            raise ValueError(
                f"no gettext catalogs for language {lang!r} under {root_names}; "
                f"available: {', '.join(_available_langs(roots)) or 'none'} (use --roots to add locale dirs)"
            )
        for domain, path in catalogs:
            for entry in _read_catalog(path):
                if entry.obsolete or "fuzzy" in entry.flags:
                    continue
                for msgid, msgstr in _pairs(entry):
                    text, target = msgid.strip(), msgstr.strip()
                    if is_mnemonic_label(text):
                        text, target = strip_mnemonic(text), strip_mnemonic(target)
                    source = join_key(text)
                    if not source or not target or _teaches_nothing(source):
                        continue
                    too_long = max_source_words is not None and len(source.split()) > max_source_words
                    if too_long and domain not in heldout_set:  # held-out catalogs are scored at every length
                        continue
                    vote(votes[source][lang], target, domain)
                    vote(written[source], text, domain)
                    strings_of[domain].add(source)

    if not votes:
        raise ValueError(
            f"no usable translations for {langs} under {root_names} "
            f"(max_source_words={max_source_words}); check the languages and --roots"
        )

    unknown = sorted(heldout_set - strings_of.keys())
    if unknown:
        raise ValueError(f"unknown held-out domain(s) {unknown} for {langs}; available: {', '.join(sorted(strings_of))}")
    domains_of: dict[str, set[str]] = defaultdict(set)
    for domain, strings in strings_of.items():
        for string in strings:
            domains_of[string].add(domain)
    heldout = sorted(s for s in votes if domains_of[s] & heldout_set)
    kept = {s for s in votes if not domains_of[s] & heldout_set}
    kept_strings_of = {d: strings & kept for d, strings in strings_of.items() if d not in heldout_set}
    if test_domains is None:
        test_set = set(_pick_test_domains(kept_strings_of, len(kept), test_fraction, seed))
    else:
        test_set = {normalise_domain(d) for d in test_domains}
        unknown = sorted(test_set - kept_strings_of.keys())
        if unknown:
            raise ValueError(
                f"unknown test domain(s) {unknown} for {langs}; available: {', '.join(sorted(kept_strings_of))}"
            )

    test = sorted(s for s in kept if domains_of[s] <= test_set)
    rest = sorted(s for s in kept if not domains_of[s] <= test_set)
    validation = set(random.Random(seed).sample(rest, round(validation_fraction * len(rest))))
    splits = {
        "train": [s for s in rest if s not in validation],
        "validation": [s for s in rest if s in validation],
        "test": test,
    }
    if heldout_set:
        splits["heldout"] = heldout

    def row(source: str) -> dict:
        chosen = {
            lang: majority(cands) if (cands := votes[source].get(lang)) else None
            for lang in langs
        }
        home = domains_of[source] & heldout_set or domains_of[source]
        return {"translation": {source_lang: majority(written[source]), **chosen}, "domain": min(home)}

    with replacing(out) as partial:
        coverage = {}
        for split, strings in splits.items():
            rows = [row(s) for s in strings]
            coverage[split] = {lang: sum(r["translation"][lang] is not None for r in rows) for lang in langs}
            with open(partial / f"{split}.jsonl", "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        stats = {
            "version": CORPUS_VERSION,
            "source_lang": source_lang,
            "langs": langs,
            "roots": [str(r) for r in roots],
            "test_domains": sorted(test_set),
            "heldout_domains": sorted(heldout_set),
            "rows": {split: len(strings) for split, strings in splits.items()},
            "coverage": coverage,
            "domains": {d: len(strings_of[d]) for d in sorted(strings_of)},
        }
        (partial / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return stats


def corpus_is_complete(path: str | os.PathLike, heldout_domains: Sequence[str] = ()) -> bool:
    """Every file `build_gettext_corpus` writes is there (`stats.json` comes last), the corpus holds out the
    domains asked for and is built as this version builds it (`CORPUS_VERSION`): safe to use, not to rebuild."""
    if not all(Path(path, name).is_file() for name in CORPUS_FILES):
        return False
    stats = json.loads(Path(path, "stats.json").read_text(encoding="utf-8"))
    if stats.get("version", 1) != CORPUS_VERSION:
        logger.warning(f"{path} was built by an older mtl-translate (corpus version {stats.get('version', 1)}, "
                       f"whitespace inside strings collapsed); it is rebuilt with the text as written (version "
                       f"{CORPUS_VERSION}).")
        return False
    return stats.get("heldout_domains", []) == sorted({normalise_domain(d) for d in heldout_domains})


def check_replaceable(out: Path) -> None:
    """Building replaces `out`: refuse when it holds anything but corpus files (a wrong --out must not delete data)."""
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in (*CORPUS_FILES, HELDOUT_FILE))
        if others:
            raise ValueError(
                f"{out} exists and holds files that are not corpus files ({', '.join(others[:5])}); "
                "building would replace the folder: pass a new or empty folder"
            )
    elif out.exists():
        raise ValueError(f"{out} exists and is not a folder; pass a new folder for the corpus")


@contextmanager
def replacing(out: Path) -> Iterator[Path]:
    """A hidden sibling folder to write a corpus into, renamed to `out` on success: an interrupted build never looks
    like a corpus, and a failed one leaves the previous corpus as it was."""
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        shutil.rmtree(out, ignore_errors=True)
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
