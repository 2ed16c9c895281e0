"""A machine-translated catalog under the translators' own tool: translate-toolkit's pofilter checks, counted only
where the human translation of the same entry passes, and `msgfmt -c` as a reviewer who accepts every entry gets it.

pofilter flags plenty in good human catalogs (`--help` lines re-wrapped, author names kept, quotes changed), so a
failure says something about the model only where the human translation of the same msgid passes that check: a
"machine-only" failure. The checks are those `pofilter --gnome` runs for the catalog's language, each in
translate-toolkit's own category (critical, functional, cosmetic); the extraction ones (`isfuzzy`, `untranslated`,
...) sort a workflow, not a translation, and are left out.
"""

import os
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import polib
from translate.filters import checks
from translate.filters.decorators import Category
from translate.storage import factory

CATEGORIES = {value: name.lower() for name, value in vars(Category).items() if isinstance(value, int)}


@dataclass
class CatalogQA:
    """Machine-only failures of one machine-translated catalog against its human reference."""

    path: str
    lang: str
    filled: int = 0  # entries with a translation in every form
    compared: int = 0  # of them, those the reference translates too: the only ones counted below
    failed: dict[str, set[str]] = field(default_factory=dict)  # msgid -> checks the machine fails, the human passes
    categories: dict[str, str] = field(default_factory=dict)  # check -> translate-toolkit's category
    msgfmt: str = ""  # what `msgfmt -c --check-format` says of the catalog with its fuzzy flags removed; "" = valid

    @property
    def failures(self) -> Counter:
        """check -> entries with a machine-only failure of it."""
        return Counter(check for checks_ in self.failed.values() for check in checks_)

    def entries(self, category: str | None = None, names: Sequence[str] = ()) -> int:
        """Entries with a machine-only failure of a check of `category`, or of one of the checks `names`."""
        return sum(any(self.categories[c] == category or c in names for c in found) for found in self.failed.values())


def pofilter_checker(lang: str) -> checks.TeeChecker:
    """The checker `pofilter --gnome --language=<lang>` runs: GNOME's checks, the unit checks (plural count) and
    the language's own, if translate-toolkit has one."""
    return checks.TeeChecker(checkerconfig=checks.CheckerConfig(targetlanguage=lang), languagecode=lang,
                             checkerclasses=[checks.GnomeChecker, checks.StandardUnitChecker])


def failed_checks(checker: checks.TeeChecker, unit) -> dict[str, str]:
    """{check: category} of the checks `unit` fails, extraction checks left out."""
    failures = checker.run_filters(unit, categorised=True)
    return {name: CATEGORIES[info["category"]] for name, info in failures.items()
            if info["category"] != Category.EXTRACTION}


def machine_only_failures(po_path: str | os.PathLike, reference: str | os.PathLike, lang: str) -> CatalogQA:
    """pofilter on every translated entry of `po_path` and on `reference`'s translation of the same (msgctxt, msgid)
    (a .mo or .po, e.g. the installed catalog of that domain and language); counts what only the machine fails."""
    for path, what in ((po_path, "catalog"), (reference, "reference catalog")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what} {path} does not exist or is not a file.")
    human = {(unit.getcontext(), str(unit.source)): unit for unit in factory.getobject(str(reference)).units
             if unit.source and translated(unit)}
    checker = pofilter_checker(lang)
    qa = CatalogQA(str(po_path), lang, msgfmt=msgfmt_without_fuzzy(po_path))
    for unit in factory.getobject(str(po_path)).units:
        if unit.isheader() or unit.isobsolete() or not translated(unit):
            continue
        qa.filled += 1
        reference_unit = human.get((unit.getcontext(), str(unit.source)))
        if reference_unit is None:
            continue
        qa.compared += 1
        machine, person = failed_checks(checker, unit), failed_checks(checker, reference_unit)
        only = {name: category for name, category in machine.items() if name not in person}
        if only:
            qa.failed[unit.getid()] = set(only)
            qa.categories.update(only)
    return qa


def translated(unit) -> bool:
    """A translation in every form (a plural entry with an empty msgstr[n] counts as untranslated)."""
    return all(unit.target.strings) if unit.hasplural() else bool(unit.target)


def msgfmt_without_fuzzy(po_path: str | os.PathLike) -> str:
    """`msgfmt -c --check-format` on a copy of the catalog without its fuzzy flags (msgfmt skips fuzzy entries, so
    the catalog as written says nothing of the machine's entries): "" when it is valid, else msgfmt's messages."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        raise FileNotFoundError("msgfmt is not installed: install GNU gettext (apt-get install gettext).")
    po = polib.pofile(str(po_path))
    for entry in po:
        if "fuzzy" in entry.flags:
            entry.flags.remove("fuzzy")
    with tempfile.TemporaryDirectory() as folder:
        accepted = os.path.join(folder, os.path.basename(po_path))
        po.save(accepted)
        run = subprocess.run([msgfmt, "-c", "--check-format", "-o", os.devnull, accepted],
                             capture_output=True, text=True)
    return "" if run.returncode == 0 else run.stderr.strip().replace(accepted, str(po_path))
