"""Placeholder protection on real catalog strings: masking, target masking, restoring, both tokenizers, the
Translator, a training run and the evaluation metric."""

import json
from pathlib import Path
from types import SimpleNamespace

import polib
import pytest
import torch
import yaml
from transformers import AutoTokenizer

from mtl_translate import MTLTranslationModel
from mtl_translate.configs import load_recipe
from mtl_translate.evaluation import evaluate_translator, format_results, placeholder_accuracy
from mtl_translate.placeholders import (MASK_TOKENS, MAX_SPANS, mask, mask_rows, mask_target, restore,
                                        unknown_mask_tokens)
from mtl_translate.tokenization_mtl import MTLTokenizer, TargetTokenizer
from mtl_translate.train import build_model, run
from mtl_translate.translate import Translator

from .conftest import CORPUS, LANGS, corpus_rows, tiny_config, tiny_recipe

# Real msgid -> German msgstr pairs (coreutils, diffutils).
ALL = ("  -a, --all                  do not ignore entries starting with .",
       "  -a, --all                  Einträge, die mit . beginnen, nicht verstecken")
DIFF_PROGRAM = ("    --diff-program=PROGRAM   use PROGRAM to compare files",
                "    --diff-program=PROGRAMM  PROGRAMM zum Vergleichen von Dateien verwenden.")
TOO_LARGE = ("--%s argument %s too large", "Argument %2$s für Option --%1$s zu groß")


@pytest.mark.parametrize("domain", ["coreutils", "grep", "diffutils", "sed"])
def test_every_msgid_of_a_real_catalog_round_trips_and_translations_keep_their_spans(domain):
    path = Path(f"/usr/share/locale/de/LC_MESSAGES/{domain}.mo")
    if not path.is_file():
        pytest.skip(f"{path} is not installed")
    entries = [e for e in polib.mofile(str(path)) if e.msgid]
    with_spans = kept = 0
    for entry in entries:
        masked, spans = mask(entry.msgid)
        assert restore(masked, spans) == (entry.msgid, 0)
        if spans and entry.msgstr:
            target, missing = mask_target(entry.msgstr, spans)
            with_spans += 1
            if not missing:
                kept += 1
                assert restore(target, spans) == (entry.msgstr, 0)  # reordered %2$s ... %1$s included
    assert with_spans > len(entries) / 3  # options and printf conversions are everywhere in these catalogs
    assert kept > 0.9 * with_spans


def test_options_are_masked_and_metavariables_left_to_the_model():
    assert mask(ALL[0]) == ("  ⟨0⟩, ⟨1⟩                  do not ignore entries starting with .", ["-a", "--all"])
    assert mask_target(ALL[1], ["-a", "--all"]) == (
        "  ⟨0⟩, ⟨1⟩                  Einträge, die mit . beginnen, nicht verstecken", 0)
    masked, spans = mask(DIFF_PROGRAM[0])
    assert (masked, spans) == ("    ⟨0⟩=PROGRAM   use PROGRAM to compare files", ["--diff-program"])
    assert mask_target(DIFF_PROGRAM[1], spans) == (
        "    ⟨0⟩=PROGRAMM  PROGRAMM zum Vergleichen von Dateien verwenden.", 0)
    assert mask("-o, --output=FILE            operate interactively, sending output to FILE")[1] == ["-o", "--output"]
    assert mask("Usage: %s [-WIDTH] [OPTION]... [FILE]...")[1] == ["%s"]  # -WIDTH is a metavariable
    assert mask("%s: -K requires KEY=VALUE")[1] == ["%s", "-K"]
    assert mask("%s is a 64 bit ELF file.")[1] == ["%s", "64"]


def test_hyphenated_words_and_negative_looking_text_are_no_options():
    assert mask("a built-in, non-interactive x-ray in 2-pass mode")[1] == ["2"]
    assert mask("-5 and 5-10 but not 1.5x") == ("⟨0⟩ and ⟨1⟩-⟨2⟩ but not 1.5x", ["-5", "5", "10"])
    assert mask("100% done, % of total")[1] == ["100"]  # no "% d" conversion in prose
    # a number in the source is not found inside a target word, but may start a compound
    assert mask_target("%s est un fichier ELF 64bits.", ["%s", "64"]) == ("⟨0⟩ est un fichier ELF 64bits.", 1)
    assert mask_target("%s ist eine 64-Bit ELF-Datei.", ["%s", "64"]) == ("⟨0⟩ ist eine ⟨1⟩-Bit ELF-Datei.", 0)


@pytest.mark.parametrize("text, spans", [
    ("General help using GNU software: <https://www.gnu.org/gethelp/>.", ["<https://www.gnu.org/gethelp/>"]),
    ("see https://www.gnu.org/gethelp/. Report bugs to: bug-coreutils@gnu.org",
     ["https://www.gnu.org/gethelp/", "bug-coreutils@gnu.org"]),
    ("send bug reports to <procps@freelists.org>, not <b>", ["<procps@freelists.org>"]),
    ("%(pkgname)s conflicts with %(targetpkg)s", ["%(pkgname)s", "%(targetpkg)s"]),
    ("{0} of {name} {} {:>5} but not {HEXNUMBER}", ["{0}", "{name}", "{}", "{:>5}"]),
    ("If $HOME or ${XDG_CONFIG_HOME} is unset", ["$HOME", "${XDG_CONFIG_HOME}"]),
    ("cannot read /etc/login.defs, ./configure or ~/.psqlrc", ["/etc/login.defs", "./configure", "~/.psqlrc"]),
    ("refusing to write .bitmap to rpcrt4.dll, not FILE.po", [".bitmap", "rpcrt4.dll"]),
    ("%-5.2lf%% at 0x1F, %lu of %.*s", ["%-5.2lf", "%%", "0x1F", "%lu", "%.*s"]),
    ("%a %b %e %H:%M:%S %Z %Y", ["%a", "%b", "%e", "%H", "%M", "%S", "%Z", "%Y"]),
    ("a literal ⟨3⟩ stays", ["⟨3⟩"]),
    ("Unmatched ( or \\(, invalid content of \\{\\}, stray \\ before %lc", ["\\(", "\\{\\}", "\\", "%lc"]),
    ("warning: unrecognized escape `\\%c', \\n or \\\\", ["\\", "%c", "\\n", "\\\\"]),
    ("ed:\tEdit then use both", ["\t"]),
    ("  %<  lines from the old file\n    %L  contents of line\n    %[-][WIDTH][.[PREC]]{doxX}n  printf-style spec for n\n"
     "    %(A=B?T:E)  if A equals B then T else E, %@ or %l", ["%<", "%L", "%[-][WIDTH][.[PREC]]{doxX}n", "%(A=B?T:E)",
                                                            "%@", "%l"]),
    ("E-mail bug reports to: <%s>.", ["<%s>"]),
    ("exec() failed: INT_MAX, safe_read, SIGUSR1 on x86 or GPLv3+", ["exec()", "INT_MAX", "safe_read", "SIGUSR1",
                                                                    "x86", "GPLv3"]),
    ("foo_bar.c, M 1,048,576, -T0 but not --pages=FIRST_PAGE, [SKIP1 or UTF-8", ["foo_bar.c", "1,048,576", "-T0",
                                                                               "--pages", "8"]),
])
def test_each_kind_of_span_is_masked_and_restored(text, spans):
    masked, found = mask(text)
    assert found == spans
    assert restore(masked, found) == (text, 0)


def test_a_reordering_translation_keeps_each_argument():
    masked, spans = mask(TOO_LARGE[0])
    assert (masked, spans) == ("--⟨0⟩ argument ⟨1⟩ too large", ["%s", "%s"])
    target, missing = mask_target(TOO_LARGE[1], spans)
    assert (target, missing) == ("Argument ⟨1⟩ für Option --⟨0⟩ zu groß", 0)
    assert restore(target, spans) == (TOO_LARGE[1], 0)  # numbered again, so each %s takes its own argument
    assert restore("⟨0⟩ zu ⟨1⟩", spans) == ("%s zu %s", 0)  # the source's order: left as it is
    assert restore("⟨2⟩ für ⟨0⟩⟨1⟩", mask("%s%s argument '%s' too large")[1]) == ("%3$s für %1$s%2$s", 0)
    assert restore("⟨1⟩ von ⟨0⟩", ["{}", "{}"]) == ("{1} von {0}", 0)
    assert mask_target("{1} von {0}", ["{}", "{}"]) == ("⟨1⟩ von ⟨0⟩", 0)
    date = mask("%a %b %e")[1]  # a date format takes no arguments: never numbered
    assert restore("⟨2⟩. ⟨1⟩ ⟨0⟩", date) == ("%e. %b %a", 0)
    assert restore("⟨1⟩ ⟨0⟩ %s", spans) == ("%s %s %s", 0)  # a conversion written as text: numbering would mix
    assert restore("⟨1⟩ : page ⟨0⟩", mask("%s home page: <%s>")[1]) == ("<%2$s> : page %1$s", 0)  # <%s>: 2nd %s


def test_restore_tolerates_decoder_spacing_and_counts_lost_spans():
    spans = ["%s", "--help"]
    assert restore("⟨ 1 ⟩ : ⟨0⟩ ⟨0⟩ ⟨9⟩", spans) == ("--help : %s", 0)  # a repeat and an unknown index are dropped
    assert restore("Hilfe anzeigen ⟨1⟩", spans) == ("Hilfe anzeigen --help", 1)
    assert restore("nur Text", spans) == ("nur Text", 2)


def test_spans_beyond_the_cap_stay_text():
    text = " ".join(f"-{chr(97 + i)}" for i in range(MAX_SPANS + 3))
    masked, spans = mask(text)
    assert len(spans) == MAX_SPANS and masked.endswith(f"⟨{MAX_SPANS - 1}⟩ -q -r -s")
    assert restore(masked, spans) == (text, 0)


def test_target_masking_counts_missing_spans_and_keeps_the_rows():
    rows = [{"en": "Minimum connections required per server is 2",
             "de": "Die benötigte Mindestanzahl von Verbindungen pro Server ist zwei",
             "fr": "Le nombre minimum de connexions requises par serveur est 2", "es": None},
            {"en": "%s doesn't support --super-prefix", "de": "%s unterstützt kein --super-prefix",
             "fr": "%s ne gère pas --super-prefix", "es": "%s no soporta --super-prefix"},
            {"en": "Open file", "de": "Datei öffnen", "fr": None, "es": "Abrir archivo"}]
    masked, protected, missing = mask_rows(rows, "en")
    assert protected == 2 and missing == {"de": 1, "fr": 0, "es": 0}
    assert masked[0] == {"en": "Minimum connections required per server is ⟨0⟩", "de": rows[0]["de"],
                         "fr": "Le nombre minimum de connexions requises par serveur est ⟨0⟩", "es": None}
    assert masked[1]["es"] == "⟨0⟩ no soporta ⟨1⟩" and masked[2] == rows[2]


def test_both_tokenizers_keep_every_mask_token_whole(encoder_path, tmp_path):
    source = AutoTokenizer.from_pretrained(encoder_path)  # MiniLM's uncased WordPiece, as tiny_encoder_dir's
    assert unknown_mask_tokens(source) == []
    assert source.tokenize("file⟨12⟩: ⟨3⟩") == ["file", "⟨", "12", "⟩", ":", "⟨", "3", "⟩"]
    masked = [mask(de)[0] for de in (ALL[1], DIFF_PROGRAM[1], TOO_LARGE[1])] + [row[1] for row in CORPUS if row[1]]
    target = TargetTokenizer.train(masked, 400, str(tmp_path / "masked"), "de")
    for token in MASK_TOKENS:
        assert target.sp_model.encode(f"Datei {token}", out_type=str)[-2:] == ["▁", token]
        assert target.decode_batch([target.sp_model.encode(f"Datei {token}")]) == [f"Datei {token}"]
    plain = TargetTokenizer.train([row[1] for row in CORPUS if row[1]], 400, str(tmp_path / "plain"), "de")
    assert plain.sp_model.piece_to_id(MASK_TOKENS[0]) == plain.sp_model.unk_id()  # unmasked data adds no symbols


@pytest.fixture
def masked_tokenizer(tokenizer, tmp_path):
    """The conftest tokenizers retrained on targets holding mask tokens."""
    texts = {lang: [row[i + 1] for row in CORPUS if row[i + 1]] + ["⟨0⟩ zeigt Hilfe"] for i, lang in enumerate(LANGS)}
    targets = {lang: TargetTokenizer.train(lines, 400, str(tmp_path / lang), lang) for lang, lines in texts.items()}
    return MTLTokenizer(tokenizer.source, targets)


def test_translator_masks_sources_and_restores_outputs(masked_tokenizer, monkeypatch, tmp_path):
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(masked_tokenizer, protect_placeholders=True))
    seen = []

    def generate(input_ids, attention_mask=None, langs=(), rows=None, **generation):  # emits the mask tokens
        seen.extend(masked_tokenizer.source.batch_decode(input_ids, skip_special_tokens=True))
        out = {lang: masked_tokenizer[lang].sp_model.encode("⟨1⟩ oder ⟨0⟩ zeigt Hilfe") + [3] for lang in langs}
        return {lang: torch.tensor([ids] * len(input_ids)) for lang, ids in out.items()}

    monkeypatch.setattr(model, "generate", generate)
    translator = Translator(model, masked_tokenizer)
    out = translator.translate(["Use --help or -h for help"], ["de", "fr"])
    assert out == {"de": ["-h oder --help zeigt Hilfe"], "fr": ["-h oder --help zeigt Hilfe"]}
    assert seen == ["use ⟨ 0 ⟩ or ⟨ 1 ⟩ for help"]  # the encoder never saw the option names
    model.config.protect_placeholders = False  # a model trained without protection: text in, text out
    assert translator.translate(["Use --help"], ["de"]) == {"de": ["⟨1⟩ oder ⟨0⟩ zeigt Hilfe"]}
    assert seen[-1] == "use - - help"


def test_the_setting_is_saved_and_folders_without_it_load_unprotected(masked_tokenizer, tmp_path):
    model = MTLTranslationModel(tiny_config(masked_tokenizer, protect_placeholders=True))
    Translator(model, masked_tokenizer).save_pretrained(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["protect_placeholders"] is True
    assert Translator.from_pretrained(str(tmp_path), device="cpu").model.config.protect_placeholders is True
    del config["protect_placeholders"]  # a folder saved before the setting existed
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert Translator.from_pretrained(str(tmp_path), device="cpu").model.config.protect_placeholders is False


PLACEHOLDER_ROWS = [
    ("%s: cannot open file", "%s: Datei kann nicht geöffnet werden", "%s : impossible d'ouvrir le fichier",
     "%s: no se puede abrir el archivo"),
    ("Try '%s --help' for more information.", "»%s --help« gibt weitere Informationen.",
     "Pour en savoir davantage, faites : « %s --help ».", "Pruebe '%s --help' para más información."),
    ("%s is a 64 bit ELF file.", "%s ist eine 64-Bit ELF-Datei.", "%s est un fichier ELF 64bits.",
     "%s es un fichero ELF de 64 bits."),
    ("Minimum connections required per server is 2", "Die Mindestanzahl von Verbindungen pro Server ist zwei",
     None, "El mínimo de conexiones requeridas por servidor es 2"),
]


def test_training_masks_its_data_and_saves_the_setting(tiny_encoder_dir, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    rows = corpus_rows() + [{"translation": dict(zip(["en", *LANGS], row))} for row in PLACEHOLDER_ROWS]
    for split in ("train", "validation", "test"):
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(data, tiny_encoder_dir, tmp_path / "run", max_steps=2,
                                                 eval_steps=2, save_steps=2, max_test_samples=20,
                                                 protect_placeholders=True)))
    results = run(load_recipe(str(recipe)))
    printed = capsys.readouterr().out
    assert ("placeholders: 4 of 20 training rows have protected spans; targets lacking one of their source's spans "
            "(kept): de 1, fr 1, es 0") in printed
    assert json.loads((tmp_path / "run" / "config.json").read_text())["protect_placeholders"] is True
    de = TargetTokenizer(vocab_file=str(tmp_path / "run" / "tokenizers" / "de" / "tokenizer.model"))
    assert all(de.sp_model.piece_to_id(token) != de.sp_model.unk_id() for token in MASK_TOKENS)
    assert results["placeholder_n"] == {"de": 4, "fr": 3, "es": 4}  # test rows with a reference and a span
    assert set(results["placeholder_accuracy"]) == set(LANGS)


def test_continuing_a_model_with_the_other_setting_is_refused(tokenizer):
    recipe = load_recipe(base={"target_langs": LANGS, "init_model": "old-model", "protect_placeholders": True})
    old = SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(languages=LANGS)))  # saved without the key
    with pytest.raises(ValueError, match=r"init_model old-model was trained with protect_placeholders=False, this "
                                         r"recipe has True.*set protect_placeholders: false"):
        build_model(recipe, tokenizer, "unused", "unused", old)


def test_an_encoder_tokenizer_that_loses_the_mask_tokens_is_refused():
    recipe = load_recipe(base={"target_langs": LANGS, "protect_placeholders": True})
    source = SimpleNamespace(unk_token="[UNK]", tokenize=lambda text: ["[UNK]", "0", "[UNK]"])
    with pytest.raises(ValueError, match=r"the tokenizer of 'xlm' reads the mask tokens \['⟨0⟩', .* as unknown"):
        build_model(recipe, SimpleNamespace(source=source), "unused", "xlm")


class FixedTranslator:
    """Returns given outputs: the metric is checked without a model."""

    def __init__(self, outputs: dict[str, dict[str, str]]):
        self.outputs = outputs

    def check_languages(self, langs):
        return list(langs)

    def translate(self, texts, langs, rows=None, **kwargs):
        return {lang: [self.outputs[lang].get(t) if rows[lang][i] else None for i, t in enumerate(texts)]
                for lang in langs}


def test_evaluate_reports_placeholder_accuracy_per_language():
    rows = [{"en": "%s: cannot open '%s'", "de": "%s: »%s« kann nicht geöffnet werden",
             "fr": "%s : impossible d'ouvrir « %s »", "es": None},
            {"en": TOO_LARGE[0], "de": TOO_LARGE[1], "fr": None, "es": None},
            {"en": "Open file", "de": "Datei öffnen", "fr": "Ouvrir le fichier", "es": "Abrir archivo"},
            {"en": "Try '%s --help' for more information.", "de": "»%s --help« gibt weitere Informationen.",
             "fr": "Pour en savoir davantage, faites : « %s --help ».", "es": None}]
    outputs = {
        "de": {rows[0]["en"]: "%s: %s kann nicht geöffnet werden", TOO_LARGE[0]: TOO_LARGE[1],  # numbered: kept
               "Open file": "Datei öffnen", rows[3]["en"]: "»%s --hilfe« gibt weitere Informationen."},  # lost
        "fr": {rows[0]["en"]: "%s : impossible d'ouvrir", "Open file": "Ouvrir le fichier",  # one %s lost
               rows[3]["en"]: "Pour en savoir davantage, faites : « %s --help »."},
        "es": {"Open file": "Abrir archivo"},
    }
    results = evaluate_translator(FixedTranslator(outputs), rows, "en", ["de", "fr", "es"])
    assert results["placeholder_accuracy"] == {"de": 66.67, "fr": 50.0}  # es: no source with a span
    assert results["placeholder_n"] == {"de": 3, "fr": 2, "es": 0}
    table = format_results(results).splitlines()
    assert table[0].endswith("    plh%   plh n")
    assert table[1].startswith("de") and table[1].endswith("   66.67       3")
    assert table[3].startswith("es") and table[3].endswith("       -       0")


def test_a_numbered_metavariable_renamed_as_the_catalogs_do_counts_as_kept():
    source = "--from-file=FILE1  compare FILE1 to all operands"
    output = "--from-file=DATEI1  DATEI1 mit allen Operanden vergleichen"
    assert mask(source)[1] == ["--from-file", "FILE1"]  # the option's value is left to the model
    assert placeholder_accuracy({"de": [source]}, {"de": [output]})["placeholder_accuracy"] == {"de": 0.0}
    renamed = placeholder_accuracy({"de": [source]}, {"de": [output]}, {"de": {"FILE": "DATEI"}})
    assert renamed["placeholder_accuracy"] == {"de": 100.0}
    dropped = placeholder_accuracy({"de": [source]}, {"de": ["--from-file=FILE mit allen vergleichen"]},
                                   {"de": {"FILE": "DATEI"}})
    assert dropped["placeholder_accuracy"] == {"de": 0.0}  # neither FILE1 nor DATEI1: lost


@pytest.mark.parametrize("source, output, restored", [
    ("%s: poll() failed: %s", "⟨0⟩ : échec de la⟨1⟩ : ⟨2⟩", "%s : échec de la poll() : %s"),  # glued to a word
    ("FILES are 'FILE1 FILE2'", "sont « ⟨0⟩⟨1⟩ »", "sont « FILE1 FILE2 »"),  # glued to the span before
    ("see menu.h now", "siehe⟨0⟩jetzt", "siehe menu.h jetzt"),  # on both sides
    ("%s%s and %d%%", "⟨0⟩⟨1⟩ und ⟨2⟩⟨3⟩", "%s%s und %d%%"),  # glued in the source too: as the model wrote them
    ("use .deb files", "⟨0⟩-Dateien verwenden", ".deb-Dateien verwenden"),  # a compound: no blank to add
    ("'%s' is not valid", "「⟨0⟩」は無効です", "「%s」は無効です"),  # set apart by quotes, not blanks
])
def test_restoring_sets_a_span_apart_where_its_source_does(source, output, restored):
    masked, spans = mask(source)
    assert restore(output, spans, masked) == (restored, 0)
    assert restore(output, spans)[0] == restored.replace("la poll", "lapoll").replace("FILE1 FILE2", "FILE1FILE2") \
        .replace("siehe menu.h jetzt", "siehemenu.hjetzt")  # without the source: as the model wrote them
