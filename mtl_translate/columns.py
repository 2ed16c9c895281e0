"""`--help` option tables: only the descriptions are translated; the option column stays byte-identical.

In `  -o, --output=FILE      write to FILE` a translator translates `write to FILE` and keeps the option names, their
indentation and the spaces that align the description column exactly (`--output=DATEI` aside, the program parses
none of it, but a misaligned table is a broken table). A model given the whole line rewrites all of it, so a msgid
with option lines is cut into blocks: each option line's description with its continuation lines (indented deeper,
as `grep --help` and `sed --help` write them) is translated as one text and wrapped again into as many lines at
the same indentation (reflowed, as translators do, but never into more or fewer lines), each other line is translated on its own, and what is not
text (option columns, blank lines, an option alone on its line: `--color[=WHEN],`) is copied. A msgid without
option lines is translated as before. The Translator applies this to every text it is given (`translate`,
`translate-po`, `translate-file`, the pipeline and the demo alike).
"""

import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .metavariables import realign, rename

# An option line: indentation, an option column that starts with an option (`-o`, `--all`, `-NUM`) and runs to the
# first gap of two or more blanks (or a tab), then the description, if the line has one.
_OPTION = re.compile(r"(?P<head>[ \t]*-(?:-[^\W_]|[^\W_-])\S*(?: \S+)*?)(?:(?P<gap>  [ \t]*|\t[ \t]*)(?P<desc>\S.*))?")
# A key line of a table of two or more (`sdiff`'s `el or e1:<TAB>Edit then use the left version.`): a short key ending
# in a colon, a tab, the description. The keys are what the program reads; translators keep them and the tab.
_KEY = re.compile(r"(?P<head>[ \t]*[^\s:][^\t:]{0,19}:)(?P<gap>\t[ \t]*)(?P<desc>\S.*)")
_INDENT = re.compile(r"[ \t]*")


@dataclass
class Block:
    """One piece of a msgid: `prefix` (copied), then `text` translated (nothing when empty), then `suffix`.

    A description with continuation lines (`indent` set) is wrapped into its `lines` lines, near `width` columns,
    its later lines at `indent`; other text stays on one line."""

    prefix: str
    text: str = ""
    suffix: str = ""
    indent: str | None = None
    width: int = 0
    lines: int = 1

    def render(self, translated: str, names: Mapping[str, str] | None = None) -> str:
        """The block with `translated` as its text and its metavariables' `names` ({FILE: DATEI}) translated."""
        prefix, translated = realign(self.prefix, names or {}), rename(translated, names or {})
        if not self.text:
            return prefix + self.suffix
        if self.indent is None:
            return prefix + translated + self.suffix
        lines = self.wrap(translated)
        column = len(self.prefix.rsplit("\n", 1)[-1])
        return "\n".join([prefix + lines[0][column:], *lines[1:]]) + self.suffix

    def wrap(self, translated: str) -> list[str]:
        """The translation in as many lines as the description had (the program prints the line breaks it is given,
        and pofilter's `newlines` check counts them), as close to `width` columns as that allows."""
        column = len(self.prefix.rsplit("\n", 1)[-1])

        def at(width: int) -> list[str]:
            return textwrap.wrap(translated, width, initial_indent=" " * column, subsequent_indent=self.indent,
                                 break_long_words=False, break_on_hyphens=False) or [" " * column]

        width, lines = self.width, at(self.width)
        step = 1 if len(lines) > self.lines else -1
        while len(lines) != self.lines and max(column, len(self.indent)) + 1 < width + step < 4 * self.width:
            width += step
            if (len(wider := at(width)) - self.lines) * step < 0:  # past the count: keep the nearer side
                break
            lines = wider
        return lines


def option_blocks(text: str) -> list[Block] | None:
    """The blocks of `text`, one or more lines each, joined by "\\n"; None when it has no option line (an option
    column followed by a description on its line or on deeper-indented lines below it) and no table of key lines."""
    lines, blocks, i, table = text.split("\n"), [], 0, False
    keys = sum(bool(_KEY.fullmatch(line)) for line in lines) > 1
    while i < len(lines):
        line, option = lines[i], _OPTION.fullmatch(lines[i]) or (keys and _KEY.fullmatch(lines[i])) or None
        depth = len(_INDENT.match(line)[0])
        follow = []  # its continuation lines
        while option and i + 1 + len(follow) < len(lines):
            nxt = lines[i + 1 + len(follow)]
            if not nxt.strip() or len(_INDENT.match(nxt)[0]) <= depth or _OPTION.fullmatch(nxt):
                break
            follow.append(nxt)
        if option and (option["desc"] or follow):
            table = True
            head = option["head"] + (option["gap"] or "")
            desc = [option["desc"]] if option["desc"] else []
            prefix = head if desc else f"{line}\n{_INDENT.match(follow[0])[0]}"
            blocks.append(Block(prefix, " ".join(desc + [f.strip() for f in follow]),
                                indent=_INDENT.match(follow[0])[0] if follow else None,
                                width=max(len(x) for x in [line, *follow]), lines=len(desc) + len(follow)))
        else:
            lead, body = _INDENT.match(line)[0], line.strip()
            blocks.append(Block(lead, body, line[len(lead) + len(body):]) if body and not option else Block(line))
        i += 1 + len(follow)
    return blocks if table else None


def in_columns(texts: Sequence[str], langs: Sequence[str], rows: Mapping[str, Sequence[bool]] | None,
               translate: Callable, metavariables: Mapping[str, Mapping[str, str]] | None = None,
               ) -> tuple[dict[str, list[str | None]], dict[str, list[float | None]] | None]:
    """`translate(parts, part_rows)` -> ({lang: [output]}, {lang: [confidence]} or None), applied to `texts` with
    each text that holds option lines sent as its blocks' texts (each distinct text once) and put together again.
    `rows` ({lang: [bool per text]}, a language absent or None: every text) as the Translator takes them. A text
    whose block got no output, or a blank one, gets that (None or ""), and the confidence of its least sure block.
    `metavariables` ({lang: {FILE: DATEI}}, metavariables.py) are translated in the option tables."""
    layouts = [option_blocks(text) for text in texts]
    if not any(layouts):
        return translate(list(texts), rows)
    wanted_in = {lang: [rows is None or lang not in rows or bool(rows[lang][i]) for i in range(len(texts))]
                 for lang in langs}
    parts = [[b.text for b in blocks if b.text] if blocks else [text] for text, blocks in zip(texts, layouts)]
    wanted = {}  # model input -> {lang}
    for i, inputs in enumerate(parts):
        for piece in inputs:
            wanted.setdefault(piece, set()).update(lang for lang in langs if wanted_in[lang][i])
    inputs = list(wanted)
    done, sure = translate(inputs, {lang: [lang in wanted[t] for t in inputs] for lang in langs}) if inputs \
        else ({lang: [] for lang in langs}, None)
    out, confidence = {}, ({} if sure is not None else None)
    for lang in langs:
        if confidence is not None:
            confidence[lang] = []
        by_input = dict(zip(inputs, done[lang]))
        sure_of = dict(zip(inputs, sure[lang])) if sure is not None else {}
        out[lang] = []
        for i, blocks in enumerate(layouts):
            got = [by_input[piece] for piece in parts[i]]
            if not wanted_in[lang][i] or None in got:
                out[lang].append(None)
            elif not blocks:
                out[lang].append(got[0])
            elif not all(g.strip() for g in got):
                out[lang].append("")
            else:
                translated = iter(got)
                names = (metavariables or {}).get(lang)
                out[lang].append("\n".join(b.render(next(translated).strip() if b.text else "", names)
                                           for b in blocks))
            if confidence is not None:
                known = [c for piece in parts[i] if (c := sure_of[piece]) is not None]
                confidence[lang].append(min(known) if out[lang][-1] is not None and known else None)
    return out, confidence
