"""pofilter QA of a machine-translated catalog: per check, only what the machine fails and the human translation of
the same entry passes, in translate-toolkit's categories; msgfmt -c on the catalog with its fuzzy flags removed."""

import shutil

import polib
import pytest

from mtl_translate.localization.installed import template_from_catalogs
from mtl_translate.localization.qa import machine_only_failures

HEADER = {"Content-Type": "text/plain; charset=UTF-8", "Plural-Forms": "nplurals=2; plural=(n != 1);"}
# msgid: (human translation, machine translation)
PAIRS = {
    "File %s not found": ("Datei %s nicht gefunden", "Datei nicht gefunden"),  # dropped %s
    "Done.\n": ("Fertig.\n", "Fertig."),  # lost \n
    "Invalid content of \\{\\}": ("Ungültiger Inhalt von \\{\\}", "Ungültiger Inhalt von {}"),  # lost escapes
    "  -a, --all  show all": ("  -a, --all  alle zeigen", "  -a, alle zeigen"),  # lost --all and the double space
    "Line 1\nLine 2": ("Zeile 1 Zeile 2", "Zeile 1 Zeile 2"),  # a newline lost by both: not the machine's alone
}


def catalog(path, translations, fuzzy):
    po = polib.POFile()
    po.metadata = HEADER
    for msgid, msgstr in translations.items():
        po.append(polib.POEntry(msgid=msgid, msgstr=msgstr, flags=(["c-format"] if "%" in msgid else []) + fuzzy))
    po.save(str(path))
    return path


def test_machine_only_failures_per_check_and_category(tmp_path):
    human = catalog(tmp_path / "human.po", {m: h for m, (h, _) in PAIRS.items()}, [])
    machine = catalog(tmp_path / "de.po", {**{m: t for m, (_, t) in PAIRS.items()}, "Not in the reference": "Nicht"},
                      ["fuzzy"])
    if shutil.which("msgfmt") is None:
        pytest.skip("msgfmt is not installed (Debian package gettext)")
    qa = machine_only_failures(machine, human, "de")
    assert (qa.filled, qa.compared) == (6, 5)
    assert qa.failed == {"File %s not found": {"printf", "variables"}, "Done.\n": {"newlines", "endwhitespace"},
                         "Invalid content of \\{\\}": {"escapes", "pythonbraceformat"},  # `{}` reads as a field
                         "  -a, --all  show all": {"options", "doublespacing"}}
    assert {check: qa.categories[check] for check in qa.failures} == {
        "printf": "critical", "variables": "critical", "newlines": "critical", "escapes": "critical",
        "pythonbraceformat": "critical", "options": "functional", "doublespacing": "cosmetic",
        "endwhitespace": "cosmetic"}  # translate-toolkit's categories, not ours
    assert set(qa.failures.values()) == {1}
    assert (qa.entries("critical"), qa.entries("functional"), qa.entries("cosmetic")) == (3, 1, 2)
    assert qa.entries(names=["options", "doublespacing", "newlines"]) == 2
    # every entry is fuzzy, so msgfmt alone would pass the file; without the flags the dropped %s is an error
    assert "de.po:" in qa.msgfmt and "format specifications" in qa.msgfmt
    human_qa = machine_only_failures(human, human, "de")
    assert (human_qa.compared, human_qa.failed, human_qa.msgfmt) == (5, {}, "")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"reference catalog .*nothing\.mo does not exist"):
        machine_only_failures(catalog(tmp_path / "de.po", {}, []), tmp_path / "nothing.mo", "de")


def test_a_template_from_installed_catalogs_has_every_msgid_once_with_plurals_and_c_format(tmp_path):
    de = polib.POFile()
    de.metadata = HEADER
    de.append(polib.POEntry(msgid="%d file", msgid_plural="%d files", msgstr_plural={0: "%d Datei", 1: "%d Dateien"}))
    de.append(polib.POEntry(msgid="100% done", msgstr="100 % fertig"))
    de.append(polib.POEntry(msgctxt="menu", msgid="Quit", msgstr="Beenden"))
    fr = polib.POFile()
    fr.metadata = HEADER
    fr.append(polib.POEntry(msgid="Quit", msgstr="Quitter"))
    fr.append(polib.POEntry(msgid="100% done", msgstr="100 % fait"))
    de.save_as_mofile(str(tmp_path / "de.mo"))
    fr.save_as_mofile(str(tmp_path / "fr.mo"))
    pot = template_from_catalogs([tmp_path / "de.mo", tmp_path / "fr.mo"], "demo")
    assert [(e.msgctxt, e.msgid, e.msgid_plural, e.flags) for e in pot] == [
        (None, "%d file", "%d files", ["c-format"]), (None, "100% done", "", []), ("menu", "Quit", "", []),
        (None, "Quit", "", [])]
    assert pot.metadata["Project-Id-Version"] == "demo" and all(not e.translated() for e in pot)
    with pytest.raises(ValueError, match="no installed catalog of demo"):
        template_from_catalogs([], "demo")
