"""`mtl-translate add-language` / `remove-language`: languages after training, on model folders.

Adding trains the new language's tokenizer, head and owned encoder parts from the model's own recipe (its
`recipe.yaml`), with everything else frozen; removing drops what the language owns. Every other language keeps
its weights bit for bit (languages.py), so its scores are carried over.
"""

import json
from pathlib import Path

import yaml

from .configs import load_recipe
from .evaluation import PER_LANGUAGE, summarize
from .hub import save_model_card
from .languages import groups_without, remove_language
from .translate import Translator


def saved_recipe(model_dir) -> dict:
    path = Path(model_dir, "recipe.yaml")
    if not path.is_file():
        raise ValueError(f"{model_dir} has no recipe.yaml (written by `mtl-translate train`): add-language trains "
                         "the new language with the recipe the model was trained with.")
    return yaml.safe_load(path.read_text())


def add_language_to_folder(model_dir: str, lang: str, data: str, output_dir: str | None = None,
                           overrides: list[str] | None = None) -> dict:
    """Trains `lang` into a copy of the model in `model_dir` (default output: `<model_dir>-<lang>`) on the rows of
    `data` that have it; returns the test results (the other languages' carried over)."""
    from .train import run

    base = saved_recipe(model_dir)
    if lang in base["target_langs"]:
        raise ValueError(f"{model_dir} already translates into {lang!r} ({', '.join(base['target_langs'])}); to train "
                         f"it again, everything else frozen: mtl-translate train {Path(model_dir, 'recipe.yaml')} "
                         f"--init_model {model_dir} --train_languages {lang} --dataset_name {data} "
                         "--output_dir NEW_DIR")
    base.update(init_model=str(model_dir), target_langs=[*base["target_langs"], lang], train_languages=[lang],
                dataset_name=data, build_gettext=False, output_dir=output_dir or f"{str(model_dir).rstrip('/')}-{lang}",
                resume_from_checkpoint=None, overwrite_output_dir=False, push_to_hub=False,
                shared_vocabularies=[], share_group_embeddings=False)  # the model's groups stay as they are
    return run(load_recipe(base=base, overrides=overrides))


def remove_language_from_folder(model_dir: str, lang: str, output_dir: str) -> Path:
    """Writes the model without `lang` (weights, tokenizers, recipe, scores, card) to `output_dir`."""
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"output_dir {output_dir} is not empty; choose a new folder.")
    translator = Translator.from_pretrained(model_dir, device="cpu")
    remove_language(translator.model, lang)
    del translator.tokenizer.targets[lang]
    translator.save_pretrained(str(out))
    recipe = Path(model_dir, "recipe.yaml")
    if recipe.is_file():
        values = yaml.safe_load(recipe.read_text())
        values["target_langs"] = [other for other in values["target_langs"] if other != lang]
        values["loss_weights"] = {k: v for k, v in (values.get("loss_weights") or {}).items() if k != lang}
        groups = {g: [m for m in members if m != lang] for g, members in (values.get("language_groups") or {}).items()}
        values["language_groups"] = {g: members for g, members in groups.items() if members}
        values["shared_vocabularies"] = groups_without(values.get("shared_vocabularies"), lang)
        values["share_group_embeddings"] = bool(values.get("share_group_embeddings") and values["shared_vocabularies"])
        (out / "recipe.yaml").write_text(yaml.safe_dump(values, sort_keys=False, allow_unicode=True))
    scores = Path(model_dir, "eval_results.json")
    if scores.is_file():
        results = json.loads(scores.read_text())
        for key in PER_LANGUAGE:
            results.get(key, {}).pop(lang, None)
        if results.get("bleu"):
            summarize(results)
        (out / "eval_results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    save_model_card(out)
    return out
