"""`mtl-translate {train,compare,evaluate,translate,translate-po,translate-file,info,add-language,remove-language,
average-checkpoints,build-data,push,demo}`: thin wrappers over the package."""

import argparse
import json
import sys
from pathlib import Path

from .checkpointing import TrainingError
from .outputs import refuse_output_over_input


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def name_map(text: str) -> dict[str, str | None]:
    """An argparse type: `de,fr=fra_Latn` -> {"de": None, "fr": "fra_Latn"} (None: the command's default name)."""
    pairs = [[part.strip() for part in item.split("=", 1)] for item in comma_list(text)]
    if not pairs or not all(all(pair) for pair in pairs):
        raise argparse.ArgumentTypeError(f"must be CODE or CODE=NAME items separated by commas (e.g. "
                                         f"de=deu_Latn,fr=fra_Latn); got {text!r}")
    return {pair[0]: pair[1] if len(pair) == 2 else None for pair in pairs}


def int_list(text: str) -> list[int]:
    """An argparse type: `1,2,3` -> [1, 2, 3]."""
    try:
        return [int(item) for item in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be integers separated by commas, e.g. 1,2,3; got {text!r}") from None


def int_at_least(low: int):
    """An argparse type: an integer >= `low`, so that `--num-beams 0` is an error, not quietly greedy."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def column_mapping(text: str) -> dict[str, str]:
    """An argparse type: `en=english,de=german` or a JSON object -> {lang or "translation": column}, as the recipe's
    `column_mapping`."""
    if text.lstrip().startswith("{"):
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(f"is not valid JSON ({err}); got {text!r}") from None
        if isinstance(mapping, dict) and all(isinstance(v, str) for v in mapping.values()):
            return mapping
    else:
        pairs = [item.split("=", 1) for item in comma_list(text)]
        if pairs and all(len(pair) == 2 and pair[0].strip() and pair[1].strip() for pair in pairs):
            return {lang.strip(): column.strip() for lang, column in pairs}
    raise argparse.ArgumentTypeError(f"must be LANG=COLUMN pairs separated by commas (e.g. en=english,de=german) or "
                                     f"a JSON object of column names; got {text!r}")


def positive_float(text: str) -> float:
    """An argparse type: a number > 0, so that `--repetition-penalty 0` is a usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1, so that `--min-confidence 87` is a usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value


def cmd_train(args, extra: list[str]) -> None:
    from .configs import load_recipe
    from .train import run

    run(load_recipe(args.recipe, extra))


def cmd_compare(args, extra: list[str]) -> None:
    from .compare import run_comparison, variant_recipes
    from .configs import load_recipe

    report = run_comparison(load_recipe(args.recipe, extra), variant_recipes(args.variant, extra), args.retrain,
                            args.seeds, args.baselines)
    print(Path(report["output_dir"], "comparison.md").read_text())


def load_translator(args):
    """The model of `--model` on `--device`, int8-quantized with `--quantize int8` (CPU only, so CPU by default)."""
    from .translate import Translator

    device = args.device or ("cpu" if args.quantize == "int8" else None)
    translator = Translator.from_pretrained(args.model, device=device)
    if args.quantize == "int8":
        from .quantization import quantize_int8

        quantize_int8(translator.model)
    return translator


def cmd_evaluate(args, _) -> None:
    """Translates the rows with `--model`, or scores the translations of `--hypotheses` (no weights are loaded then:
    `--model`, when given, only supplies the source language)."""
    from .data.loading import load_multitarget_dataset, sample_rows
    from .evaluation import evaluate_translator, format_results, match_hypotheses, read_hypotheses, score_predictions
    from .tokenization_mtl import load_config

    if not args.model and not args.hypotheses:
        raise ValueError("pass --model (to translate the rows) or --hypotheses FILE (to score translations made "
                         "before).")
    refuse_output_over_input(args.output, {"--hypotheses": args.hypotheses, "--data": args.data}, "--output",
                             "Pass another --output file")
    records = read_hypotheses(args.hypotheses) if args.hypotheses else None
    translator = None if records else load_translator(args)
    config = translator.model.config if translator else load_config(args.model) if args.model else None
    source = args.source_lang or (config.source_lang if config else None)
    if source is None:
        raise ValueError("--hypotheses without --model needs --source-lang (the language of the rows' sources).")
    langs = translator.check_languages(args.langs) if translator else args.langs or [
        lang for lang in records[0][1] if lang != "source"]
    rows = load_multitarget_dataset(args.data, source, langs, split=args.split, dataset_config=args.dataset_config,
                                    column_mapping=args.column_mapping)
    rows = sample_rows(rows, args.max_samples, args.seed)  # the same seeded sample as training's test evaluation
    bleu_tokenize = None if args.bleu_tokenize == "auto" else args.bleu_tokenize
    if records:
        predictions = match_hypotheses(args.hypotheses, records, rows, source, langs)
        results = score_predictions(rows, predictions, source, langs, bleu_tokenize)
    else:
        results = evaluate_translator(translator, rows, source, langs, batch_size=args.batch_size, show_progress=True,
                                      bleu_tokenize=bleu_tokenize, num_beams=args.num_beams,
                                      max_new_tokens=args.max_new_tokens,
                                      no_repeat_ngram_size=args.no_repeat_ngram_size,
                                      repetition_penalty=args.repetition_penalty)
    results.update(split=args.split, dataset=args.data)
    print(format_results(results))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2, ensure_ascii=False))


def cmd_translate(args, _) -> None:
    """Input is read as bytes and decoded line by line: a non-UTF-8 byte is an error naming its line."""
    from .translate import read_lines, write_jsonl

    refuse_output_over_input(args.output, {"--input": args.input}, "--output", "Pass another --output file")
    translator = load_translator(args)
    source = open(args.input, "rb") if args.input else sys.stdin.buffer
    with source:
        records = translator.translate_stream(read_lines(source, args.input or "<stdin>"), args.langs,
                                              batch_size=args.batch_size, num_beams=args.num_beams,
                                              max_new_tokens=args.max_new_tokens,
                                              no_repeat_ngram_size=args.no_repeat_ngram_size,
                                              repetition_penalty=args.repetition_penalty,
                                              show_progress=args.input is not None)  # stderr; arguments checked now
        sink = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
        with sink:
            write_jsonl(records, sink)


def draft_options(args) -> dict:
    """translate-po's and translate-file's memory, glossary and confidence options, as both functions take them."""
    return {"tm": args.tm, "tm_installed": args.tm_installed is not None, "tm_roots": args.tm_installed or (),
            "glossary": args.glossary, "min_confidence": args.min_confidence}


def cmd_translate_po(args, _) -> None:
    from .localization import format_report, read_catalog, translate_po

    template = read_catalog(args.template, "template")  # a wrong path fails before the model loads
    report = translate_po(template, load_translator(args), args.langs, args.out_dir, model_name=args.model,
                          batch_size=args.batch_size, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                          no_repeat_ngram_size=args.no_repeat_ngram_size, repetition_penalty=args.repetition_penalty,
                          **draft_options(args))
    print(format_report(report))


def cmd_translate_file(args, _) -> None:
    from .localization.files import format_file_report, translate_file

    report = translate_file(args.file, lambda: load_translator(args), args.out, args.lang, template=args.template,
                            file_format=args.format, model_name=args.model, batch_size=args.batch_size,
                            num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                            no_repeat_ngram_size=args.no_repeat_ngram_size, repetition_penalty=args.repetition_penalty,
                            **draft_options(args))
    print(format_file_report(report))


def cmd_info(args, _) -> None:
    from .info import format_info, model_info

    info = model_info(args.model)
    print(json.dumps(info, indent=2, ensure_ascii=False) if args.json else format_info(info))


def cmd_add_language(args, extra: list[str]) -> None:
    from .lifelong import add_language_to_folder

    add_language_to_folder(args.model, args.lang, args.data, args.output_dir, extra)


def cmd_remove_language(args, _) -> None:
    from .lifelong import remove_language_from_folder

    print(f"wrote {remove_language_from_folder(args.model, args.lang, args.output_dir)}")


def cmd_average(args, _) -> None:
    from .averaging import average_checkpoints

    print(f"wrote {average_checkpoints(args.model, args.last, args.output_dir)}")


def cmd_build_data(args, _) -> None:
    from .data.gettext import build_gettext_corpus

    refuse_output_over_input(args.out, {f"--roots {root}": root for root in args.roots or ()}, "--out",
                             "Pass another --out folder")
    stats = build_gettext_corpus(args.langs, args.out, roots=args.roots, test_domains=args.test_domains,
                                 max_source_words=args.max_source_words, seed=args.seed,
                                 heldout_domains=args.heldout_domains or ())
    print(json.dumps({k: stats[k] for k in ("rows", "coverage", "test_domains", "heldout_domains")}, indent=2,
                     ensure_ascii=False))


def cmd_build_hub(args, _) -> None:
    from .data.hub_corpus import build_hub_corpus

    if len(args.source) != 1:
        raise ValueError(f"--source takes one language (CODE or CODE=NAME), got {', '.join(args.source)}")
    [(source, source_name)] = args.source.items()
    refuse_output_over_input(args.out, {"--dataset": args.dataset}, "--out", "Pass another --out folder")
    stats = build_hub_corpus(args.layout, args.dataset, source, args.langs, args.out, source_name=source_name,
                             config=args.config, revision=args.revision, splits=args.splits,
                             text_column=args.text_column, max_rows_per_split=args.max_rows_per_split,
                             streaming=args.streaming)
    print(json.dumps({k: stats[k] for k in ("rows", "coverage", "rows_joined", "train_rows_dropped_overlap")},
                     indent=2, ensure_ascii=False))


def cmd_push(args, _) -> None:
    from .hub import push_to_hub

    print(push_to_hub(args.model, args.repo_id, private=args.private, token=args.token))
    if args.space:
        from .demo import push_space

        print(push_space(args.space, args.repo_id, token=args.token))


def cmd_demo(args, _) -> None:
    from .demo import launch_demo

    launch_demo(args.model, port=args.port, share=args.share, server_name=args.host)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtl-translate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train from a YAML recipe; any recipe key can be overridden with --key value")
    p.add_argument("recipe")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare", help="multi-task vs one single-task model per language, same steps and test rows; "
                                       "recipe keys can be overridden with --key value")
    p.add_argument("recipe", help="the multi-task recipe; single-task recipes are derived from it")
    p.add_argument("--variant", action="append", default=[],
                   help="another multi-task recipe for the same table (repeatable), e.g. config_uncertainty.yaml")
    p.add_argument("--retrain", action="store_true", help="train again even where a run already has results")
    p.add_argument("--seeds", type=int_list, default=None,
                   help="e.g. 1,2,3: train every model once per seed (in OUTPUT_DIR/seed_<s>/) and report mean ± std")
    p.add_argument("--baselines", action="append", default=[], metavar="DIR",
                   help="another comparison's output_dir (repeatable): its single-task models (single-<lang>/, per "
                        "seed seed_<s>/single-<lang>/) are used, not retrained, where trained with the same recipe")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("evaluate", help="BLEU, chrF and placeholder accuracy per language on a dataset split")
    p.add_argument("--model", default=None, help="trained model folder or Hub repo id (not needed with --hypotheses)")
    p.add_argument("--hypotheses", default=None,
                   help="score these translations instead of running the model: `translate` output (JSON lines "
                        "with \"source\") or one {lang: text} object per row of the sample, in order")
    p.add_argument("--source-lang", default=None, help="default: the model's source language")
    p.add_argument("--column-mapping", type=column_mapping, default=None,
                   help="LANG=COLUMN,... or a JSON object, as the recipe's column_mapping (e.g. en=english,de=german)")
    p.add_argument("--data", required=True, help="local file/folder or Hub dataset id")
    p.add_argument("--split", default="test")
    p.add_argument("--dataset-config", default=None)
    p.add_argument("--langs", type=comma_list, default=None, help="default: every language of the model")
    p.add_argument("--output", default=None, help="write the results as JSON here")
    p.add_argument("--max-samples", type=int_at_least(1), default=None,
                   help="score a seeded random sample of this many rows")
    p.add_argument("--seed", type=int, default=42, help="seed of that sample (training uses the recipe's seed)")
    p.add_argument("--bleu-tokenize", default="auto",
                   choices=["auto", "13a", "intl", "zh", "ja-mecab", "ko-mecab", "flores200", "char", "none"],
                   help="sacrebleu tokenizer for BLEU in every language; auto: per language (zh, ja-mecab, "
                        "ko-mecab for Chinese, Japanese, Korean; 13a otherwise)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("translate", help="one sentence per input line -> one JSON object per line")
    p.add_argument("--model", required=True)
    p.add_argument("--langs", type=comma_list, default=None, help="default: every language of the model")
    p.add_argument("--input", default=None, help="default: stdin")
    p.add_argument("--output", default=None, help="default: stdout")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("translate-po", help="fill the untranslated entries of <out-dir>/<lang>.po from a .pot "
                                            "template (machine translations marked fuzzy; existing ones kept)")
    p.add_argument("template", help="the .pot (or a .po whose msgids to translate)")
    p.add_argument("--model", required=True)
    p.add_argument("--langs", type=comma_list, default=None, help="default: every language of the model")
    p.add_argument("--out-dir", default="po", help="holds <lang>.po, written or updated (default: po)")
    p.set_defaults(func=cmd_translate_po)
    p = sub.add_parser("translate-file", help="fill the untranslated units of an XLIFF, .ts, .po, Android, JSON, "
                                              ".properties or YAML file into --out (drafts marked for review)")
    p.add_argument("file", help="the translation file; for Android/JSON/properties/YAML the target language's file "
                                "(it may not exist yet)")
    p.add_argument("--template", default=None,
                   help="monolingual formats: the source-language file (values/strings.xml)")
    p.add_argument("--lang", default=None, help="default: the language the file declares")
    p.add_argument("--out", required=True, help="where to write the filled file (never the file itself)")
    p.add_argument("--format", default=None, help="default: by extension (xliff, xliff2, ts, po, android, json, "
                                                  "i18next, properties, yaml, ruby-yaml)")
    p.add_argument("--model", required=True)
    p.set_defaults(func=cmd_translate_file)
    for name in ("translate-po", "translate-file"):
        p = sub.choices[name]
        p.add_argument("--tm", nargs="+", default=[], metavar="FILE",
                       help="translation memory (.po, .mo, .tmx): exact matches are reused before the model, marked "
                            "for review")
        p.add_argument("--tm-installed", nargs="*", default=None, metavar="ROOT",
                       help="translation memory from the catalogs installed here (/usr/share/locale, and these locale "
                            "roots); translate-po never reads the template's own domain")
        p.add_argument("--glossary", default=None,
                       help="terms (.csv or .tbx) kept verbatim or as their required translation")
        p.add_argument("--min-confidence", type=fraction, default=None,
                       help="leave units whose confidence (0-1, as in the note of each filled one) is below this "
                            "untranslated (default: fill them all)")
    for name in ("evaluate", "translate", "translate-po", "translate-file"):
        p = sub.choices[name]
        p.add_argument("--max-new-tokens", type=int_at_least(1), default=None,
                       help="at most the model's max_target_positions; default: the generation config")
        p.add_argument("--batch-size", type=int_at_least(1), default=32)
        p.add_argument("--num-beams", type=int_at_least(1), default=None, help="default: the model's generation config")
        p.add_argument("--no-repeat-ngram-size", type=int_at_least(0), default=None,
                       help="never repeat an n-gram of this size in an output (0: off); default: the generation config")
        p.add_argument("--repetition-penalty", type=positive_float, default=None,
                       help="divide the logits of tokens already in an output by this (1.0: off; as in transformers); "
                            "default: the generation config")
        p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
        p.add_argument("--quantize", choices=["none", "int8"], default="none",
                       help="int8: dynamic int8 quantization of the decoder heads, for CPU inference")

    p = sub.add_parser("info", help="languages, sizes, sharing mode, generation settings, recipe and scores of a "
                                    "model folder")
    p.add_argument("--model", required=True, help="a model folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("build-data", help="build a multi-target corpus")
    kinds = p.add_subparsers(dest="kind", required=True)
    g = kinds.add_parser("gettext", help="from gettext catalogs (.mo/.po): /usr/share/locale and pycountry's")
    g.add_argument("--langs", type=comma_list, required=True, help="e.g. de,fr,es,ru")
    g.add_argument("--out", required=True)
    g.add_argument("--roots", nargs="+", default=None, help="locale roots holding <lang>/LC_MESSAGES/*.mo")
    g.add_argument("--test-domains", type=comma_list, default=None, help="catalogs held out for test")
    g.add_argument("--heldout-domains", type=comma_list, default=None,
                   help="catalogs kept out of every split, written to heldout.jsonl (unseen-catalog scores)")
    g.add_argument("--max-source-words", type=int, default=None)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_build_data)
    g = kinds.add_parser(
        "hub", help="from Hub translation datasets (or local copies): ted_multi, FLORES-style configs, pairs",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="""examples:
  # ted_multi: every language in one row (its parquet conversion is read by default); pt-br rows become "pt"
  mtl-translate build-data hub --layout ted_multi --dataset neulab/ted_multi --source en --langs de,fr,pt=pt-br \\
      --out data/ted
  # FLORES: one config per language, joined by id; dev -> validation.jsonl, devtest -> test.jsonl
  mtl-translate build-data hub --layout flores --dataset openlanguagedata/flores_plus --source en=eng_Latn \\
      --langs de=deu_Latn,fr=fra_Latn --out data/flores
  # English-centric pairs (configs de-en, en-fr, ...), pivot-joined on the normalised English side
  mtl-translate build-data hub --layout pairs --dataset Helsinki-NLP/opus-100 --source en --langs de,fr,es \\
      --out data/opus --max-rows-per-split 200000 --streaming
A local folder works as --dataset too: <folder>/[<config>/]<split>.parquet|.jsonl or <split>/*.parquet.""")
    g.add_argument("--layout", required=True, choices=["ted_multi", "flores", "pairs"])
    g.add_argument("--dataset", required=True, help="Hub dataset id or local folder")
    g.add_argument("--source", type=name_map, default={"en": None},
                   help="source language CODE[=NAME] (default en): NAME is its code in ted_multi rows, its FLORES "
                        "config, its key in the pairs' translation column")
    g.add_argument("--langs", type=name_map, required=True,
                   help="target languages CODE[=NAME],...: NAME is the ted_multi code, the FLORES config, or the "
                        "pair config (default for pairs: the two codes sorted, de-en)")
    g.add_argument("--out", required=True)
    g.add_argument("--config", default=None, help="ted_multi only: the dataset config (default: its only one; a local "
                                                  "download of the parquet conversion: plain_text)")
    g.add_argument("--revision", default=None, help="Hub revision (default: refs/convert/parquet for ted_multi, "
                                                    "else main)")
    g.add_argument("--splits", type=name_map, default=None,
                   help="OUT[=SPLIT],... output split <- dataset split (default: train,validation,test; flores: "
                        "validation=dev,test=devtest)")
    g.add_argument("--text-column", default=None, help="flores only: the text column (default text; facebook/flores: "
                                                       "sentence)")
    g.add_argument("--max-rows-per-split", type=int_at_least(1), default=None,
                   help="read at most this many rows of each config's split (a quick sample)")
    g.add_argument("--streaming", action="store_true", help="stream Hub datasets instead of downloading them whole")
    g.set_defaults(func=cmd_build_hub)

    p = sub.add_parser("add-language", help="train a new language into a trained model, everything else frozen "
                                            "(other languages stay bit-identical); recipe keys: --key value")
    p.add_argument("--model", required=True, help="a folder written by `mtl-translate train` (has recipe.yaml)")
    p.add_argument("--lang", required=True, help="the new target language code")
    p.add_argument("--data", required=True, help="data with that language (local file/folder or Hub dataset id)")
    p.add_argument("--output_dir", "--output-dir", default=None, help="default: <model>-<lang>")
    p.set_defaults(func=cmd_add_language)

    p = sub.add_parser("average-checkpoints", help="a model folder with the mean weights of a run's last N "
                                                   "checkpoints (fairseq-style checkpoint averaging)")
    p.add_argument("--model", required=True, help="the run's output_dir (model folder with checkpoints/)")
    p.add_argument("--last", type=int, default=3, help="how many of the last checkpoints to average (default 3)")
    p.add_argument("--output_dir", "--output-dir", required=True)
    p.set_defaults(func=cmd_average)

    p = sub.add_parser("remove-language", help="drop a language (its head and what it owns of the encoder)")
    p.add_argument("--model", required=True)
    p.add_argument("--lang", required=True)
    p.add_argument("--output_dir", "--output-dir", required=True)
    p.set_defaults(func=cmd_remove_language)

    p = sub.add_parser("push", help="upload a trained model folder with its model card to the Hub")
    p.add_argument("--model", required=True)
    p.add_argument("--repo-id", required=True)
    p.add_argument("--private", action="store_true")
    p.add_argument("--token", default=None, help="default: HF_TOKEN or the stored login")
    p.add_argument("--space", default=None, metavar="USER/NAME",
                   help="also create or update this Gradio Space with the demo of the pushed model")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("demo", help="a web page (Gradio) that translates a text into every language at once; "
                                    "needs pip install \"mtl-translate[demo]\"")
    p.add_argument("--model", required=True, help="model folder or Hub repo id")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 serves other machines of the network too")
    p.add_argument("--share", action="store_true", help="also a temporary public gradio.live link")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("train", "compare", "add-language"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.func(args, extra)
    except (ValueError, OSError, TrainingError) as err:  # OSError: a missing file, a Hub download that failed
        sys.exit(f"mtl-translate {args.command}: error: {err}")


if __name__ == "__main__":
    main()
