"""Long inputs are translated piece by piece instead of being cut at `max_source_length`.

A model trained on short strings cannot translate a whole `--help` screen in one go, and truncation would drop
most of it. So a text is split into lines (each keeps its indentation and line break), and a line that is still
too long into sentences (after `.`, `!`, `?`, `;`, `:`) and option items (`-a, --all ...` of a collapsed option
table); adjacent pieces are merged again as long as they fit, so a text that fits is never split. The pieces are
translated as separate inputs and joined with the separators they had.
"""

import re
from collections.abc import Callable

_LINE = re.compile(r"(\r?\n)")
EDGES = re.compile(r"^(\s*)(.*?)(\s*)$", re.S)  # (leading blanks, text, trailing blanks)
# After sentence punctuation, or before an option item ("-a, --all", "--size=SIZE", "-n NUM"): a break point.
_BREAK = re.compile(r"(?<=[.!?;:])\s+(?=\S)|(?<!,)\s+(?=--?[A-Za-z][\w-]*(?:[,=\[]|\s))")


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
            for j, piece in enumerate(split_line(body, fits)):
                if j:
                    glue.append(" ")
                pieces.append(piece)
            glue.append("")
        glue[-1] += trail
    return pieces, glue


def split_line(line: str, fits: Callable[[str], bool]) -> list[str]:
    """One line -> as few pieces as fit, cut only at break points."""
    if fits(line):
        return [line]
    pieces = []
    for chunk in _BREAK.split(line):
        if pieces and fits(f"{pieces[-1]} {chunk}"):
            pieces[-1] = f"{pieces[-1]} {chunk}"
        else:
            pieces.append(chunk)
    return pieces


def join_pieces(pieces: list[str], glue: list[str]) -> str:
    """The inverse of `split_text`, with translated pieces."""
    return glue[0] + "".join(piece + sep for piece, sep in zip(pieces, glue[1:]))
