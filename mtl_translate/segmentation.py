"""Long inputs are translated piece by piece instead of being cut at `max_source_length`.

A model trained on short strings cannot translate a whole `--help` screen in one go, and truncation would drop
most of it. So a text is split into lines (each keeps its indentation and line break), and a line that is still
too long into sentences (after `.`, `!`, `?`, `;`, `:`) and option items (`-a, --all ...` of a collapsed option
table); adjacent pieces are merged again as long as they fit, so a text that fits is never split. The pieces are
translated as separate inputs and joined with the separators they had, as written (two spaces after a sentence,
a tab, the spaces aligning an option column).
"""

import re
from collections.abc import Callable

_LINE = re.compile(r"(\r?\n)")
EDGES = re.compile(r"^(\s*)(.*?)(\s*)$", re.S)  # (leading blanks, text, trailing blanks)
# After sentence punctuation, or before an option item ("-a, --all", "--size=SIZE", "-n NUM"): a break point, whose
# whitespace is the one group that matched.
_BREAK = re.compile(r"(?<=[.!?;:])(\s+)(?=\S)|(?<!,)(\s+)(?=--?[A-Za-z][\w-]*(?:[,=\[]|\s))")


def split_text(text: str, fits: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """(pieces, glue): `text == glue[0] + pieces[0] + glue[1] + ... + pieces[-1] + glue[-1]`, every piece non-blank.

    `fits(piece)` says whether a piece is short enough for the model; pieces that cannot be split further are kept
    as they are (and truncated by the tokenizer)."""
    pieces, glue = [], [""]
    for i, part in enumerate(_LINE.split(text)):
        if i % 2:  # a line break
            glue[-1] += part
            continue
        lead, body, trail = EDGES.match(part).groups()
        glue[-1] += lead
        if body:
            line_pieces, gaps = split_line(body, fits)
            pieces += line_pieces
            glue += [*gaps, ""]
        glue[-1] += trail
    return pieces, glue


def split_line(line: str, fits: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """One line -> as few pieces as fit, cut only at break points; and the whitespace between them, as written."""
    if fits(line):
        return [line], []
    parts = _BREAK.split(line)  # chunk, (sentence gap, option gap), chunk, ...: one gap of each pair is None
    chunks, gaps = parts[::3], [a or b for a, b in zip(parts[1::3], parts[2::3])]
    pieces, kept = [chunks[0]], []
    for gap, chunk in zip(gaps, chunks[1:]):
        if fits(pieces[-1] + gap + chunk):
            pieces[-1] += gap + chunk
        else:
            pieces.append(chunk)
            kept.append(gap)
    return pieces, kept


def join_pieces(pieces: list[str], glue: list[str]) -> str:
    """The inverse of `split_text`, with translated pieces."""
    return glue[0] + "".join(piece + sep for piece, sep in zip(pieces, glue[1:]))


_BLANKS = re.compile(r"\s+")


def keep_layout(output: str, source: str) -> str:
    """The output of one line (every model input is one: `split_text`) as a line: no line break, no blank run that
    its source lacks, no blanks at its ends. Target vocabularies keep whitespace as written (column padding, line
    breaks), and a small model otherwise pads or breaks a line where its source does neither."""
    runs = set(_BLANKS.findall(source))
    return _BLANKS.sub(lambda m: m[0] if len(m[0]) == 1 and m[0] != "\n" or m[0] in runs else " ", output).strip()
