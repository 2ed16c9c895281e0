"""The parts of a msgid a translation must keep exactly that are not format placeholders: markup (`<b>`,
`<a href="...">`, `&amp;`, Qt's `&&`), leading/trailing whitespace and line breaks, and the access-key marker
(`_Open`, `&Open`). They are taken out before the model reads the msgid and put back into its output; an
underscore or backslash the model writes where the msgid has none is taken out of it (GTK would read the one as
an access key, the program the other as an escape)."""

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

