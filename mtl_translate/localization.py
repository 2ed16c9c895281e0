"""`translate-po`: fill the untranslated entries of gettext catalogs from a template (.pot), one `.po` per language.

A machine translation is a draft for a translator, so every filled entry is marked `fuzzy` (gettext tools then
neither use it at run time nor count it as done) with a translator comment naming the model, and nothing a person
translated is ever changed. What a program parses in a string must come out unchanged, or the catalog breaks the
program (`msgfmt -c` refuses it): placeholders, options, paths and URLs are protected by the Translator
(placeholders.py); markup (`<b>`, `<a href="...">`, `&amp;`, Qt's `&&`), leading/trailing whitespace and line
breaks, and the access-key marker (`_Open`, `&Open`) are handled here. An entry whose translation still does not
keep the msgid's format placeholders is left untranslated and counted, never written broken.
"""

import gettext
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polib

from .data.gettext import is_mnemonic_label
from .hub import public_model_name
from .outputs import refuse_output_over_input
from .placeholders import FORMAT_PLACEHOLDER, SPAN, restore
from .segmentation import EDGES

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
_CJK = ("ja", "zh", "ko")  # access keys go after the word there: 開く(_O)
# Markup kept verbatim: a tag with attributes, a closing or self-closing tag, a void tag, or an opening tag whose
# closing tag is in the same text (so `<b>` in `<b>x</b>`, but not the metavariable `<file>`); entities; Qt's `&&`.
_TAG = re.compile(r"</?([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?)*)\s*(/?)>")
_VOID_TAGS = {"br", "hr", "img"}
_ENTITY = re.compile(r"&(?:[A-Za-z]\w*|#\d+|#x[0-9A-Fa-f]+);|&&")
_QT_MNEMONIC = re.compile(r"(?<!&)&(?=[^\W\d_])(?![A-Za-z]\w*;)")
_GTK_MNEMONIC = re.compile(r"_(?=[^\W\d_])")
_NPLURALS = re.compile(r"nplurals\s*=\s*(\d+)")
_PLURAL = re.compile(r"plural\s*=\s*([^;]+)")
# A line of entry syntax: a keyword and/or a quoted C string; `#~` (obsolete entry) and `#|` (previous msgid) lines
# hold the same after their mark. Other lines starting with `#` are comments.
_ENTRY_MARK = re.compile(r"#~\|?|#\|")
_ENTRY_LINE = re.compile(r'((domain|msgctxt|msgid|msgid_plural|msgstr(\[\d+\])?)\s+)?"([^"\\]|\\.)*"')
_PRINTF_ARGUMENT = re.compile(r"%(?:(\d+)\$)?([-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t)?"
                              r"[diouxXeEfFgGaAcspn])")


@dataclass
class Source:
    """One msgid as the model gets it: without its surrounding whitespace and access-key marker, markup masked."""

    lead: str
    text: str  # the model's input; "" when there is nothing to translate (the msgid is copied)
    trail: str
    markup: list[str]  # the masked tags and entities, by index of their ⟨N⟩ token
    mnemonic: tuple[str, str] | None  # (marker "_" or "&", the letter it marked)


def prepare(msgid: str) -> Source:
    """Everything of a msgid that must come out unchanged is taken out of the model's hands first."""
    lead, body, trail = EDGES.match(msgid).groups()
    mnemonic = None
    qt = "_" not in body and len(_QT_MNEMONIC.findall(body)) == 1 and is_mnemonic_label(_QT_MNEMONIC.sub("_", body))
    marker = "_" if is_mnemonic_label(body) else "&" if qt else None  # Qt's rules as GTK's: not in AT&T, R&D
    if marker:
        at = (_GTK_MNEMONIC if marker == "_" else _QT_MNEMONIC).search(body).start()
        mnemonic, body = (marker, body[at + 1]), body[:at] + body[at + 1:]
    markup = []
    if spans := markup_spans(body):
        def token(match: re.Match) -> str:
            markup.append(match[0])
            return f"⟨{len(markup) - 1}⟩"

        body = re.sub("|".join(spans), token, body)
    words = SPAN.sub("", body)  # SPAN takes the ⟨N⟩ tokens too
    return Source(lead, body if any(c.isalpha() for c in words) else "", trail, markup, mnemonic)


def markup_spans(text: str) -> list[str]:
    """Regex-escaped markup of `text` (see `_TAG`), longest first so that no span is cut by a shorter one."""
    closed = {m[1].lower() for m in _TAG.finditer(text) if m[0].startswith("</")}
    tags = [m[0] for m in _TAG.finditer(text)
            if m[0].startswith("</") or m[2].strip() or m[3] or m[1].lower() in _VOID_TAGS | closed]
    return sorted({re.escape(s) for s in tags + _ENTITY.findall(text)}, key=len, reverse=True)


def finish(source: Source, msgid: str, translated: str | None, lang: str) -> str | None:
    """The model's output -> a msgstr: markup, access key and edges put back. None when markup was lost."""
    if not source.text:
        return msgid
    if not translated or not translated.strip():
        return None
    text, lost = restore(translated.strip(), source.markup)
    if lost:
        return None
    if source.mnemonic:
        text = place_mnemonic(text, *source.mnemonic, cjk=re.split(r"[-_]", lang)[0].lower() in _CJK)
    return source.lead + text + source.trail


def place_mnemonic(text: str, marker: str, letter: str, cjk: bool = False) -> str:
    """Put the access-key marker before the source's key letter in `text`, at a word start if it has one there,
    else before the first letter (in CJK, "(_O)" after the text, as their catalogs do); never inside markup or a
    placeholder."""
    protected = set()
    for match in re.finditer("|".join([SPAN.pattern, _TAG.pattern, _ENTITY.pattern]), text):
        protected.update(range(match.start(), match.end()))
    free = [i for i, c in enumerate(text) if i not in protected and c.isalpha()]
    same = [i for i in free if text[i].lower() == letter.lower()]
    if cjk and not same:
        return f"{text}({marker}{letter.upper()})"
    at = ([i for i in same if i == 0 or not text[i - 1].isalnum()] or same or free or [None])[0]
    return text if at is None else text[:at] + marker + text[at:]


def placeholder_signature(text: str) -> tuple[Counter, dict[int, str]]:
    """What `msgfmt -c` compares: printf conversions by argument position (`%2$s` is the second argument's `s`),
    and the other format placeholders (`%(name)s`, `{0}`, `%%`) as a multiset."""
    others, arguments, position = Counter(), {}, 0
    for found in FORMAT_PLACEHOLDER.findall(text):
        match = _PRINTF_ARGUMENT.fullmatch(found)
        if match is None:
            others[found] += 1
        elif match[1]:
            arguments[int(match[1]) - 1] = match[2]
        else:
            arguments[position], position = match[2], position + 1
    return others, arguments


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
    count = int(_NPLURALS.search(forms)[1])
    rule = gettext.c2py(_PLURAL.search(forms)[1])
    form0_numbers = sum(rule(n) == 0 for n in range(1001))
    same = placeholder_signature(entry.msgid) == placeholder_signature(entry.msgid_plural)
    first = entry.msgid if same or form0_numbers < 5 else entry.msgid_plural  # gettext's test for "one number"
    return [first] + [entry.msgid_plural] * (count - 1)


def read_catalog(path: str | os.PathLike, what: str) -> polib.POFile:
    """The catalog at `path`, or an error naming it (and the line, for a syntax error) before anything is written."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} does not exist or is not a file.")
    try:
        check_syntax(path)
        return polib.pofile(str(path))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read {what} {path}: {err}; it must be a gettext .po/.pot file (check it with "
                         f"`msgfmt -c {path}`). Nothing was written.") from None


def check_syntax(path: str | os.PathLike) -> None:
    """polib reads a string that lacks its closing quote by dropping its last character, without a word: the msgid
    becomes another one, its translation would be made obsolete and the entry machine-translated. So every line is
    checked first, as `msgfmt` does, and a bad one is a ValueError naming it."""
    with open(path, "rb") as f:
        text = f.read().decode(polib.detect_encoding(str(path)), errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        mark = _ENTRY_MARK.match(line)
        body = line[mark.end():].strip() if mark else line.strip()
        if not body or body.startswith("#") or _ENTRY_LINE.fullmatch(body):
            continue
        unterminated = re.sub(r"\\.", "", body).count('"') % 2
        problem = "a string without its closing quote" if unterminated else "not a keyword and quoted string"
        raise ValueError(f"line {number} is not valid gettext syntax ({problem}: {body[:60]!r})")


def merge(template: polib.POFile, po: polib.POFile | None, nplurals: int) -> polib.POFile:
    """The template's entries in its order, each the existing `.po` entry when it has one (kept as it is; an
    obsolete one comes back, as with msgmerge), then the obsolete entries: those already obsolete and those the
    template no longer has (kept, translation and all, as `#~` lines)."""
    base = template if po is None else po  # (a POFile is a list: one with a header only is falsy)
    existing = {} if po is None else {(e.msgctxt, e.msgid): e for e in po}  # obsolete ones too
    merged = polib.POFile(wrapwidth=78, encoding="utf-8")
    merged.header, merged.metadata = base.header, dict(base.metadata)
    keys = set()
    for entry in template:
        key = (entry.msgctxt, entry.msgid)
        if entry.obsolete or not entry.msgid or key in keys:
            continue
        keys.add(key)
        if key in existing:
            existing[key].obsolete = False
            merged.append(existing[key])
        else:
            merged.append(polib.POEntry(
                msgctxt=entry.msgctxt, msgid=entry.msgid, msgid_plural=entry.msgid_plural,
                msgstr_plural=dict.fromkeys(range(nplurals), "") if entry.msgid_plural else {},
                comment=entry.comment, occurrences=list(entry.occurrences), flags=list(entry.flags)))
    for key, entry in existing.items():
        if key not in keys and entry.msgid:
            entry.obsolete = True
            merged.append(entry)
    return merged


def update_header(po: polib.POFile, template: polib.POFile, lang: str, forms: str | None) -> None:
    """Language, UTF-8 and the generator; the template's project fields; the catalog's other fields stay."""
    from . import __version__

    po.metadata.update({k: v for k, v in template.metadata.items()
                        if k in ("Project-Id-Version", "Report-Msgid-Bugs-To", "POT-Creation-Date")})
    po.metadata.update({
        "PO-Revision-Date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M+0000"), "Language": lang,
        "MIME-Version": "1.0", "Content-Type": "text/plain; charset=UTF-8", "Content-Transfer-Encoding": "8bit",
        "X-Generator": f"mtl-translate {__version__}",
    })
    if forms:
        po.metadata["Plural-Forms"] = forms
    po.metadata_is_fuzzy = False  # a fuzzy header is ignored by msgfmt, charset and all


def untranslated(entry: polib.POEntry) -> bool:
    """No translation in any form and not fuzzy: the entries `translate_po` fills."""
    return not entry.msgstr and not any(entry.msgstr_plural.values()) and "fuzzy" not in entry.flags


def translate_po(template: str | os.PathLike | polib.POFile, translator, langs: Sequence[str] | None = None,
                 out_dir: str | os.PathLike = "po", *, model_name: str | None = None, batch_size: int = 32,
                 **generation) -> dict:
    """Write or update `<out_dir>/<lang>.po` from `template` for every language of `langs` (default: the model's).

    Existing entries are kept as they are; untranslated ones get a machine translation, flagged fuzzy with the
    comment `machine translation by <model>` (`model_name`, default the model's; a local folder is named as its card
    names it: `hub.public_model_name`). Each distinct msgid is encoded once for all languages. Returns
    {lang: {"path", "entries", "kept", "filled", "mismatch", "empty"}}: `mismatch` entries lost a format
    placeholder or markup of their msgid, `empty` ones got no output; both stay untranslated. `template` may be
    a catalog already read (`read_catalog`), so that a command checks it before loading the model."""
    pot = template if isinstance(template, polib.POFile) else read_catalog(template, "template")
    template = pot.fpath or template
    if not any(e.msgid for e in pot):
        raise ValueError(f"template {template} holds no message to translate.")
    langs = translator.check_languages(langs)
    model_name = public_model_name(model_name or getattr(translator.model.config, "_name_or_path", "") or
                                   "mtl-translate")
    check_out_dir(out_dir)
    catalogs = {}
    for lang in langs:  # every file is read and checked before anything is translated or written
        path = Path(out_dir, f"{lang}.po")
        refuse_output_over_input(path, {"the template": pot.fpath}, f"the {lang} catalog",
                                 "Pass another --out-dir, or copy the template elsewhere first")
        po = read_catalog(path, f"the {lang} catalog") if path.exists() else None
        forms = plural_forms(lang, None if po is None else po.metadata.get("Plural-Forms"))
        if forms is None and any(e.msgid_plural for e in pot):
            raise ValueError(f"{template} has plural messages, but the Plural-Forms of {lang!r} are unknown: add a "
                             f"header line 'Plural-Forms: nplurals=N; plural=EXPR;' to {path} (the table knows "
                             f"{', '.join(sorted(PLURAL_FORMS))}).")
        nplurals = int(_NPLURALS.search(forms)[1]) if forms else 2
        catalogs[lang] = (path, merge(pot, po, nplurals), forms)

    sources, wanted, todo = {}, {}, {}  # msgid -> Source; model input -> {lang}; lang -> [(entry, msgid per form)]
    for lang, (_, po, forms) in catalogs.items():
        todo[lang] = [(e, plural_sources(e, forms) if e.msgid_plural else [e.msgid])
                      for e in po if not e.obsolete and untranslated(e)]
        for _, msgids in todo[lang]:
            for msgid in msgids:
                source = sources.setdefault(msgid, prepare(msgid))
                if source.text:
                    wanted.setdefault(source.text, set()).add(lang)
    texts = list(wanted)
    output = translator.translate(texts, langs, rows={lang: [lang in wanted[t] for t in texts] for lang in langs},
                                  batch_size=batch_size, **generation) if texts else {lang: [] for lang in langs}

    report = {}
    for lang, (path, po, forms) in catalogs.items():
        by_text = dict(zip(texts, output[lang]))
        counts = Counter(fill(entry, [(m, sources[m], by_text.get(sources[m].text)) for m in msgids], lang, model_name)
                         for entry, msgids in todo[lang])
        update_header(po, pot, lang, forms)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        po.save(str(partial))
        os.replace(partial, path)  # an interrupted run never leaves a half-written catalog
        entries = sum(not e.obsolete for e in po)
        report[lang] = {"path": str(path), "entries": entries, "kept": entries - len(todo[lang]),
                        **{k: counts[k] for k in ("filled", "mismatch", "empty")}}
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


def fill(entry: polib.POEntry, forms: list[tuple[str, Source, str | None]], lang: str, model_name: str) -> str:
    """Writes the translation of each form ((msgid, its Source, the model's output)) into `entry`, fuzzy, when every
    form keeps its msgid's markup and format placeholders; returns "filled", "mismatch" or "empty" (no output)."""
    msgstrs = [finish(source, msgid, output, lang) for msgid, source, output in forms]
    if any(msgstr is None and not (output or "").strip() for msgstr, (_, _, output) in zip(msgstrs, forms)):
        return "empty"
    if any(msgstr is None or placeholder_signature(msgstr) != placeholder_signature(msgid)
           for msgstr, (msgid, _, _) in zip(msgstrs, forms)):
        return "mismatch"
    if entry.msgid_plural:
        entry.msgstr_plural = dict(enumerate(msgstrs))
    else:
        entry.msgstr = msgstrs[0]
    entry.flags.append("fuzzy")
    entry.tcomment = "\n".join(filter(None, [entry.tcomment, f"machine translation by {model_name}"]))
    return "filled"


def format_report(report: dict) -> str:
    """A table per language for the terminal, and what to do next."""
    columns = ("entries", "kept", "filled", "mismatch", "empty")
    lines = [f"{'lang':<8}" + "".join(f"{c:>10}" for c in columns) + "  file"]
    lines += [f"{lang:<8}" + "".join(f"{r[c]:>10}" for c in columns) + f"  {r['path']}" for lang, r in report.items()]
    lines.append("filled: machine-translated and marked fuzzy (review them, then drop the flag); mismatch: the "
                 "translation lost a placeholder or markup of its msgid; mismatch and empty entries stay untranslated")
    return "\n".join(lines)
