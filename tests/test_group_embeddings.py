"""`share_group_embeddings: true`: the heads of a `shared_vocabularies` group share one embedding (= output) matrix,
tied as transformers ties weights (saved once, tied again on load). Checked: one tensor, gradients from either
language reach it and none from a language outside the group, save/load, stacked decoding, training some
languages, removing a language, a real training run with a resume, recipe and config errors."""

import json

import pytest
import torch
from safetensors.torch import load_file

from mtl_translate import MTLTranslationModel, Translator
from mtl_translate import train as train_module
from mtl_translate.compare import single_task_recipe
from mtl_translate.configs import load_recipe
from mtl_translate.configuration_mtl import MTLConfig
from mtl_translate.data.collator import MultiTargetCollator
from mtl_translate.languages import remove_language, train_only

from .conftest import LANGS, corpus_rows, tiny_config, tiny_recipe


@pytest.fixture
def tied_model(tokenizer):
    sizes = {lang: len(tok) for lang, tok in tokenizer.targets.items()}
    size = max(sizes["fr"], sizes["es"])  # one vocabulary: the larger one (every id of either is valid)
    torch.manual_seed(0)
    return MTLTranslationModel(tiny_config(tokenizer, target_vocab_sizes={**sizes, "fr": size, "es": size},
                                           embedding_groups=[["fr", "es"]]))


def batch(tokenizer, langs=LANGS):
    return MultiTargetCollator(tokenizer, "en", langs)(corpus_rows())


def embedding(model, lang):
    return model.decoders[lang].embed_tokens.weight


def test_one_tensor_trained_by_both_languages_and_no_other(tied_model, tokenizer):
    assert embedding(tied_model, "fr") is embedding(tied_model, "es")
    assert embedding(tied_model, "de") is not embedding(tied_model, "fr")
    names = [name for name, _ in tied_model.named_parameters()]
    assert "decoders.fr.embed_tokens.weight" in names and "decoders.es.embed_tokens.weight" not in names
    tied_model(**batch(tokenizer, ["es"])).loss.backward()
    es_only = embedding(tied_model, "fr").grad.clone()
    assert es_only.abs().sum() > 0 and embedding(tied_model, "de").grad is None
    tied_model.zero_grad()
    tied_model(**batch(tokenizer, ["fr", "es"])).loss.backward()
    assert not torch.equal(embedding(tied_model, "fr").grad, es_only)  # French adds its gradient to the same rows
    tied_model.zero_grad()
    tied_model(**batch(tokenizer, ["de"])).loss.backward()
    assert embedding(tied_model, "fr").grad is None or not embedding(tied_model, "fr").grad.any()


def test_saved_once_and_tied_again_on_load(tied_model, tokenizer, tmp_path):
    Translator(tied_model, tokenizer).save_pretrained(tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    assert "decoders.fr.embed_tokens.weight" in saved and "decoders.es.embed_tokens.weight" not in saved
    loaded = Translator.from_pretrained(str(tmp_path), device="cpu").model
    assert loaded.config.embedding_groups == [["fr", "es"]]
    assert embedding(loaded, "es") is embedding(loaded, "fr")
    assert torch.equal(embedding(loaded, "es"), embedding(tied_model, "es"))
    data = batch(tokenizer)
    tied_model.eval()
    a = tied_model.generate(data["input_ids"], data["attention_mask"], max_new_tokens=6)
    b = loaded.generate(data["input_ids"], data["attention_mask"], max_new_tokens=6)
    assert all(torch.equal(a[lang], b[lang]) for lang in LANGS)


def test_stacked_decoding_equals_head_by_head_and_follows_the_shared_embedding(tied_model, tokenizer):
    data = batch(tokenizer)
    ids, mask = data["input_ids"], data["attention_mask"]
    tied_model.eval()
    before = tied_model.generate(ids, mask, stacked=True, max_new_tokens=8)
    assert all(torch.equal(before[lang], tied_model.generate(ids, mask, stacked=False, max_new_tokens=8)[lang])
               for lang in LANGS)
    with torch.no_grad():  # changed through French: Spanish decodes with the change too
        embedding(tied_model, "fr").normal_(std=1.0, generator=torch.Generator().manual_seed(1))
    after = tied_model.generate(ids, mask, stacked=True, max_new_tokens=8)
    assert not torch.equal(before["es"], after["es"]) and torch.equal(before["de"], after["de"])
    assert torch.equal(after["es"], tied_model.generate(ids, mask, stacked=False, max_new_tokens=8)["es"])


def test_training_some_languages_trains_the_shared_embedding_only_with_its_whole_group(tied_model):
    train_only(tied_model, ["es"])  # French reads the embedding too: it must not change
    assert not embedding(tied_model, "es").requires_grad
    assert tied_model.decoders["es"].layers[0].ffn[0].weight.requires_grad
    for param in tied_model.parameters():
        param.requires_grad_(True)
    train_only(tied_model, ["fr", "es"])
    assert embedding(tied_model, "fr").requires_grad and not embedding(tied_model, "de").requires_grad


@pytest.mark.parametrize("removed, kept", [("es", "fr"), ("fr", "es")])
def test_removing_a_member_keeps_the_other_its_embedding(tied_model, tokenizer, tmp_path, removed, kept):
    weight = embedding(tied_model, kept).detach().clone()
    remove_language(tied_model, removed)
    assert tied_model.config.embedding_groups is None and torch.equal(embedding(tied_model, kept), weight)
    target = tokenizer.targets.pop(removed)  # the session's tokenizer: put back below
    try:
        Translator(tied_model, tokenizer).save_pretrained(tmp_path)
    finally:
        tokenizer.targets[removed] = target
    loaded = MTLTranslationModel.from_pretrained(str(tmp_path))
    assert torch.equal(embedding(loaded, kept), weight) and removed not in loaded.decoders


def test_config_errors_name_the_group(tokenizer):
    sizes = {lang: len(tok) for lang, tok in tokenizer.targets.items()}
    with pytest.raises(ValueError, match=r"embedding_groups: \['fr', 'es'\] must hold 2\+ languages .* one "
                                         r"vocabulary size"):
        tiny_config(tokenizer, target_vocab_sizes={**sizes, "fr": 10, "es": 11}, embedding_groups=[["fr", "es"]])
    with pytest.raises(ValueError, match="a language may be in one group only"):
        tiny_config(tokenizer, target_vocab_sizes={lang: 10 for lang in LANGS},
                    embedding_groups=[["fr", "es"], ["es", "de"]])
    assert MTLConfig(languages=["de"], target_vocab_sizes={"de": 5}).embedding_groups is None


def test_recipe_errors_and_single_task_models(corpus_dir, tiny_encoder_dir, tmp_path):
    with pytest.raises(ValueError, match="'share_group_embeddings' is true but 'shared_vocabularies' is empty"):
        load_recipe(base={"share_group_embeddings": True})
    with pytest.raises(ValueError, match="'share_group_embeddings' with 'init_model'"):
        load_recipe(base={"share_group_embeddings": True, "shared_vocabularies": [["fr", "es"]],
                          "init_model": str(tmp_path)})
    recipe = load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "x",
                                          shared_vocabularies=[["fr", "es"]], share_group_embeddings=True))
    single = single_task_recipe(recipe, "es", tmp_path / "single-es")
    assert single.model.share_group_embeddings is False and single.validate()


def test_a_training_run_ties_saves_and_resumes_exactly(corpus_dir, tiny_encoder_dir, tmp_path, caplog):
    keys = dict(shared_vocabularies=[["fr", "es"]], share_group_embeddings=True, validation_split=None,
                lr_scheduler_type="constant_with_warmup")  # the 6-step run and the 9-step one: one schedule
    out, straight = tmp_path / "run", tmp_path / "straight"
    train_module.run(load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, out, **keys)))
    assert json.loads((out / "config.json").read_text())["embedding_groups"] == [["fr", "es"]]
    model = Translator.from_pretrained(str(out), device="cpu").model
    assert embedding(model, "fr") is embedding(model, "es")
    longer = load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, out, max_steps=9, save_steps=9, **keys))
    longer.training.resume_from_checkpoint = "latest"
    train_module.run(longer)  # the step-6 checkpoint (Accelerate's save_state) loads into the tied model
    train_module.run(load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, straight, max_steps=9, save_steps=9,
                                                  **keys)))
    resumed = Translator.from_pretrained(str(out), device="cpu").model
    assert embedding(resumed, "fr") is embedding(resumed, "es")
    assert "Removed shared tensor" not in caplog.text  # Accelerate's warning about the tie (intended) is dropped
    assert not torch.equal(embedding(resumed, "es"), embedding(model, "es"))  # steps 7-9 trained it
    assert torch.equal(embedding(resumed, "es"), embedding(Translator.from_pretrained(str(straight)).model, "es"))


def test_adding_a_language_to_a_grouped_model_keeps_the_group(corpus_dir, tiny_encoder_dir, tmp_path):
    from mtl_translate.lifelong import add_language_to_folder, remove_language_from_folder

    out = tmp_path / "fr_es"
    train_module.run(load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, out, target_langs=["fr", "es"],
                                                  shared_vocabularies=[["fr", "es"]], share_group_embeddings=True)))
    before = Translator.from_pretrained(str(out), device="cpu").model
    add_language_to_folder(str(out), "de", str(corpus_dir), str(tmp_path / "more"))
    after = Translator.from_pretrained(str(tmp_path / "more"), device="cpu").model
    assert after.config.embedding_groups == [["fr", "es"]] and embedding(after, "es") is embedding(after, "fr")
    assert torch.equal(embedding(after, "es"), embedding(before, "es"))  # trained de only: the group kept its weights
    remove_language_from_folder(str(tmp_path / "more"), "es", str(tmp_path / "less"))
    recipe = load_recipe(str(tmp_path / "less" / "recipe.yaml"))
    assert recipe.model.shared_vocabularies == [] and recipe.model.share_group_embeddings is False
    assert torch.equal(embedding(Translator.from_pretrained(str(tmp_path / "less")).model, "fr"),
                       embedding(before, "fr"))


def test_info_and_the_model_card_state_the_group(tied_model, tokenizer, tmp_path, capsys):
    from mtl_translate import hub
    from mtl_translate.cli import main
    from mtl_translate.info import model_info

    Translator(tied_model, tokenizer).save_pretrained(tmp_path)
    main(["info", "--model", str(tmp_path)])
    assert "; fr and es share one vocabulary and embedding" in capsys.readouterr().out
    params = model_info(str(tmp_path))["parameters"]
    assert params["total"] == tied_model.num_parameters() == params["encoder"] + sum(params["heads"].values()) \
        - embedding(tied_model, "fr").numel()  # the heads count the tied embedding once each
    assert "fr and es share one vocabulary and one embedding matrix" in hub.build_model_card(tmp_path).text


def test_averaged_checkpoints_keep_the_tie(corpus_dir, tiny_encoder_dir, tmp_path):
    from mtl_translate.averaging import average_checkpoints

    out = tmp_path / "run"
    train_module.run(load_recipe(base=tiny_recipe(corpus_dir, tiny_encoder_dir, out, shared_vocabularies=[["fr", "es"]],
                                                  share_group_embeddings=True, save_total_limit=2)))
    saved = [load_file(str(out / "checkpoints" / f"step_{n}" / "model.safetensors")) for n in (3, 6)]
    averaged = Translator.from_pretrained(str(average_checkpoints(str(out), 2, str(tmp_path / "avg")))).model
    assert embedding(averaged, "es") is embedding(averaged, "fr")
    mean = (saved[0]["decoders.fr.embed_tokens.weight"].double() + saved[1]["decoders.fr.embed_tokens.weight"]) / 2
    assert torch.allclose(embedding(averaged, "es").double(), mean, atol=1e-7)
