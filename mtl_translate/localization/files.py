"""`translate-file`: fill the untranslated units of one translation file, in any format of formats.py.

The rules are translate-po's (a draft for a translator, never a change to what a person wrote, nothing written that
breaks the program), applied through translate-toolkit's storage classes: a bilingual file is filled where a unit
has no translation; a monolingual one gets the template's keys it lacks (or holds empty), in its own layout, and
everything else of it stays as it was. The output goes to another path than every input. Translation memory,
glossary and confidence are translate-po's own code (memory.py, glossary.py, drafting.py), so both commands fill,
keep terms and leave unsure units alike.
"""

import os
import re
from collections import Counter
from pathlib import Path

from translate.misc.multistring import multistring

from ..hub import public_model_name
from ..outputs import refuse_output_over_input
from ..placeholders import placeholder_signature
from .drafting import check_min_confidence, least_sure, machine_note, review
from .formats import FORMATS, REVIEW, detect_format, mark_draft, new_store, read_store
from .glossary import holds_terms, load_glossary
from .inline_xml import inner_xml, parse_content, replace_content
from .markup import prepare
from .memory import Key, TranslationMemory, load_memory

_XLIFF = ("xliff", "xliff2")


def translate_file(path, translator, out, lang: str | None = None, *, template=None, file_format: str | None = None,
                   model_name: str | None = None, batch_size: int = 32, tm=(), tm_installed: bool = False, tm_roots=(),
                   glossary=None, min_confidence: float | None = None, **generation) -> dict:
    """Write `path` with its untranslated units filled to `out`; returns {"path", "format", "units", "kept", "filled",
    "mismatch", "empty", "unsure", "review"}. A monolingual format needs `template` (the source-language file); `path`
    may then be missing (a new language). `lang` defaults to the language the file declares. `translator` may be a
    function that loads it: it is called once the files are read, so that a bad file fails before a model loads.

    `tm`, `tm_installed`, `tm_roots`, `glossary` and `min_confidence` mean what they mean for `translate_po`: memory
    (every installed domain: a file names none) fills exact matches first ("memory" in the report), glossary terms
    are kept ("glossary" counts the drafts holding one), a draft below `min_confidence` is left out ("unsure")."""
    check_min_confidence(min_confidence)
    name = detect_format(template or path, file_format)
    fmt = FORMATS[name]
    refuse_output_over_input(out, {"the file": path, "--template": template}, "--out", "Pass another --out file")
    if Path(out).is_dir():
        raise ValueError(f"--out {out} is a folder; pass the path of the file to write.")
    if fmt.monolingual and template is None:
        raise ValueError(f"{path} is {fmt.title}: one language per file, so the source texts come from the "
                         "source-language file; pass it as --template (e.g. values/strings.xml, en.json).")
    if not fmt.monolingual and template is not None:
        raise ValueError(f"{fmt.title} holds its source texts; --template is for monolingual formats only.")
    source = read_store(template, name, "--template") if template else None
    new = fmt.monolingual and not Path(path).exists()
    store = None if new else read_store(path, name, "the file")
    lang = lang or (store and store.gettargetlanguage())
    if not lang:
        raise ValueError(f"{path} does not say its language; pass --lang.")
    if new:
        store = new_store(name, lang)
    elif not store.gettargetlanguage():
        store.settargetlanguage(lang)  # plural forms need it; a language the file names stays as written
    todo = monolingual_todo(source, store, name) if fmt.monolingual else bilingual_todo(store, name)
    glossary = load_glossary(glossary)
    memory = load_memory({memory_key(unit, name) for unit, _, _ in todo}, [lang], tm, tm_installed,
                         tm_roots) if tm or tm_installed else None
    translator = translator() if callable(translator) else translator
    model_lang = model_language(translator, lang)
    recalled = recall(memory, todo, store, name, lang) if memory else {}
    terms = {term: {model_lang: targets[lang]} if lang in targets else {}
             for term, targets in glossary.terms([lang]).items()} if glossary else {}
    if terms:
        generation["terms"] = terms

    sources = {text: prepare(text, fmt.access_keys, fmt.placeholders)
               for i, (_, texts, _) in enumerate(todo) if i not in recalled for text in texts}
    texts = list(dict.fromkeys(s.text for s in sources.values() if s.text))
    output, confidence = translator.translate(texts, [model_lang], rows={model_lang: [True] * len(texts)},
                                              batch_size=batch_size, return_confidence=True, **generation) \
        if texts else ({model_lang: []},) * 2
    by_text, sure = dict(zip(texts, output[model_lang])), dict(zip(texts, confidence[model_lang]))
    model_name = public_model_name(model_name or getattr(translator.model.config, "_name_or_path", "") or
                                   "mtl-translate")
    counts = Counter()
    for i, (unit, forms, flags) in enumerate(todo):  # the template's order, in which a new key is added
        if i in recalled:
            drafts, note = recalled[i]
            mark_draft(write_target(store, unit, drafts, name), name, note)
            counts["memory"] += 1
            continue
        confident = least_sure([sure.get(sources[t].text) for t in forms])
        status, drafts = review([(t, sources[t], by_text.get(sources[t].text)) for t in forms], model_lang, flags,
                                forms[0], terms, confident, min_confidence)
        written = write_target(store, unit, drafts, name) if status == "filled" else None
        if written is not None:
            mark_draft(written, name, machine_note(model_name, confident))
            counts["glossary"] += any(holds_terms(sources[t].text, terms) for t in forms)
        elif status == "filled":
            status = "mismatch"
        counts[status] += 1

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(out).with_name(f".{Path(out).name}.partial-{os.getpid()}")
    partial.write_bytes(bytes(store))
    os.replace(partial, out)  # an interrupted run never leaves half a file
    units = len(translatable(source or store))
    report = {"path": str(out), "format": name, "units": units, "kept": units - len(todo),
              **{k: counts[k] for k in ("filled", "mismatch", "empty", "unsure")}, "review": REVIEW[name]}
    if memory is not None:
        report["memory"] = counts["memory"]
    if glossary:
        report["glossary"] = counts["glossary"]
    return report


def memory_key(unit, name: str) -> Key:
    """What a translation memory matches a unit on, as gettext's (msgctxt, msgid, msgid_plural): its source (inline
    XLIFF elements as markup) and plural source; the context only where it means gettext's msgctxt (`.po`): an
    Android or properties key, a Qt class or an XLIFF id says where a string is, not what it means."""
    forms = [inner_xml(unit.source_dom)] if has_inline_xml(unit, name) else strings(unit.source)
    return (unit.getcontext() or None) if name == "po" else None, forms[0], forms[-1] if len(forms) > 1 else ""


def recall(memory: TranslationMemory, todo: list[tuple], store, name: str, lang: str) -> dict[int, tuple]:
    """{index in `todo`: (translation per form, the note naming its source)} for the units `memory` has a
    translation for (as many forms as the unit wants) that the file can hold; the others go to the model."""
    chosen = {}
    for i, (unit, forms, flags) in enumerate(todo):
        choice = memory.choose(memory_key(unit, name), lang, flags, len(forms))
        if choice and fits(store, unit, list(choice[0]), name):
            chosen[i] = list(choice[0]), choice[1]
    return chosen


def model_language(translator, lang: str) -> str:
    """The model's language for a file's `lang`: itself, else its base language (a file's `de_DE` -> `de`)."""
    known = translator.check_languages(None)
    base = re.split(r"[-_]", lang)[0].lower()
    return translator.check_languages([lang if lang in known or base not in known else base])[0]


def translatable(store) -> list:
    return [u for u in store.units if not u.isheader() and u.istranslatable() and u.source]


def has_inline_xml(unit, name: str) -> bool:
    """An XLIFF unit whose source has inline elements (not a gettext plural group, which has no source element)."""
    return name in _XLIFF and unit.source_dom is not None and len(unit.source_dom) > 0


def strings(value) -> list[str]:
    return [str(s) for s in value.strings] if isinstance(value, multistring) else [str(value or "")]


def bilingual_todo(store, name: str) -> list[tuple]:
    """(unit, source text per form, format flags) of every unit without a translation that is no draft already. A
    plural unit gets as many forms as the file holds for it, else as the language has."""
    todo = []
    for unit in translatable(store):
        if unit.isfuzzy() or any(strings(unit.target)):
            continue
        source = strings(unit.source)
        if has_inline_xml(unit, name):
            source = [inner_xml(unit.source_dom)]  # inline elements kept as markup
        if unit.hasplural():
            count = len(unit.target.strings) if isinstance(unit.target, multistring) else 0
            tags = store.get_plural_tags()
            source = form_sources(source, ["one", "other"], tags + ["other"] * (count - len(tags)))
        flags = [f.strip() for comment in getattr(unit, "typecomments", []) for f in comment[2:].split(",")]
        todo.append((unit, source, flags or list(FORMATS[name].flags)))
    return todo


def monolingual_todo(source, store, name: str) -> list[tuple]:
    """(template unit, source text per form, format flags) of every template key the file lacks or holds empty."""
    have = {u.getid(): u for u in store.units}
    todo = []
    for unit in translatable(source):
        existing = have.get(unit.getid())
        if existing is not None and any(strings(existing.target or existing.source)):
            continue
        forms = strings(unit.source)
        if len(forms) > 1:
            forms = form_sources(forms, source.get_plural_tags(), store.get_plural_tags())
        todo.append((unit, forms, list(FORMATS[name].flags)))
    return todo


def form_sources(forms: list[str], source_tags: list[str], target_tags: list[str]) -> list[str]:
    """The source text of each target plural form (CLDR tags: one, few, many, other): the source's form of the same
    tag, else its last ("other"); a form whose source lacks the last form's placeholders ("One file") takes the last
    one too, since "one" also covers 21, 31 in many languages."""
    by_tag = dict(zip(source_tags, forms))
    last = forms[-1]
    picked = [by_tag.get(tag, last) for tag in target_tags]
    return [text if placeholder_signature(text) == placeholder_signature(last) else last for text in picked]


def fits(store, unit, drafts: list[str], name: str) -> bool:
    """Whether the file can hold `drafts` as `unit`'s translation: not an XLIFF translation whose inline elements are
    not well-formed, nor `<xliff:g>` in an Android file that does not declare it (translate-toolkit would write it
    as text)."""
    if name == "android" and any(prefix not in store.document.getroot().nsmap
                                 for prefix in re.findall(r"</?([\w.-]+):", drafts[0])):
        return False
    return not has_inline_xml(unit, name) or parse_content(drafts[0], unit.source_dom) is not None


def write_target(store, unit, drafts: list[str], name: str):
    """Set the translation and return the unit that holds it: a monolingual format's template `unit` is found in
    `store` by its key, or added. None, with nothing written, when the file cannot hold it (`fits`)."""
    if not fits(store, unit, drafts, name):
        return None
    if FORMATS[name].monolingual:
        existing = store.findid(unit.getid())
        if existing is None:
            existing = store.UnitClass("")
            if hasattr(unit, "get_unitid"):  # JSON, YAML: the unit id keeps the nesting
                existing.setid(unit.getid(), unit.get_unitid())
            else:
                existing.setid(unit.getid())
            store.addunit(existing)  # before the target: a plural needs the store's language
        unit = existing
    if has_inline_xml(unit, name):
        unit.target = drafts[0]
        replace_content(unit.target_dom, parse_content(drafts[0], unit.source_dom))
        return unit
    unit.target = multistring(drafts) if len(drafts) > 1 else drafts[0]
    return unit


def format_file_report(report: dict) -> str:
    """One line of counts for the terminal, and how the drafts are marked."""
    counts = "  ".join(f"{k} {report[k]}" for k in ("units", "kept", "memory", "filled", "mismatch", "empty", "unsure",
                                                     "glossary") if k in report)
    lines = [f"{report['path']} ({report['format']}): {counts}", f"filled units are marked: {report['review']}; "
             "mismatch: the translation lost a placeholder, markup or glossary term of its source; unsure: confidence "
             "below --min-confidence; mismatch, empty and unsure units stay untranslated"]
    if "memory" in report:
        lines.append("memory: units filled from translation memory, marked as filled ones are, with a note naming "
                     "the source")
    if "glossary" in report:
        lines.append("glossary: model translations that hold a glossary term (verbatim or its required translation)")
    return "\n".join(lines)
