"""`shared_decoder_layers: k`: the bottom k decoder layers are one set of weights that every language runs below its
own layers (its embeddings, norms and top layers stay its own). Checked: one copy of the weights, gradients from any
language reach them, save/load, stacked decoding, the int8 path, adding a language, recipe errors."""

import copy

import pytest
import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

from mtl_translate import MTLTranslationModel, Translator
from mtl_translate.compare import single_task_recipe
from mtl_translate.configs import load_recipe
from mtl_translate.data.collator import MultiTargetCollator
from mtl_translate.languages import add_language, train_only
from mtl_translate.quantization import quantize_int8
from mtl_translate.stacked import stacked_heads

from .conftest import LANGS, corpus_rows, tiny_config


@pytest.fixture
def shared_model(tokenizer):
    torch.manual_seed(0)
    return MTLTranslationModel(tiny_config(tokenizer, decoder_layers=3, shared_decoder_layers=2))


def batch(tokenizer, langs=LANGS):
    return MultiTargetCollator(tokenizer, "en", langs)(corpus_rows())


def test_shared_layers_exist_once_below_each_heads_own(shared_model, tokenizer):
    names = [name for name, _ in shared_model.named_parameters()]
    assert any(name.startswith("shared_decoder.1.") for name in names)
    assert not any(name.startswith("shared_decoder.2.") for name in names)
    for lang in LANGS:  # one own layer each, numbered from 0
        assert any(name.startswith(f"decoders.{lang}.layers.0.") for name in names)
        assert not any(name.startswith(f"decoders.{lang}.layers.1.") for name in names)
        head = shared_model.decoders[lang]
        assert head.blocks[0] is shared_model.shared_decoder[0] and head.blocks[2] is head.layers[0]
    unshared = MTLTranslationModel(tiny_config(tokenizer, decoder_layers=3))
    per_layer = sum(p.numel() for p in shared_model.shared_decoder[0].parameters())
    assert unshared.num_parameters() - shared_model.num_parameters() == 2 * per_layer * (len(LANGS) - 1)


def test_one_language_trains_the_shared_layers_and_no_other_head(shared_model, tokenizer):
    shared_model(**batch(tokenizer, ["de"])).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in shared_model.shared_decoder.parameters())
    assert all(p.grad is None for p in shared_model.decoders["fr"].parameters())
    assert shared_model.decoders["de"].layers[0].ffn[0].weight.grad.abs().sum() > 0
    de_only = {n: p.grad.clone() for n, p in shared_model.shared_decoder.named_parameters()}
    shared_model.zero_grad()
    shared_model(**batch(tokenizer, ["de", "fr"])).loss.backward()
    assert any(not torch.equal(p.grad, de_only[n]) for n, p in shared_model.shared_decoder.named_parameters())


def test_save_and_load_keep_the_sharing_and_the_outputs(shared_model, tokenizer, tmp_path):
    Translator(shared_model, tokenizer).save_pretrained(tmp_path)
    loaded = Translator.from_pretrained(str(tmp_path), device="cpu").model
    assert loaded.config.shared_decoder_layers == 2
    assert all(loaded.decoders[lang].blocks[1] is loaded.shared_decoder[1] for lang in LANGS)
    assert loaded.state_dict().keys() == shared_model.state_dict().keys()
    data = batch(tokenizer)
    shared_model.eval()
    a = shared_model.generate(data["input_ids"], data["attention_mask"], max_new_tokens=6)
    b = loaded.generate(data["input_ids"], data["attention_mask"], max_new_tokens=6)
    assert all(torch.equal(a[lang], b[lang]) for lang in LANGS)
    with torch.no_grad():  # the loaded heads run the loaded shared weights, not a stale copy
        loaded.shared_decoder[0].ffn[0].weight.mul_(-3.0)
    c = loaded(**data).language_losses
    orig = shared_model(**data).language_losses
    assert all(c[lang] != orig[lang] for lang in LANGS), (c, orig)


def test_stacked_decoding_equals_head_by_head_and_follows_shared_updates(shared_model, tokenizer):
    data = batch(tokenizer)
    ids, mask = data["input_ids"], data["attention_mask"]
    shared_model.eval()
    outputs = []
    for _ in range(2):
        stacked = shared_model.generate(ids, mask, stacked=True, max_new_tokens=8)
        one_by_one = shared_model.generate(ids, mask, stacked=False, max_new_tokens=8)
        assert all(torch.equal(stacked[lang], one_by_one[lang]) for lang in LANGS)
        outputs.append(stacked)
        held = [layer.qkv.weight.shape[0] for layer in stacked_heads(shared_model, LANGS).blocks]
        assert held == [1] * 2 + [len(LANGS)] * (len(held) - 2)  # shared layers' weights once, own ones per language
        with torch.no_grad():  # only a shared weight changes: the cached stack must be rebuilt
            shared_model.shared_decoder[1].ffn[3].weight.normal_(std=1.0, generator=torch.Generator().manual_seed(0))
    assert any(not torch.equal(outputs[0][lang], outputs[1][lang]) for lang in LANGS)  # the change shows


def test_int8_quantizes_the_shared_layers_too(shared_model):
    quantized = quantize_int8(copy.deepcopy(shared_model))
    assert not any(type(m) is nn.Linear for m in quantized.shared_decoder.modules())
    assert quantized.decoders["de"].blocks[0].ffn[0].__class__ is Int8Linear


def test_an_added_language_runs_the_shared_layers_and_training_it_leaves_them(shared_model):
    add_language(shared_model, "it", 40)
    head = shared_model.decoders["it"]
    assert head.blocks[0] is shared_model.shared_decoder[0] and len(head.layers) == 1
    trainable = train_only(shared_model, ["it"])
    assert trainable == ["decoders.it."]
    assert not any(p.requires_grad for p in shared_model.shared_decoder.parameters())
    assert all(p.requires_grad for p in head.parameters())


def test_recipe_errors_and_single_task_models(tmp_path):
    with pytest.raises(ValueError, match=r"'shared_decoder_layers' \(3\) is more than decoder_layers \(2\)"):
        load_recipe(base={"decoder_layers": 2, "shared_decoder_layers": 3})
    with pytest.raises(ValueError, match="'shared_decoder_layers' must be >= 0"):
        load_recipe(base={"shared_decoder_layers": -1})
    recipe = load_recipe(base={"decoder_layers": 2, "shared_decoder_layers": 2})
    assert single_task_recipe(recipe, "de", tmp_path).model.shared_decoder_layers == 0


def test_info_and_the_model_card_state_the_shared_layers(shared_model, tokenizer, tmp_path, capsys):
    from mtl_translate import hub
    from mtl_translate.cli import main

    Translator(shared_model, tokenizer).save_pretrained(tmp_path)
    main(["info", "--model", str(tmp_path)])
    per_layer = sum(p.numel() for p in shared_model.shared_decoder[0].parameters())
    assert f"shared decoder layers {2 * per_layer:,}; heads: de " in capsys.readouterr().out
    text = hub.build_model_card(tmp_path, repo_id="acme/shared").text
    assert "3 decoder heads (the bottom 2 of their 3 layers shared by every language)" in text
