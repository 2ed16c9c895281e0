"""gettext catalogs as files: read (checked line by line first), merged with their template as `msgmerge` does."""

import os
import re

import polib

# A line of entry syntax: a keyword and/or a quoted C string; `#~` (obsolete entry) and `#|` (previous msgid) lines
# hold the same after their mark. Other lines starting with `#` are comments.
_ENTRY_MARK = re.compile(r"#~\|?|#\|")
_ENTRY_LINE = re.compile(r'((domain|msgctxt|msgid|msgid_plural|msgstr(\[\d+\])?)\s+)?"([^"\\]|\\.)*"')


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
    """The catalog `msgmerge` would write: the template's entries in its order, each the existing `.po` entry when
    it has one (an obsolete one comes back) or a new empty one, then the obsolete `#~` entries: those already
    obsolete and those the template no longer has.

    Each entry takes what the program's source decides from the template through polib's own msgmerge step
    (`POEntry.merge`): references, `#.` comments, flags (`c-format`, which `msgfmt -c` checks by) and msgid_plural.
    What a person wrote stays exactly: msgstr, the fuzzy flag, `#` comments and `#|` previous msgids. A plural entry
    gets one msgstr per form of the language; an obsolete one keeps no references, as msgmerge writes it."""
    base = template if po is None else po  # (a POFile is a list: one with a header only is falsy)
    existing = {} if po is None else {(e.msgctxt, e.msgid): e for e in po}  # obsolete ones too
    merged = polib.POFile(wrapwidth=78, encoding="utf-8")
    merged.header, merged.metadata = base.header, dict(base.metadata)
    keys = set()
    for source in template:
        key = (source.msgctxt, source.msgid)
        if source.obsolete or not source.msgid or key in keys:
            continue
        keys.add(key)
        entry = existing.get(key) or polib.POEntry()
        previous = entry.previous_msgctxt, entry.previous_msgid, entry.previous_msgid_plural
        entry.merge(source)  # (takes the template's previous msgids, which a template has none of)
        entry.previous_msgctxt, entry.previous_msgid, entry.previous_msgid_plural = previous
        entry.occurrences, entry.flags = list(entry.occurrences), list(dict.fromkeys(entry.flags))  # fuzzy once
        if entry.msgid_plural:
            entry.msgstr_plural = {n: entry.msgstr_plural.get(n, "") for n in range(nplurals)}
        merged.append(entry)
    for key, entry in existing.items():
        if key not in keys and entry.msgid:
            entry.obsolete, entry.occurrences, entry.comment = True, [], ""
            merged.append(entry)
    return merged
