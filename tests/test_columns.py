"""`--help` option tables (translate, translate-po): only descriptions reach the model; option columns come out
byte-identical."""

import shutil
import subprocess
from pathlib import Path

import polib
import pytest
import torch

from mtl_translate.localization import translate_po
from mtl_translate.columns import in_columns, option_blocks
from mtl_translate.metavariables import realign
from mtl_translate import MTLTranslationModel, Translator
from mtl_translate.placeholders import SPAN
from tests.conftest import tiny_config
from tests.test_placeholders import masked_tokenizer  # noqa: F401 (a fixture)

# Real msgids (grep 3.x, sed 4.9, diffutils 3.x templates, as `msgunfmt` prints them).
GREP_CONTEXT = ("\nContext control:\n  -B, --before-context=NUM  print NUM lines of leading context\n"
                "  -A, --after-context=NUM   print NUM lines of trailing context\n"
                "  -C, --context=NUM         print NUM lines of output context\n")
GREP_COLOR = ("  -NUM                      same as --context=NUM\n"
              "      --group-separator=SEP  print SEP on line between matches with context\n"
              "      --color[=WHEN],\n      --colour[=WHEN]       use markers to highlight the matching strings;\n"
              "                            WHEN is 'always', 'never', or 'auto'\n"
              "  -U, --binary              do not strip CR characters at EOL (MSDOS/Windows)\n\n")
SED_REGEXP = ("  -E, -r, --regexp-extended\n                 use extended regular expressions in the script\n"
              "                 (for portability use POSIX -E).\n")
DIFF_BINARY = "    --binary                    read and write data in binary mode"
DIFF_COLOR = ("    --color[=WHEN]       color output; WHEN is 'never', 'always', or 'auto';\n"
              "                           plain --color means --color='auto'")
PLAIN = ["Usage: %s [OPTION]... PATTERNS [FILE]...\n", "-n: invalid number", "--%s argument %s too large"]
OPTION_COLUMNS = {  # msgid -> the line starts a translation must keep byte-identical, in order
    GREP_CONTEXT: ["", "  -B, --before-context=NUM  ", "  -A, --after-context=NUM   ", "  -C, --context=NUM         "],
    GREP_COLOR: ["  -NUM                      ", "      --group-separator=SEP  ", "      --color[=WHEN],",
                 "      --colour[=WHEN]       ", "  -U, --binary              "],
    SED_REGEXP: ["  -E, -r, --regexp-extended", "                 "],
    DIFF_BINARY: ["    --binary                    "],
    DIFF_COLOR: ["    --color[=WHEN]       "],
}


class Shouting:
    """Translator's interface: each text upper-cased (French-like: with a no-break space before ';'), inputs kept; option
    tables cut into their descriptions as the Translator cuts them (`in_columns`)."""

    model = type("Model", (), {"config": type("Config", (), {"_name_or_path": "acme/mtl-cli"})})()

    def __init__(self):
        self.inputs = []

    def check_languages(self, langs):
        return list(langs)

    def translate(self, texts, langs, *, rows, batch_size, return_confidence=False, **generation):
        out, sure = in_columns(texts, langs, rows, self.model_call)
        return (out, sure) if return_confidence else out

    def model_call(self, texts, rows):
        self.inputs += texts
        out = self.outputs(texts, list(rows), rows)
        return out, {lang: [0.2 if "trailing" in t else 0.9 for t in texts] for lang in rows}

    def outputs(self, texts, langs, rows):
        return {lang: [shout(t) if keep else None for t, keep in zip(texts, rows[lang])] for lang in langs}


def shout(text: str) -> str:
    """Upper case but for placeholders and options (as the Translator keeps them), `;` after a no-break space."""
    parts = SPAN.split(text)  # text between the spans
    spans = SPAN.findall(text) + [""]
    return "".join(part.upper().replace(";", "\u00a0;") + span for part, span in zip(parts, spans))


def template(tmp_path: Path, msgids) -> Path:
    pot = polib.POFile()
    pot.metadata = {"Content-Type": "text/plain; charset=UTF-8"}
    for msgid in msgids:
        pot.append(polib.POEntry(msgid=msgid, msgstr="", flags=["c-format"] if "%" in msgid else []))
    pot.save(str(tmp_path / "cli.pot"))
    return tmp_path / "cli.pot"


def assert_columns_kept(msgid: str, msgstr: str, names: dict | None = None) -> None:
    """The option columns of `msgid` in `msgstr`, byte-identical but for the metavariables' `names` (realigned)."""
    lines = msgstr.split("\n")
    kept = iter([realign(column, names or {}) for column in OPTION_COLUMNS[msgid]])
    column = next(kept)
    for line in lines:
        if line.startswith(column):
            column = next(kept, None)
            if column is None:
                break
    assert column is None, f"{column!r} not kept in {msgstr!r}"
    assert msgstr.startswith(msgid[:len(msgid) - len(msgid.lstrip())]) and msgstr.endswith(msgid[len(msgid.rstrip()):])


def test_only_descriptions_reach_the_model_and_option_columns_come_out_byte_identical(tmp_path):
    translator = Shouting()
    report = translate_po(template(tmp_path, [*OPTION_COLUMNS, *PLAIN]), translator, ["fr"], tmp_path / "po")
    assert report["fr"]["filled"] == len(OPTION_COLUMNS) + len(PLAIN)
    assert not any(text.lstrip().startswith("-") and "  " in text for text in translator.inputs)
    assert set(translator.inputs) >= {"print NUM lines of leading context", "Context control:", "same as --context=NUM",
                                      "use extended regular expressions in the script (for portability use POSIX -E).",
                                      "use markers to highlight the matching strings; WHEN is 'always', 'never', or "
                                      "'auto'", "read and write data in binary mode", *[p.strip() for p in PLAIN]}
    catalog = {e.msgid: e.msgstr for e in polib.pofile(str(tmp_path / "po" / "fr.po"))}
    for msgid in OPTION_COLUMNS:
        assert_columns_kept(msgid, catalog[msgid])
    assert catalog[GREP_CONTEXT] == ("\nCONTEXT CONTROL:\n  -B, --before-context=NUM  PRINT NUM LINES OF LEADING CONTEXT\n"
                                     "  -A, --after-context=NUM   PRINT NUM LINES OF TRAILING CONTEXT\n"
                                     "  -C, --context=NUM         PRINT NUM LINES OF OUTPUT CONTEXT\n")
    assert catalog[SED_REGEXP] == ("  -E, -r, --regexp-extended\n                 USE EXTENDED REGULAR EXPRESSIONS IN THE "
                                   "SCRIPT\n                 (FOR PORTABILITY USE POSIX -E).\n")
    assert catalog[DIFF_COLOR] == ("    --color[=WHEN]       COLOR OUTPUT\u00a0; WHEN IS 'NEVER', 'ALWAYS', OR\n"
                                   "                           'AUTO'\u00a0; PLAIN --color MEANS --color='AUTO'")
    assert catalog["-n: invalid number"] == "-n: INVALID NUMBER"  # no option table: translated whole, as before
    if shutil.which("msgfmt"):
        proc = subprocess.run(["msgfmt", "-c", "-o", "/dev/null", str(tmp_path / "po" / "fr.po")],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_a_msgid_without_option_lines_has_no_blocks_and_one_with_them_is_cut_at_its_lines():
    assert [option_blocks(text) for text in ["-n: invalid number", "Usage: grep [OPTION]...", "a\n  -b"]] == [None] * 3
    blocks = option_blocks(GREP_COLOR.strip())
    assert [(b.prefix, b.text, b.indent) for b in blocks] == [
        ("-NUM                      ", "same as --context=NUM", None),
        ("      --group-separator=SEP  ", "print SEP on line between matches with context", None),
        ("      --color[=WHEN],", "", None),
        ("      --colour[=WHEN]       ", "use markers to highlight the matching strings; WHEN is 'always', 'never', "
                                       "or 'auto'", " " * 28),
        ("  -U, --binary              ", "do not strip CR characters at EOL (MSDOS/Windows)", None)]


def test_a_table_of_key_lines_keeps_its_keys_and_tabs_and_one_key_line_is_text():
    sdiff = "ed:\tEdit then use both versions.\nel or e1:\tEdit then use the left version.\nq:\tQuit.\n"
    assert [(b.prefix, b.text) for b in option_blocks(sdiff)] == [
        ("ed:\t", "Edit then use both versions."), ("el or e1:\t", "Edit then use the left version."),
        ("q:\t", "Quit."), ("", "")]
    assert option_blocks("Warning:\tthe disk is full") is None  # one line: a sentence, not a table
    out, _ = in_columns([sdiff], ["de"], None, lambda parts, rows: ({"de": [p.upper() for p in parts]}, None))
    assert out == {"de": ["ed:\tEDIT THEN USE BOTH VERSIONS.\nel or e1:\tEDIT THEN USE THE LEFT VERSION.\nq:\tQUIT.\n"]}


def test_an_entry_whose_description_gets_no_output_stays_untranslated(tmp_path):
    class Silent(Shouting):
        def outputs(self, texts, langs, rows):
            out = super().outputs(texts, langs, rows)
            return {lang: ["" if t == "print NUM lines of output context" else o for t, o in zip(texts, outs)]
                    for lang, outs in out.items()}

    report = translate_po(template(tmp_path, [GREP_CONTEXT, DIFF_BINARY]), Silent(), ["fr"], tmp_path / "po")
    assert (report["fr"]["filled"], report["fr"]["empty"]) == (1, 1)
    assert {e.msgid: e.msgstr for e in polib.pofile(str(tmp_path / "po" / "fr.po"))}[GREP_CONTEXT] == ""


QUICKSTART = Path(__file__).parents[1] / "outputs" / "quickstart"


@pytest.mark.skipif(not (QUICKSTART / "config.json").is_file(), reason="no trained quickstart model in outputs/")
def test_the_quickstart_model_keeps_every_option_column(tmp_path):
    from mtl_translate.translate import Translator

    translator = Translator.from_pretrained(str(QUICKSTART), device="cpu")
    names = getattr(translator.model.generation_config, "metavariables", None) or {}
    report = translate_po(template(tmp_path, OPTION_COLUMNS), translator, out_dir=tmp_path / "po")
    for lang, counts in report.items():
        assert counts["filled"] >= 3, counts
        for entry in polib.pofile(counts["path"]):
            if entry.msgstr:
                assert_columns_kept(entry.msgid, entry.msgstr, names.get(lang))


def test_an_option_table_is_as_sure_as_its_least_sure_description():
    out, confidence = Shouting().translate([GREP_CONTEXT, DIFF_BINARY], ["fr"], rows={"fr": [True, True]},
                                           batch_size=8, return_confidence=True)
    assert confidence == {"fr": [0.2, 0.9]}  # GREP_CONTEXT: three descriptions, one of them unsure
    assert out["fr"][1] == "    --binary                    READ AND WRITE DATA IN BINARY MODE"


def test_the_translator_sends_only_descriptions_to_the_model(masked_tokenizer, monkeypatch):  # noqa: F811
    """`mtl-translate translate` of an option line: the encoder reads the description, the column is copied."""
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(masked_tokenizer, protect_placeholders=True))
    seen = []

    def generate(input_ids, attention_mask=None, langs=(), rows=None, **generation):
        sources = masked_tokenizer.source.batch_decode(input_ids, skip_special_tokens=True)
        seen.extend(sources)
        sp = masked_tokenizer["de"].sp_model
        ids = [sp.encode(("⟨0⟩ " if "⟨ 0 ⟩" in text else "") + "Hilfe   anzeigen\n") + [3] for text in sources]
        width = max(map(len, ids))
        return {lang: torch.tensor([row + [0] * (width - len(row)) for row in ids]) for lang in langs}

    monkeypatch.setattr(model, "generate", generate)
    line = "  -h, --help     display this help and exit"
    out = Translator(model, masked_tokenizer).translate([line, "Open file", "ed:\tEdit it"], ["de"])
    assert sorted(seen) == ["display this help and exit", "ed : ⟨ 0 ⟩ edit it", "open file"]
    # no blank run or line break that the source lacks; the tab (a protected span) stays
    assert out["de"] == ["  -h, --help     Hilfe anzeigen", "Hilfe anzeigen", "\t Hilfe anzeigen"]


def test_a_reflowed_description_keeps_its_number_of_lines():
    block = option_blocks(SED_REGEXP.rstrip("\n"))[0]
    assert block.lines == 2
    for translated in ["kurzer Text", "erweiterte reguläre Ausdrücke im Skript verwenden (für Portabilität POSIX -E verwenden), "
                       "und noch viel mehr Text, der weit über die ursprüngliche Breite der Spalte hinausgeht."]:
        lines = block.render(translated).split("\n")
        assert len(lines) == 3 and lines[0] == "  -E, -r, --regexp-extended", lines  # the option line + 2
        assert all(line.startswith(" " * 17) for line in lines[1:])
