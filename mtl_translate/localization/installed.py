"""Installed gettext catalogs as a test bench for translate-po: the .mo files of a program hold its msgids and a
person's translation of each, so a template made from them is translated by the model and checked against them."""

import os
from collections.abc import Sequence
from pathlib import Path

import polib

from ..placeholders import placeholder_signature

LOCALE_ROOT = Path("/usr/share/locale")


def installed_catalog(domain: str, lang: str, root: str | os.PathLike = LOCALE_ROOT) -> Path | None:
    """`<root>/<lang>/LC_MESSAGES/<domain>.mo`, or None when that program has no catalog of `lang` installed."""
    path = Path(root, lang, "LC_MESSAGES", f"{domain}.mo")
    return path if path.is_file() else None


def template_from_catalogs(catalogs: Sequence[str | os.PathLike], project: str) -> polib.POFile:
    """The .pot the program's translators got, as far as its .mo files tell: every (msgctxt, msgid) any of them
    translates, in first-seen order, with msgid_plural, and the `c-format` flag where a printf conversion appears
    (xgettext's flag is not in a .mo; without it `msgfmt -c` would not compare the conversions)."""
    if not catalogs:
        raise ValueError(f"no installed catalog of {project} to make a template from.")
    pot = polib.POFile(wrapwidth=78, encoding="utf-8")
    pot.metadata = {"Project-Id-Version": project, "MIME-Version": "1.0",
                    "Content-Type": "text/plain; charset=UTF-8", "Content-Transfer-Encoding": "8bit"}
    seen = set()
    for path in catalogs:
        for entry in polib.mofile(str(path)):
            key = (entry.msgctxt, entry.msgid)
            if not entry.msgid or key in seen:
                continue
            seen.add(key)
            printf = any(kind == "%" for kind, _ in placeholder_signature(entry.msgid)[1])
            pot.append(polib.POEntry(msgctxt=entry.msgctxt, msgid=entry.msgid, msgid_plural=entry.msgid_plural,
                                     msgstr_plural={0: "", 1: ""} if entry.msgid_plural else {},
                                     flags=["c-format"] if printf else []))
    return pot
