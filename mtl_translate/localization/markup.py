"""The parts of a msgid a translation must keep exactly that are not format placeholders: markup (`<b>`,
`<a href="...">`, `&amp;`, Qt's `&&`), leading/trailing whitespace and line breaks, and the access-key marker
(`_Open`, `&Open`, LibreOffice's `~Open`). They are taken out before the model reads the msgid and put back into its
output; a file format adds its own placeholders (Qt's `%1`, i18next's `{{name}}`) to what is kept verbatim. An
underscore or backslash the model writes where the msgid has none is taken out of it (GTK would read the one as an
access key, the program the other as an escape)."""

import re
from dataclasses import dataclass

from ..data.gettext import is_mnemonic_label
from ..placeholders import SPAN, restore
from ..segmentation import EDGES

_CJK = ("ja", "zh", "ko")  # access keys go after the word there: 開く(_O)
# Markup kept verbatim: a tag with attributes, a closing or self-closing tag, a void tag, or an opening tag whose
# closing tag is in the same text (so `<b>` in `<b>x</b>`, but not the metavariable `<file>`); entities; Qt's `&&`.
_TAG = re.compile(r"</?([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?)*)\s*(/?)>")
_VOID_TAGS = {"br", "hr", "img"}
_ENTITY = re.compile(r"&(?:[A-Za-z]\w*|#\d+|#x[0-9A-Fa-f]+);|&&")
_QT_MNEMONIC = re.compile(r"(?<!&)&(?=[^\W\d_])(?![A-Za-z]\w*;)")
_GTK_MNEMONIC = re.compile(r"_(?=[^\W\d_])")
_MNEMONICS = {"_": _GTK_MNEMONIC, "&": _QT_MNEMONIC, "~": re.compile(r"~(?=[^\W\d_])")}


@dataclass
class Source:
    """One msgid as the model gets it: without its surrounding whitespace and access-key marker, markup masked."""

    lead: str
    text: str  # the model's input; "" when there is nothing to translate (the msgid is copied)
    trail: str
    markup: list[str]  # the masked tags and entities, by index of their ⟨N⟩ token
    mnemonic: tuple[str, str] | None  # (marker "_", "&" or "~", the letter it marked)


def prepare(msgid: str, access_keys: str = "_&", protect: re.Pattern | None = None) -> Source:
    """Everything of a msgid that must come out unchanged is taken out of the model's hands first: the first marker
    of `access_keys` that marks a label here (`~` only where the format uses it: LibreOffice), and the markup and
    the spans of `protect` (a format's placeholders)."""
    lead, body, trail = EDGES.match(msgid).groups()
    mnemonic = None
    marker = next((m for m in access_keys if marks_access_key(body, m)), None)  # not in AT&T, R&D, user_name
    if marker:
        at = _MNEMONICS[marker].search(body).start()
        mnemonic, body = (marker, body[at + 1]), body[:at] + body[at + 1:]
    markup = []
    spans = markup_spans(body) + [re.escape(m[0]) for m in (protect.finditer(body) if protect else ())]
    if spans := sorted(set(spans), key=len, reverse=True):
        def token(match: re.Match) -> str:
            markup.append(match[0])
            return f"⟨{len(markup) - 1}⟩"

        body = re.sub("|".join(spans), token, body)
    words = SPAN.sub("", body)  # SPAN takes the ⟨N⟩ tokens too
    return Source(lead, body if any(c.isalpha() for c in words) else "", trail, markup, mnemonic)


def marks_access_key(body: str, marker: str) -> bool:
    """Whether the one `marker` of `body` is an access key, by GTK's rules for `_` (`is_mnemonic_label`)."""
    if marker == "_":
        return is_mnemonic_label(body)
    found = _MNEMONICS[marker].findall(body)
    return "_" not in body and len(found) == 1 and is_mnemonic_label(_MNEMONICS[marker].sub("_", body))


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
    for char in "_\\":  # an underscore or backslash the msgid lacks: an access key or an escape it has not
        if char not in source.text:
            text = re.sub(rf" *{re.escape(char)}+ *", " ", text).strip(" ")
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

