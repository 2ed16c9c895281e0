"""Spans of software strings that must come out of translation unchanged, and their mask tokens.

Placeholders (`%s`, `%1$d`, `%(name)s`, `{0}`), option names (`--help`, `-a`), paths, file names, environment
variables, URLs and e-mail addresses (with their `<>`, which catalogs keep) and numbers are replaced by mask tokens
`⟨0⟩`, `⟨1⟩`, ... before the model sees a text (training sources and targets alike), and put back afterwards.
Upper-case metavariables (`FILE` in `--output=FILE`, `<N>`) are left to the model: catalogs translate them
(`--output=DATEI`).

`⟨N⟩` (U+27E8/U+27E9) never occurs in the gettext catalogs, the encoder's uncased WordPiece keeps it as three known
pieces (`⟨`, `N`, `⟩`, no `[UNK]`), and the target SentencePiece models hold each token as one piece
(`TargetTokenizer.train`). One index per occurrence, in source order: a translation that reorders
(`%2$s von %1$s`) keeps each conversion's argument, and two `%s` must come out twice.
"""

import re
from collections import Counter
from collections.abc import Sequence

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
    rf"<(?:{_SCHEME}[^\s<>\"']+|{_EMAIL})>",  # URL or e-mail in <>
    _SCHEME + r"[^\s<>\"'«»“”]*[^\s<>\"'«»“”.,;:!?)\]]|www\.[\w-]+(?:\.[\w-]+)+",  # URL
    r"(?<![\w.+-])" + _EMAIL,  # e-mail
    FORMAT_PLACEHOLDER.pattern,
    _STRFTIME,
    r"\$\{\w+\}|\$[A-Za-z_]\w*",  # environment variable
    r"(?<![\w-])--[a-zA-Z0-9](?:[\w-]*\w)?",  # long option; its =VALUE stays text
    r"(?<![\w-])-[a-zA-Z](?![\w-])",  # short option, not inside built-in, not -5
    r"(?<![^\s(\[|])-(?![A-Z0-9_-]+\b)[a-zA-Z][\w-]*\w",  # one-dash long option (-name, -fPIC), not -WIDTH
    r"(?<![\w.~/-])(?:~|\.\.?)?(?:/\.?[\w+@-]+(?:\.[\w+@-]+)*)+/?",  # path
    rf"(?<![\w.-])(?![A-Z]+\.)[\w-]+(?:\.[\w-]+)*\.(?:{_EXTENSIONS})(?![\w-]|\.\w)",  # file name, not FILE.po
    r"(?<![\w.])\.[a-zA-Z]\w*(?:\.\w+)*",  # dot file or directive (.bashrc, .text)
    r"(?<![\w.])-?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d+)*)(?![\w.]*\w)",  # number, not in x86 or 1.5x
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


def mask(text: str) -> tuple[str, list[str]]:
    """`text` with its first `MAX_SPANS` protected spans replaced by `⟨0⟩`, `⟨1⟩`, ... and those spans in order."""
    spans = []

    def token(match: re.Match) -> str:
        if len(spans) == MAX_SPANS:
            return match[0]
        spans.append(match[0])
        return f"⟨{len(spans) - 1}⟩"

    return SPAN.sub(token, text), spans


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


def restore(text: str, spans: Sequence[str]) -> tuple[str, int]:
    """Mask tokens -> their spans; and how many spans were lost (their token is not in `text`).

    An index the source does not have, or a second copy of one, is dropped with the spaces before it.
    Unnumbered conversions that come out in another order than the source's are numbered (`%2$s ... %1$s`), so
    each still takes its own argument."""
    found = [int(m[2]) for m in _TOKEN.finditer(text) if int(m[2]) < len(spans)]
    order = list(dict.fromkeys(found))
    ranks = _ranks(spans)
    plain = SPAN.findall(_TOKEN.sub(" ", text))  # spans the decoder wrote as text
    renumber = set()
    for kind in _SEQUENTIAL:
        kept = [i for i in order if ranks.get(i, ("",))[0] == kind]
        if kept != sorted(kept) and not any(_SEQUENTIAL[kind].fullmatch(s) for s in plain):
            renumber.update(kept)
    seen = set()

    def span(match: re.Match) -> str:
        i = int(match[2])
        if i >= len(spans) or i in seen:
            return ""
        seen.add(i)
        return match[1] + (_numbered(spans[i], *ranks[i]) if i in renumber else spans[i])

    return _TOKEN.sub(span, text), len(spans) - len(order)


def placeholder_signature(text: str) -> tuple[Counter, dict[int, str]]:
    """What `msgfmt -c` compares: printf conversions by argument position (`%2$s` is the second argument's `s`),
    and the other format placeholders (`%(name)s`, `{0}`, `%%`) as a multiset."""
    others, arguments, position = Counter(), {}, 0
    for found in FORMAT_PLACEHOLDER.findall(text):
        match = _PRINTF_ARGUMENT.fullmatch(found)
        if match is None:
            others[found] += 1
        elif match[1]:
            arguments[int(match[1]) - 1] = match[2]
        else:
            arguments[position], position = match[2], position + 1
    return others, arguments



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
        if any(_UNRANKED[kind].fullmatch(s) for s in spans):
            continue
        sequential = [i for i, s in enumerate(spans) if pattern.fullmatch(s)]
        ranks.update({i: (kind, rank) for rank, i in enumerate(sequential)})
    return ranks


def _numbered(span: str, kind: str, rank: int) -> str:
    return f"%{rank + 1}${span[1:]}" if kind == "printf" else f"{{{rank}{span[1:]}"


def _literal_pattern(literal: str) -> str:
    """`literal`, not continuing a word where it starts or ends with a letter or digit (a format placeholder may
    be followed by anything: `%dx%d`)."""
    head = r"(?<!\w)" if literal[0].isalnum() else ""
    tail = r"(?!\w)" if literal[-1].isalnum() and not FORMAT_PLACEHOLDER.fullmatch(literal) else ""
    return head + re.escape(literal) + tail
