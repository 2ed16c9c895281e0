r"""Spans of software strings that must come out of translation unchanged, and their mask tokens.

Placeholders (`%s`, `%1$d`, `%(name)s`, `{0}`), option names (`--help`, `-a`, `-T0`), paths, file names,
environment variables, URLs and e-mail addresses (with their `<>`, which catalogs keep, as they keep the `<>` of
`<%s>`), numbers (`1,048,576` too), backslash escapes (`\(`, `\{\}`, a lone `\`), tabs, function names (`exec()`)
and identifiers (`INT_MAX`, `safe_read`, `SIGUSR1`, `x86`: an underscore or a digit in a word) are replaced by mask
tokens `⟨0⟩`, `⟨1⟩`, ... before the model sees a text (training sources and targets alike), and put back afterwards:
translators keep 92-98 % of each of these kinds as they are in the gettext corpus, and pofilter's escapes, tabs,
xmltags, functions, numbers and accelerators checks fail a translation that does not. Upper-case metavariables
(`FILE` in `--output=FILE`, `[SKIP1]`, `<N>`) are left to the model: catalogs translate them (`--output=DATEI`).

`⟨N⟩` (U+27E8/U+27E9) never occurs in the gettext catalogs, the encoder's uncased WordPiece keeps it as three known
pieces (`⟨`, `N`, `⟩`, no `[UNK]`), and the target SentencePiece models hold each token as one piece
(`TargetTokenizer.train`). One index per occurrence, in source order: a translation that reorders
(`%2$s von %1$s`) keeps each conversion's argument, and two `%s` must come out twice.
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence

MAX_SPANS = 16  # spans after the 16th stay as text (0.1% of the gettext sources have more)
MASK_TOKENS = tuple(f"⟨{i}⟩" for i in range(MAX_SPANS))

# printf (%s, %1$d, %-5.2lf, %%, %m), python (%(name)s) and brace ({0}, {name}, {:>5}) placeholders. No space flag:
# "100% done" holds no "% d". Brace fields with an upper-case name ({HEXNUMBER}) are metavariables.
FORMAT_PLACEHOLDER = re.compile(
    r"%\([^()]*\)[-+#0]*\d*(?:\.\d+)?[a-zA-Z]"
    r"|%(?:\d+\$)?[-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcspnm%]"
    r"|\{(?![A-Z][A-Z0-9_-]+\})[^{}\s]*\}"
)
_STRFTIME = r"%[EO]?[bBCDGhHIjklMPrRSTuUVwWyYzZ+]"  # %H:%M: a date format, whose directives take no argument
_EXTENSIONS = ("c|h|cc|cpp|py|pl|rb|sh|js|json|xml|html?|css|txt|md|rst|conf|cfg|ini|log|mo|po|pot|gz|bz2|xz|zst|"
               "lzma?|tar|tgz|zip|deb|rpm|so|dll|exe|iso|img|pdf|png|jpe?g|gif|svg|ps|tex|desktop|service|o")
_SCHEME, _EMAIL = r"(?:https?|ftps?|file)://", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
SPAN = re.compile("|".join([
    r"⟨\s*\d+\s*⟩",  # what reads as a mask token in the text itself: kept as it is
    rf"<(?:{_SCHEME}[^\s<>\"']+|{_EMAIL}|{FORMAT_PLACEHOLDER.pattern})>",  # URL, e-mail or placeholder in <>
    _SCHEME + r"[^\s<>\"'«»“”]*[^\s<>\"'«»“”.,;:!?)\]]|www\.[\w-]+(?:\.[\w-]+)+",  # URL
    r"(?<![\w.+-])" + _EMAIL,  # e-mail
    FORMAT_PLACEHOLDER.pattern,
    _STRFTIME,
    r"%[<>=@]|%[A-Za-z](?![A-Za-z])|%(?:\[[^\]\s]*\])+\S*|%\([^()\s]*\)",  # any other directive: diff's %<, %L,
    # %[-][WIDTH][.[PREC]]{doxX}n, %(A=B?T:E); pofilter's printf check reads every %letter as one
    r"(?:\\+(?:[a-zA-Z](?![a-zA-Z])|[^\s\w%'\"`‘’“”«»])?)+",  # escapes: \n, \{\}, \\; a lone \ (before %c, a quote)
    r"\t+",
    r"\$\{\w+\}|\$[A-Za-z_]\w*",  # environment variable
    r"(?<![\w.])[A-Za-z_]\w*\(\)",  # function name
    r"(?<![\w=\[<.-])[A-Za-z]+(?:[A-Za-z0-9]*_[A-Za-z0-9]+)+(?![\w-]|\.\w)",  # identifier: INT_MAX, safe_read
    r"(?<![\w=\[<.-])[A-Za-z]+\d[A-Za-z0-9]*(?![\w-]|\.\w)",  # word with a digit: SIGUSR1, x86, GPLv3
    r"(?<![\w-])--[a-zA-Z0-9](?:[\w-]*\w)?",  # long option; its =VALUE stays text
    r"(?<![\w-])-[a-zA-Z]\d*(?![\w-])",  # short option (-a, -T0), not inside built-in, not -5
    r"(?<![^\s(\[|])-(?![A-Z0-9_-]+\b)[a-zA-Z][\w-]*\w",  # one-dash long option (-name, -fPIC), not -WIDTH
    r"(?<![\w.~/-])(?:~|\.\.?)?(?:/\.?[\w+@-]+(?:\.[\w+@-]+)*)+/?",  # path
    rf"(?<![\w.-])(?![A-Z]+\.)[\w-]+(?:\.[\w-]+)*\.(?:{_EXTENSIONS})(?![\w-]|\.\w)",  # file name, not FILE.po
    r"(?<![\w.])\.[a-zA-Z]\w*(?:\.\w+)*",  # dot file or directive (.bashrc, .text)
    r"(?<![\w.])-?(?:0[xX][0-9a-fA-F]+|\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)*)(?![\w.]*\w)",  # number, not 1.5x
]))
_TOKEN = re.compile(r"(\s*)⟨\s*(\d+)\s*⟩")  # as a decoder may emit it: "⟨ 3 ⟩", with the spaces before it
# Conversions that take the next argument: a translation that reorders them must number them (%2$s, {1}).
_SEQUENTIAL = {"printf": re.compile(r"%[-+#0']*\d*(?:\.\d+)?(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcspn]"),
               "brace": re.compile(r"\{(?:[:!][^{}]*)?\}")}
# Sources whose conversions are never renumbered: they number them already (%1$s, {0}), take a width argument (%*d),
# or are date formats (%a %H:%M).
_UNRANKED = {"printf": re.compile(rf"%(?:\d+\$|[^a-zA-Z]*\*).*|{_STRFTIME}"), "brace": re.compile(r"\{\d.*")}
_PRINTF_ARGUMENT = re.compile(r"%(?:(\d+)\$)?([-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t)?"
                              r"[diouxXeEfFgGaAcspn])")

# What a reordering translation may do with the unnumbered conversions of each kind, by the entry's gettext format
# flag: C (and PHP, Objective-C) take `%2$s`; Python's `%` cannot (only `%(name)s` may move, so positional ones keep
# the source's order); str.format takes `{1}`; a date format's directives (`%A, %d`) are no arguments and go where
# the translation puts them. An entry without a flag keeps `restore`'s numbering unless it is a date format.
_NUMBERED_BY = {"c-format": "printf", "objc-format": "printf", "php-format": "printf", "python-brace-format": "brace"}
_BRACE_ARGUMENT = re.compile(r"\{(\d+)?([:!][^{}]*)?\}")  # {}, {0}, {:>5}, {1!r}; not {name}
_DATE_DIRECTIVE = re.compile(r"%[EO]?[aAbBcdeHIjmMpSUwWxXyYZ%]")  # a date format's msgid holds only these


def term_pattern(terms: Iterable[str]) -> re.Pattern:
    """Whole-word, case-sensitive occurrences of `terms` (a glossary's), longest first: `GNU sed` before `GNU`, and
    not `sed` inside `used` or `sed_x`."""
    alternatives = "|".join(map(re.escape, sorted(set(terms), key=len, reverse=True)))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def mask(text: str, terms: re.Pattern | None = None) -> tuple[str, list[str]]:
    """`text` with its first `MAX_SPANS` protected spans replaced by `⟨0⟩`, `⟨1⟩`, ... and those spans in order.
    `terms` (`term_pattern`) are masked too, before any other span that starts at the same place."""
    pattern = SPAN if terms is None else re.compile(f"{terms.pattern}|{SPAN.pattern}")
    spans = []

    def token(match: re.Match) -> str:
        if len(spans) == MAX_SPANS:
            return match[0]
        spans.append(match[0])
        return f"⟨{len(spans) - 1}⟩"

    return pattern.sub(token, text), spans


def mask_target(target: str, spans: Sequence[str]) -> tuple[str, int]:
    """A translation of a masked source, masked with the source's spans; and how many spans it lacks.

    Each span's occurrence anywhere in `target` takes the span's index (each occurrence and each index used
    once; longer spans first, so `--output` is not found inside `--output-file`). A number or option must not
    continue a word (`64` in `Base64`) but may start a compound (`.deb-Datei`). A numbered conversion (`%2$s`,
    `{1}`) stands for the source's unnumbered one of that rank."""
    ranks = _ranks(spans)
    candidates = [(span, i) for i, span in enumerate(spans)]
    candidates += [(_numbered(spans[i], kind, rank), i) for i, (kind, rank) in ranks.items()]
    taken, used = {}, set()  # start -> (end, index)
    for literal, i in sorted(candidates, key=lambda c: -len(c[0])):
        for match in re.finditer(_literal_pattern(literal), target):
            if i in used:
                break
            if not any(s < match.end() and match.start() < e for s, (e, _) in taken.items()):
                taken[match.start()] = (match.end(), i)
                used.add(i)
    out, end = [], 0
    for start in sorted(taken):
        out += [target[end:start], f"⟨{taken[start][1]}⟩"]
        end = taken[start][0]
    return "".join(out) + target[end:], len(spans) - len(used)


def restore(text: str, spans: Sequence[str], source: str | None = None) -> tuple[str, int]:
    """Mask tokens -> their spans; and how many spans were lost (their token is not in `text`).

    An index the source does not have, or a second copy of one, is dropped with the spaces before it.
    Unnumbered conversions that come out in another order than the source's are numbered (`%2$s ... %1$s`), so
    each still takes its own argument. With the masked `source`, a span the source sets apart by a blank is set
    apart where the model glued it to a word or to the span before it (`de lapoll()`, `FILE1FILE2`)."""
    found = [int(m[2]) for m in _TOKEN.finditer(text) if int(m[2]) < len(spans)]
    order = list(dict.fromkeys(found))
    ranks = _ranks(spans)
    plain = SPAN.findall(_TOKEN.sub(" ", text))  # spans the decoder wrote as text
    renumber = set()
    for kind in _SEQUENTIAL:
        kept = [i for i in order if ranks.get(i, ("",))[0] == kind]
        if kept != sorted(kept) and not any(_SEQUENTIAL[kind].fullmatch(_conversion(s)) for s in plain):
            renumber.update(kept)
    seen, apart = set(), _set_apart(source) if source else {}

    def span(match: re.Match) -> str:
        i = int(match[2])
        if i >= len(spans) or i in seen:
            return ""
        seen.add(i)
        before, after = apart.get(i, (False, False))
        glued_before = not match[1] and match.start() > 0 and (_in_word(text[match.start() - 1]) or
                                                                text[match.start() - 1] == "⟩")
        glued_after = match.end() < len(text) and _in_word(text[match.end()])
        return (match[1] + " " * (before and glued_before) + (_numbered(spans[i], *ranks[i]) if i in renumber
                                                               else spans[i]) + " " * (after and glued_after))

    return _TOKEN.sub(span, text), len(spans) - len(order)


def _set_apart(masked: str) -> dict[int, tuple[bool, bool]]:
    """{index: (a blank or the start before its token, a blank or the end after it)} of a masked source."""
    return {int(m[1]): (m.start() == 0 or masked[m.start() - 1].isspace(),
                        m.end() == len(masked) or masked[m.end()].isspace()) for m in re.finditer(r"⟨(\d+)⟩", masked)}


def _in_word(char: str) -> bool:
    """A letter or digit of a script that sets words apart by blanks (not Chinese or Japanese)."""
    return char.isalnum() and not "\u3000" <= char <= "\u9fff"


def in_source_order(spans: Sequence[str]) -> list[bool]:
    """Which spans are conversions that take the next argument (`%s`, `{}`): decoding keeps them in source order
    (generation.MaskGuard), so that a translation never needs `%2$s ... %1$s`."""
    ranks = _ranks(spans)
    return [i in ranks for i in range(len(spans))]


def placeholder_signature(text: str, date: bool = False) -> tuple[Counter, dict[tuple[str, int], str]]:
    """What `msgfmt -c` compares: conversions by argument position (`%2$s` is the second argument's `s`, `{1}` the
    second `{}`), and the other format placeholders (`%(name)s`, `{name}`, `%%`) as a multiset; in a date format
    (`date`) every directive is one of the multiset, as it takes no argument."""
    others, arguments, position = Counter(), {}, {"%": 0, "{": 0}
    for found in FORMAT_PLACEHOLDER.findall(text):
        match = _PRINTF_ARGUMENT.fullmatch(found) or _BRACE_ARGUMENT.fullmatch(found)
        kind = found[0]
        if match is None or date and kind == "%":
            others[found] += 1
        elif match[1]:
            arguments[kind, int(match[1]) - (kind == "%")] = match[2]
        else:
            arguments[kind, position[kind]], position[kind] = match[2], position[kind] + 1
    return others, arguments



def follow_format(text: str, msgid: str, flags: Sequence[str]) -> str:
    """A restored translation of `msgid` whose conversions are numbered only where the entry's format allows it
    (`_NUMBERED_BY`); where it does not, a python-format entry gets the source's conversions in the source's order,
    a date format (`no-c-format`, or no format flag and only strftime directives) each where the model put it."""
    formats = [flag for flag in flags if flag.endswith("-format")]
    date = is_date_format(msgid, flags)
    if not formats and not date:
        return text
    spans = mask(msgid)[1]
    for kind in set(_SEQUENTIAL) - {_NUMBERED_BY.get(flag) for flag in formats}:
        plain = [spans[i] for i, (k, _) in sorted(_ranks(spans).items()) if k == kind]
        numbered = {_numbered(span, kind, rank): span for rank, span in enumerate(plain)}
        if not any(n in text for n in numbered):
            continue
        found = re.compile("|".join(sorted(map(re.escape, {*numbered, *plain}), key=len, reverse=True)))
        if date:
            text = found.sub(lambda m: numbered.get(m[0], m[0]), text)
        elif len(found.findall(text)) == len(plain):
            source_order = iter(plain)
            text = found.sub(lambda m: next(source_order), text)
    return text


def is_date_format(msgid: str, flags: Sequence[str]) -> bool:
    """A strftime format, whose directives are no arguments: flagged `no-c-format`, or without a format flag and
    with only directives that strftime knows (`%A, %d`; `%d of %d` too, which is then no longer renumbered)."""
    printf = [p for p in FORMAT_PLACEHOLDER.findall(msgid) if p.startswith("%")]
    return "no-c-format" in flags or (not any(flag.endswith("-format") for flag in flags) and bool(printf)
                                      and all(_DATE_DIRECTIVE.fullmatch(p) for p in printf))


def mask_rows(rows: Sequence[dict], source_lang: str) -> tuple[list[dict], int, dict[str, int]]:
    """Training rows (`translation` dicts) with the source and every present target masked alike; the number of
    rows with protected spans, and per language the targets that lack one of their source's spans (kept)."""
    out, protected, missing = [], 0, {}
    for row in rows:
        source, spans = mask(row[source_lang])
        masked = {source_lang: source}
        for lang, target in row.items():
            if lang == source_lang:
                continue
            missing.setdefault(lang, 0)
            if target:
                target, lost = mask_target(target, spans)
                missing[lang] += lost > 0
            masked[lang] = target
        out.append(masked)
        protected += bool(spans)
    return out, protected, missing


def unknown_mask_tokens(tokenizer) -> list[str]:
    """The mask tokens a (source) tokenizer cannot represent: their index would be lost as an unknown token."""
    unk = getattr(tokenizer, "unk_token", None)
    return [token for token in MASK_TOKENS if unk in tokenizer.tokenize(token)]


def _ranks(spans: Sequence[str]) -> dict[int, tuple[str, int]]:
    """{index: (kind, rank)} of the conversions that take the next argument, for each kind used only that way."""
    ranks = {}
    for kind, pattern in _SEQUENTIAL.items():
        if any(_UNRANKED[kind].fullmatch(_conversion(s)) for s in spans):
            continue
        sequential = [i for i, s in enumerate(spans) if pattern.fullmatch(_conversion(s))]
        ranks.update({i: (kind, rank) for rank, i in enumerate(sequential)})
    return ranks


def _numbered(span: str, kind: str, rank: int) -> str:
    conversion = _conversion(span)
    numbered = f"%{rank + 1}${conversion[1:]}" if kind == "printf" else f"{{{rank}{conversion[1:]}"
    return span.replace(conversion, numbered, 1)


def _conversion(span: str) -> str:
    """The conversion of a span: `%s` of `<%s>` (one span, as catalogs keep the brackets), else the span itself."""
    return span[1:-1] if span[0] == "<" and span[-1] == ">" else span


def _literal_pattern(literal: str) -> str:
    """`literal`, not continuing a word where it starts or ends with a letter or digit (a format placeholder may
    be followed by anything: `%dx%d`)."""
    head = r"(?<!\w)" if literal[0].isalnum() else ""
    tail = r"(?!\w)" if literal[-1].isalnum() and not FORMAT_PLACEHOLDER.fullmatch(literal) else ""
    return head + re.escape(literal) + tail
