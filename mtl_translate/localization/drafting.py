"""From the model's output to a translation a program can load, or the reason there is none.

Shared by `translate-po` and `translate-file`: whatever the file format, a draft is written only when every form
keeps its source's markup, protected spans, format placeholders and glossary terms, and the model is sure enough;
otherwise the unit stays untranslated and is counted, so that a reviewer never meets a translation that breaks the
program. The note written with a draft names the model and its confidence (exp of the mean token log-probability,
`Translator.translate(return_confidence=True)`), so a reviewer can start with the least sure units.
"""

from collections.abc import Mapping, Sequence

from ..placeholders import follow_format, is_date_format, placeholder_signature
from .glossary import missing_terms
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


def review(forms: Sequence[tuple[str, Source, str | None]], lang: str, flags: Sequence[str], msgid: str,
           terms: Mapping[str, Mapping[str, str]] | None = None, confidence: float | None = None,
           min_confidence: float | None = None) -> tuple[str, list[str]]:
    """`draft`, then "mismatch" where a form lost one of its source's glossary `terms` (the model's input is
    `Source.text`, where the terms are) and "unsure" where `confidence` is below `min_confidence`."""
    status, texts = draft(forms, lang, flags, msgid)
    if status == "filled" and any(missing_terms(source.text, text, lang, terms)
                                  for text, (_, source, _) in zip(texts, forms)):
        return "mismatch", []
    if status == "filled" and min_confidence is not None and confidence is not None and confidence < min_confidence:
        return "unsure", []
    return status, texts


def check_min_confidence(min_confidence: float | None) -> None:
    if min_confidence is not None and (isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float))
                                       or not 0 <= min_confidence <= 1):
        raise ValueError(f"min_confidence must be a number from 0 to 1 (a confidence is exp of the mean token "
                         f"log-probability), got {min_confidence!r}.")


def least_sure(confidences: Sequence[float | None]) -> float | None:
    """A unit's confidence: that of its least sure form (None: no form went through the model)."""
    known = [c for c in confidences if c is not None]
    return min(known) if known else None


def machine_note(model_name: str, confidence: float | None) -> str:
    """The note a machine translation is written with: `machine translation by acme/mtl-ui, confidence 0.87`."""
    return f"machine translation by {model_name}" + ("" if confidence is None else f", confidence {confidence:.2f}")
