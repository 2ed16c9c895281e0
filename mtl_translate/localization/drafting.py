"""From the model's output to a translation a program can load, or the reason there is none.

Shared by `translate-po` and `translate-file`: whatever the file format, a draft is written only when every form
keeps its source's markup, protected spans and format placeholders; otherwise the unit stays untranslated and is
counted, so that a reviewer never meets a translation that breaks the program.
"""

from collections.abc import Sequence

from ..placeholders import follow_format, is_date_format, placeholder_signature
from .markup import Source, finish


def draft(forms: Sequence[tuple[str, Source, str | None]], lang: str, flags: Sequence[str],
          msgid: str) -> tuple[str, list[str]]:
    """("filled", one translation per form) or ("mismatch" | "empty", []): `forms` are (source text, its Source, the
    model's output); `flags` the unit's gettext format flags (`c-format`, ...), `msgid` its first source text (which
    decides whether it is a date format)."""
    texts = [finish(source, text, output, lang) for text, source, output in forms]
    texts = [text and follow_format(text, source, flags) for text, (source, _, _) in zip(texts, forms)]
    if any(text is None and not (output or "").strip() for text, (_, _, output) in zip(texts, forms)):
        return "empty", []
    date = is_date_format(msgid, flags)
    if any(text is None or placeholder_signature(text, date) != placeholder_signature(source, date)
           for text, (source, _, _) in zip(texts, forms)):
        return "mismatch", []
    return "filled", texts
