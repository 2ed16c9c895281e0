"""`translate-po`: fill the untranslated entries of gettext catalogs from a template (.pot), one `.po` per language.

A machine translation is a draft for a translator, so every filled entry is marked `fuzzy` (gettext tools then
neither use it at run time nor count it as done) with a translator comment naming the model, and nothing a person
translated is ever changed. What a program parses in a string must come out unchanged, or the catalog breaks the
program (`msgfmt -c` refuses it): placeholders, options, paths and URLs are protected by the Translator
(placeholders.py); markup (`<b>`, `<a href="...">`, `&amp;`, Qt's `&&`), leading/trailing whitespace and line
breaks, and the access-key marker (`_Open`, `&Open`) are handled here. An entry whose translation still does not
keep the msgid's format placeholders is left untranslated and counted, never written broken. The comment also
gives the model's confidence (exp of the mean token log-probability, `Translator.translate(return_confidence=True)`),
so a reviewer can start with the least sure entries; below `min_confidence` an entry is left untranslated.
"""

import os
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import polib

from ..hub import public_model_name
from ..outputs import refuse_output_over_input
from .drafting import check_min_confidence, least_sure, machine_note, review
from .glossary import Glossary, holds_terms, load_glossary
from .markup import Source, prepare
from .memory import entry_key, load_memory
from .plurals import nplurals, plural_forms, plural_sources
from .po import merge, read_catalog

__all__ = ["format_report", "read_catalog", "translate_po"]


def update_header(po: polib.POFile, template: polib.POFile, lang: str, forms: str | None) -> None:
    """Language, UTF-8 and the generator; the template's project fields; the catalog's other fields stay, but
    never the template's `nplurals=INTEGER` (msgfmt rejects it): without known forms the line goes."""
    from .. import __version__

    po.metadata.update({k: v for k, v in template.metadata.items()
                        if k in ("Project-Id-Version", "Report-Msgid-Bugs-To", "POT-Creation-Date")})
    po.metadata.update({
        "PO-Revision-Date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M+0000"), "Language": lang,
        "MIME-Version": "1.0", "Content-Type": "text/plain; charset=UTF-8", "Content-Transfer-Encoding": "8bit",
        "X-Generator": f"mtl-translate {__version__}",
    })
    if forms:
        po.metadata["Plural-Forms"] = forms
    else:
        po.metadata.pop("Plural-Forms", None)
    po.metadata_is_fuzzy = False  # a fuzzy header is ignored by msgfmt, charset and all


def untranslated(entry: polib.POEntry) -> bool:
    """No translation in any form and not fuzzy: the entries `translate_po` fills."""
    return not entry.msgstr and not any(entry.msgstr_plural.values()) and "fuzzy" not in entry.flags


def translate_po(template: str | os.PathLike | polib.POFile, translator, langs: Sequence[str] | None = None,
                 out_dir: str | os.PathLike = "po", *, model_name: str | None = None, batch_size: int = 32,
                 tm: Sequence[str | os.PathLike] = (), tm_installed: bool = False,
                 tm_roots: Sequence[str | os.PathLike] = (), glossary: str | os.PathLike | Glossary | None = None,
                 min_confidence: float | None = None, **generation) -> dict:
    """Write or update `<out_dir>/<lang>.po` from `template` for every language of `langs` (default: the model's).

    Existing entries are kept as they are; untranslated ones get a machine translation, flagged fuzzy with the
    comment `machine translation by <model>, confidence 0.87` (`model_name`, default the model's; a local folder is
    named as its card names it: `hub.public_model_name`). Each distinct msgid is encoded once for all languages.
    Returns {lang: {"path", "entries", "kept", "filled", "mismatch", "empty", "unsure"}}: `mismatch` entries lost a
    format placeholder or markup of their msgid, `empty` ones got no output, `unsure` ones a confidence below
    `min_confidence` (its least sure form); all three stay untranslated. `template` may be a catalog already read
    (`read_catalog`), so that a command checks it before loading the model.

    Translation memory (memory.py) is opt-in: `tm` files (.po, .mo, .tmx) and, with `tm_installed`, the catalogs
    installed on this machine (and under `tm_roots`) but not the template's own domain; an exact match is reused
    before the model is asked, and the report counts it under "memory". A `glossary` (.csv, .tbx, glossary.py) keeps
    its terms verbatim or as their required translation in what the model writes; "glossary" counts those entries."""
    check_min_confidence(min_confidence)
    pot = template if isinstance(template, polib.POFile) else read_catalog(template, "template")
    template = pot.fpath or template
    if not any(e.msgid for e in pot):
        raise ValueError(f"template {template} holds no message to translate.")
    langs = translator.check_languages(langs)
    model_name = public_model_name(model_name or getattr(translator.model.config, "_name_or_path", "") or
                                   "mtl-translate")
    check_out_dir(out_dir)
    glossary = load_glossary(glossary)
    terms = glossary.terms(langs) if glossary else {}
    catalogs = {}
    for lang in langs:  # every file is read and checked before anything is translated or written
        path = Path(out_dir, f"{lang}.po")
        refuse_output_over_input(path, {"the template": pot.fpath}, f"the {lang} catalog",
                                 "Pass another --out-dir, or copy the template elsewhere first")
        po = read_catalog(path, f"the {lang} catalog") if path.exists() else None
        forms = plural_forms(lang, None if po is None else po.metadata.get("Plural-Forms"))
        if forms is None and any(e.msgid_plural for e in pot):
            raise ValueError(f"{template} has plural messages, but the Plural-Forms of {lang!r} are unknown: add a "
                             f"header line 'Plural-Forms: nplurals=N; plural=EXPR;' to {path} (babel knows "
                             f"no such locale: name it as CLDR does, e.g. pt_BR, sr_Latn).")
        count = nplurals(forms) if forms else 2
        catalogs[lang] = (path, merge(pot, po, count), forms)

    memory = load_memory({entry_key(e) for e in pot if e.msgid and not e.obsolete}, langs, tm, tm_installed, tm_roots,
                         Path(pot.fpath or "").stem) if tm or tm_installed else None
    sources, wanted, todo = {}, {}, {}  # msgid -> Source; model input -> {lang}; lang -> [(entry, msgid per form)]
    recalled = {}  # lang -> entries filled from memory
    for lang, (_, po, forms) in catalogs.items():
        pending = [e for e in po if not e.obsolete and untranslated(e)]
        left = memory.recall(pending, lang) if memory else pending
        recalled[lang] = len(pending) - len(left)
        todo[lang] = [(e, plural_sources(e, forms) if e.msgid_plural else [e.msgid]) for e in left]
        for _, msgids in todo[lang]:
            for msgid in msgids:
                source = sources.setdefault(msgid, prepare(msgid))
                if source.text:
                    wanted.setdefault(source.text, set()).add(lang)
    texts = list(wanted)
    if terms:
        generation["terms"] = terms
    rows = {lang: [lang in wanted[t] for t in texts] for lang in langs}
    output, confidence = translator.translate(texts, langs, rows=rows, batch_size=batch_size, return_confidence=True,
                                              **generation) if texts else ({lang: [] for lang in langs},) * 2

    report = {}
    for lang, (path, po, forms) in catalogs.items():
        by_text, sure = dict(zip(texts, output[lang])), dict(zip(texts, confidence[lang]))
        done = [(fill(entry, [(m, sources[m], by_text.get(sources[m].text)) for m in msgids], lang, model_name,
                      terms, least_sure([sure.get(sources[m].text) for m in msgids]), min_confidence), msgids)
                for entry, msgids in todo[lang]]
        counts = Counter(status for status, _ in done)
        update_header(po, pot, lang, forms)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        po.save(str(partial))
        os.replace(partial, path)  # an interrupted run never leaves a half-written catalog
        entries = sum(not e.obsolete for e in po)
        report[lang] = {"path": str(path), "entries": entries, "kept": entries - len(todo[lang]) - recalled[lang],
                        **{k: counts[k] for k in ("filled", "mismatch", "empty", "unsure")}}
        if memory is not None:
            report[lang]["memory"] = recalled[lang]
        if glossary:
            report[lang]["glossary"] = sum(status == "filled" and any(holds_terms(sources[m].text, terms) for m in msgids)
                                           for status, msgids in done)
    return report


def check_out_dir(out_dir: str | os.PathLike) -> None:
    """The catalogs' folder, or the first of its parents that exists, must be a folder: a file in the way fails now,
    not after every entry is translated."""
    for folder in (Path(out_dir), *Path(out_dir).parents):
        if folder.exists():
            if not folder.is_dir():
                raise ValueError(f"out-dir {out_dir}: {folder} is a file, not a folder; pass a folder for the catalogs "
                                 "(--out-dir).")
            return


def fill(entry: polib.POEntry, forms: list[tuple[str, Source, str | None]], lang: str, model_name: str,
         terms: dict | None = None, confidence: float | None = None, min_confidence: float | None = None) -> str:
    """Writes the translation of each form ((msgid, its Source, the model's output)) into `entry`, fuzzy, when
    `review` passes it; returns "filled", "mismatch", "empty" (no output) or "unsure" (`confidence` below
    `min_confidence`)."""
    status, msgstrs = review(forms, lang, entry.flags, entry.msgid, terms, confidence, min_confidence)
    if status != "filled":
        return status
    if entry.msgid_plural:
        entry.msgstr_plural = dict(enumerate(msgstrs))
    else:
        entry.msgstr = msgstrs[0]
    entry.flags.append("fuzzy")
    entry.tcomment = "\n".join(filter(None, [entry.tcomment, machine_note(model_name, confidence)]))
    return "filled"


def format_report(report: dict) -> str:
    """A table per language for the terminal, and what to do next."""
    columns = ("entries", "kept", "memory", "filled", "mismatch", "empty", "unsure", "glossary")
    columns = [c for c in columns if all(c in r for r in report.values())]
    lines = [f"{'lang':<8}" + "".join(f"{c:>10}" for c in columns) + "  file"]
    lines += [f"{lang:<8}" + "".join(f"{r[c]:>10}" for c in columns) + f"  {r['path']}" for lang, r in report.items()]
    lines.append("filled: machine-translated and marked fuzzy (review them, then drop the flag); mismatch: the "
                 "translation lost a placeholder, markup or glossary term of its msgid; unsure: confidence below "
                 "--min-confidence; mismatch, empty and unsure entries stay untranslated")
    if "memory" in columns:
        lines.append(f"memory: {sum(r['memory'] for r in report.values())} entries from translation memory (fuzzy, "
                     f"with a comment naming the source), {sum(r['filled'] for r in report.values())} from the model")
    if "glossary" in columns:
        lines.append("glossary: model translations that hold a glossary term (verbatim or its required translation)")
    return "\n".join(lines)
