"""Translation memory on catalogs held out of training: share of entries filled from memory (`--tm-installed`, the
catalog's own domain excluded) and corpus chrF of memory + model against model alone, both against the human
translations in the installed catalogs.

    python scripts/tm_heldout.py --model outputs/quickstart --langs de,fr,es,ru --out /tmp/tm_heldout

Each domain's template holds the msgids of its installed catalogs in `--langs` (as `mkpot.py` makes one); an entry
is scored in a language whose installed catalog translates it (plural entries: every form, joined); an entry left
untranslated (mismatch, empty) scores as an empty string, for both systems alike.
"""

import argparse
import json
import re
from pathlib import Path

import polib
import sacrebleu

from mtl_translate import Translator
from mtl_translate.localization import translate_po

HELDOUT = ("sed", "grep", "diffutils", "findutils", "xz")


def make_template(domain: str, langs: list[str], root: Path, out: Path) -> tuple[Path, dict]:
    """`<out>/<domain>.pot` from the installed catalogs of `domain`, and the references {lang: {key: text}}."""
    pot, refs = polib.POFile(), {}
    pot.metadata = {"Project-Id-Version": domain, "Content-Type": "text/plain; charset=UTF-8"}
    keys = set()
    for lang in langs:
        path = root / lang / "LC_MESSAGES" / f"{domain}.mo"
        if not path.is_file():
            continue
        refs[lang] = {}
        for e in polib.mofile(str(path)):
            if not e.msgid:
                continue
            key = (e.msgctxt, e.msgid)
            refs[lang][key] = "\n".join(e.msgstr_plural[n] for n in sorted(e.msgstr_plural)) if e.msgid_plural \
                else e.msgstr
            if key not in keys:
                keys.add(key)
                printf = re.search(r"%[-+ #0-9.]*[diouxXsc]", e.msgid)
                pot.append(polib.POEntry(msgctxt=e.msgctxt, msgid=e.msgid, msgid_plural=e.msgid_plural,
                                         msgstr_plural={0: "", 1: ""} if e.msgid_plural else {},
                                         flags=["c-format"] if printf else []))
    path = out / f"{domain}.pot"
    pot.save(str(path))
    return path, refs


def hypotheses(po_path: Path) -> dict:
    return {(e.msgctxt, e.msgid): "\n".join(e.msgstr_plural[n] for n in sorted(e.msgstr_plural)) if e.msgid_plural
            else e.msgstr for e in polib.pofile(str(po_path)) if not e.obsolete}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--langs", default="de,fr,es,ru")
    parser.add_argument("--domains", default=",".join(HELDOUT))
    parser.add_argument("--root", default="/usr/share/locale", help="where the held-out catalogs are installed")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    langs, out = args.langs.split(","), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    translator = Translator.from_pretrained(args.model)
    hyps, refs, counts = {}, {}, {}  # system -> lang -> [text]; lang -> [text]; lang -> {entries, memory}
    memory_only = {}  # lang -> (memory hyps, model hyps, refs) on the entries memory filled
    for domain in args.domains.split(","):
        template, domain_refs = make_template(domain, langs, Path(args.root), out)
        present = [lang for lang in langs if lang in domain_refs]
        outputs = {system: translate_po(template, translator, present, out / system / domain,
                                        tm_installed=system == "memory") for system in ("model", "memory")}
        for lang in present:
            model, memory = (hypotheses(out / system / domain / f"{lang}.po") for system in ("model", "memory"))
            recalled = {(e.msgctxt, e.msgid) for e in polib.pofile(str(out / "memory" / domain / f"{lang}.po"))
                        if e.tcomment.startswith("translation memory")}
            count = counts.setdefault(lang, {"entries": 0, "memory": 0})
            count["entries"] += outputs["memory"][lang]["entries"]
            count["memory"] += outputs["memory"][lang]["memory"]
            for key, ref in domain_refs[lang].items():
                refs.setdefault(lang, []).append(ref)
                hyps.setdefault("model", {}).setdefault(lang, []).append(model[key])
                hyps.setdefault("memory", {}).setdefault(lang, []).append(memory[key])
                if key in recalled:
                    subset = memory_only.setdefault(lang, ([], [], []))
                    for column, text in zip(subset, (memory[key], model[key], ref)):
                        column.append(text)
    chrf = sacrebleu.CHRF()
    results = {}
    for lang in counts:
        subset = memory_only.get(lang, ([], [], []))
        results[lang] = {
            **counts[lang], "share": counts[lang]["memory"] / counts[lang]["entries"], "scored": len(refs[lang]),
            "chrf_model": chrf.corpus_score(hyps["model"][lang], [refs[lang]]).score,
            "chrf_memory_model": chrf.corpus_score(hyps["memory"][lang], [refs[lang]]).score,
            "chrf_on_memory_entries": {"memory": chrf.corpus_score(subset[0], [subset[2]]).score if subset[0] else None,
                                       "model": chrf.corpus_score(subset[1], [subset[2]]).score if subset[0] else None},
        }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
