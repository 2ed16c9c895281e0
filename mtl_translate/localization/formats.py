"""The file formats `translate-file` fills, each read and written by its translate-toolkit storage class.

Bilingual formats (XLIFF, Qt `.ts`, `.po`) hold source and translation in one file; monolingual ones (Android
`strings.xml`, JSON, Java `.properties`, YAML) hold one language each, keyed, so the source texts come from the
source-language file (the template, as Weblate and translate-toolkit's `-t` pair them). Per format: how a draft is
marked for review where the format can say so, the access-key markers its programs use, and its own placeholders,
which the model must keep verbatim (the printf, brace and markup rules of placeholders.py and markup.py apply to
every format).
"""

import re
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from babel import Locale, UnknownLocaleError

_QT = re.compile(r"%L?\d+|%n")  # QString::arg, tr()'s count
_I18NEXT = re.compile(r"\{\{[^{}]*\}\}|\$t\([^()]*\)")  # interpolation, nesting
_MESSAGE_FORMAT = re.compile(r"\{\d+(?:,[^{}]*)?\}")  # Java MessageFormat: {0}, {1,number,integer}
_XLIFF2 = re.compile(rb"<xliff[^>]*\sversion=[\"']2")
_RUBY = re.compile(r"%\{\w+\}|%<\w+>[-+ #0]*\d*(?:\.\d+)?[a-zA-Z]")  # Rails I18n: %{name}, %<count>d


@dataclass(frozen=True)
class FileFormat:
    """One format: `store` names its translate-toolkit class ("module.Class" of translate.storage)."""

    title: str
    store: str
    monolingual: bool
    review: str  # how a filled unit is marked: "state" (XLIFF 1.2), "fuzzy" (its markfuzzy), "comment", "" (none)
    access_keys: str = ""
    placeholders: re.Pattern | None = None
    flags: tuple[str, ...] = ()  # the gettext format flag of its conversions: how a reordering numbers them
    new_file: str = ""  # a new language's file before its first unit, where the class's empty store is not one

    def store_class(self):
        module, name = self.store.rsplit(".", 1)
        return getattr(import_module(f"translate.storage.{module}"), name)


FORMATS = {
    "xliff": FileFormat("XLIFF 1.2", "xliff.Xliff1File", False, "state", "_&~"),
    "xliff2": FileFormat("XLIFF 2.0", "xliff2.Xliff2File", False, "fuzzy", "_&~"),
    "ts": FileFormat("Qt Linguist", "ts2.tsfile", False, "fuzzy", "&", _QT),
    "po": FileFormat("gettext PO", "po.pofile", False, "fuzzy", "_&~"),
    "android": FileFormat("Android resources", "aresource.AndroidResourceFile", True, "comment", "", None,
                          ("c-format",), '<?xml version="1.0" encoding="utf-8"?>\n'
                          '<resources xmlns:xliff="urn:oasis:names:tc:xliff:document:1.2">\n</resources>\n'),
    "json": FileFormat("JSON", "jsonl10n.JsonFile", True, "", "", _I18NEXT),
    "i18next": FileFormat("i18next JSON v4", "jsonl10n.I18NextV4File", True, "", "", _I18NEXT),
    "properties": FileFormat("Java properties", "properties.javafile", True, "comment", "&", _MESSAGE_FORMAT),
    "yaml": FileFormat("YAML", "yaml.YAMLFile", True, "", "", _RUBY),
    "ruby-yaml": FileFormat("Ruby on Rails YAML", "yaml.RubyYAMLFile", True, "", "", _RUBY, (), "{lang}: {{}}\n"),
}
EXTENSIONS = {"xlf": "xliff", "xliff": "xliff", "ts": "ts", "po": "po", "xml": "android", "json": "json",
              "properties": "properties", "yml": "yaml", "yaml": "yaml"}
REVIEW = {  # what README's table says each format gets
    "xliff": 'state="needs-review-translation" approved="no", a translator note',
    "xliff2": 'segment state="initial" with its target (2.0 has no review state), a translator note',
    "ts": 'type="unfinished", a translator comment', "po": "fuzzy, a translator comment",
    "android": "an XML comment before the string (no state)", "properties": "a # comment (no state)",
    "json": "nothing (JSON has no comments)", "i18next": "nothing (JSON has no comments)",
    "yaml": "nothing", "ruby-yaml": "nothing",
}


def detect_format(path, name: str | None = None) -> str:
    """The format's name: `name` (--format), else by `path`'s extension; XLIFF 2.0 and Rails YAML (a file whose
    only top-level key is a locale, `en:`) by their content."""
    if name:
        if name not in FORMATS:
            raise ValueError(f"unknown --format {name!r}; choose one of {', '.join(FORMATS)}.")
        return name
    extension = Path(path).suffix.lower().lstrip(".")
    if extension not in EXTENSIONS:
        known = ", ".join(f".{e}" for e in EXTENSIONS)
        kind = f"{extension!r} files" if extension else "files without an extension"
        raise ValueError(f"{path}: translate-file does not read {kind}; it reads {known} (or pass --format "
                         f"{'|'.join(FORMATS)} when the name does not say the format).")
    found = EXTENSIONS[extension]
    if found == "xliff" and Path(path).is_file() and _XLIFF2.search(Path(path).read_bytes()[:4096]):
        return "xliff2"
    if found == "yaml" and is_locale(read_store(path, "ruby-yaml", "the file").gettargetlanguage()):
        return "ruby-yaml"
    return found


def is_locale(code: str | None) -> bool:
    try:
        return bool(code) and Locale.parse(code.replace("-", "_")) is not None
    except (UnknownLocaleError, ValueError):
        return False


def read_store(path, name: str, what: str):
    """The file at `path` parsed by `name`'s store class, or an error naming the file and what to do."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} {path} does not exist or is not a file.")
    fmt = FORMATS[name]
    try:
        return fmt.store_class().parsefile(str(path))
    except Exception as err:  # each parser raises its own (lxml, ruamel, json, ParseError): all mean a bad file
        raise ValueError(f"cannot read {what} {path} as {fmt.title} ({err}); fix the file, or pass --format if it "
                         f"is in another format. Nothing was written.") from None


def new_store(name: str, lang: str):
    """An empty file of the format for `lang`: Android's root declares the `xliff:` prefix of `<xliff:g>`, Rails
    YAML's root key is the language."""
    fmt = FORMATS[name]
    store = fmt.store_class().parsestring(fmt.new_file.format(lang=lang).encode()) if fmt.new_file else \
        fmt.store_class()()
    store.settargetlanguage(lang)
    return store


def mark_draft(unit, name: str, note: str) -> None:
    """Mark a filled unit as a draft for review, in the format's own way (`REVIEW`)."""
    review = FORMATS[name].review
    if review == "state":
        unit.markreviewneeded(True)
    elif review == "fuzzy":
        unit.markfuzzy(True)
    if review in ("state", "fuzzy"):
        unit.addnote(note, origin="translator")
    elif review == "comment":
        unit.addnote(f"# {note}" if name == "properties" else f" {note} ", origin="developer")
