"""`sharing: adapters`: identity at init, placement after every block, per-language gradients, a frozen encoder,
saving, translate-all, adding and removing a language, and a training run from a recipe."""

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from transformers import AutoModel, BertModel

from mtl_translate import MTLTranslationModel
from mtl_translate.configs import load_recipe
from mtl_translate.sharing import build_sharing
from mtl_translate.sharing.adapters import Adapter
from mtl_translate.train import run
from mtl_translate.translate import Translator

from .conftest import LANGS, corpus_rows, tiny_config, tiny_recipe
from .test_sharing import batch_of, has_grad, three_layer_encoder


def adapter_config(tokenizer, **kwargs):
    return tiny_config(tokenizer, encoder=three_layer_encoder(tokenizer).to_dict(), sharing="adapters", adapter_size=8,
                       **kwargs)


def adapter_model(tokenizer):
    """3 encoder blocks, adapters of width 8; `pretrained` is the plain encoder it was loaded from."""
    torch.manual_seed(0)
    model = MTLTranslationModel(adapter_config(tokenizer))
    pretrained = BertModel(three_layer_encoder(tokenizer)).eval()
    model.load_encoder_weights(pretrained)
    return model, pretrained


def perturb(module, scale=0.1):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


def encode_all(model, batch, rows=None):
    return model.encode(batch["input_ids"], batch["attention_mask"], rows or dict.fromkeys(model.decoders, slice(None)))


def with_adapters(encoder, adapters, batch):
    """Reference: the plain encoder with `adapters[i]` applied to block i's output by forward hooks."""
    hooks = [block.register_forward_hook(lambda module, args, out, a=adapter: (a(out[0]), *out[1:])
                                         if isinstance(out, tuple) else a(out))
             for block, adapter in zip(encoder.encoder.layer, adapters)]
    try:
        return encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    finally:
        for hook in hooks:
            hook.remove()


def test_an_adapter_is_a_residual_bottleneck_on_the_normalised_states():
    torch.manual_seed(0)
    adapter = Adapter(6, 3)
    assert torch.equal(adapter(x := torch.randn(2, 4, 6)), x)  # W_up = 0
    perturb(adapter)
    h = F.layer_norm(x, (6,), adapter.norm.weight, adapter.norm.bias)  # (2, 4, 6)
    expected = x + F.relu(h @ adapter.down.weight.T + adapter.down.bias) @ adapter.up.weight.T + adapter.up.bias
    torch.testing.assert_close(adapter(x), expected)


def test_new_adapters_are_the_identity(tokenizer):
    model, pretrained = adapter_model(tokenizer)
    model.eval()
    assert [len(model.adapters[lang]) for lang in LANGS] == [3, 3, 3]  # one per block and language
    batch = batch_of(tokenizer, corpus_rows()[:5])  # padded rows
    expected = pretrained(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    for lang, memory in encode_all(model, batch).items():
        torch.testing.assert_close(memory, expected)


def test_each_language_reads_the_encoder_with_its_own_adapter_after_every_block(tokenizer):
    model, pretrained = adapter_model(tokenizer)
    perturb(model.adapters)
    model.eval()
    batch = batch_of(tokenizer, corpus_rows()[:6])
    rows = {"de": torch.tensor([True, False, True, True, False, True]), "fr": slice(None), "es": slice(2, 4)}
    memory = encode_all(model, batch, rows)
    for lang, keep in rows.items():
        expected = with_adapters(pretrained, model.adapters[lang], batch)[keep]
        torch.testing.assert_close(memory[lang], expected)
    assert not torch.allclose(memory["fr"][2:4], memory["es"])


@pytest.mark.parametrize("lang", LANGS)
def test_gradient_reaches_a_languages_adapters_from_its_own_loss_only(tokenizer, lang):
    model, _ = adapter_model(tokenizer)
    perturb(model.adapters)  # W_up != 0: every adapter weight is on the gradient path
    model(**batch_of(tokenizer, corpus_rows()[:4])).language_losses[lang].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.adapters[lang].parameters())
    assert not any(has_grad(model.adapters[other]) for other in LANGS if other != lang)
    assert has_grad(model.encoder.encoder.layer[0])  # the shared encoder learns from every language


def test_a_frozen_encoder_leaves_the_adapters_training(tokenizer):
    model, _ = adapter_model(tokenizer)
    model.freeze_encoder(0)
    perturb(model.adapters)
    model(**batch_of(tokenizer, corpus_rows()[:4])).loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.adapters.parameters())


def test_activation_checkpointing_gives_the_same_gradients(tokenizer):
    grads = []
    for checkpointing in (False, True):
        model, _ = adapter_model(tokenizer)
        perturb(model.adapters)
        if checkpointing:
            model.activation_checkpointing_enable()
        model.train()
        model(**batch_of(tokenizer, corpus_rows()[:4])).loss.backward()
        grads.append([p.grad for p in model.encoder.encoder.layer.parameters()] +
                     [p.grad for p in model.adapters.parameters()])
    for plain, recomputed in zip(*grads):
        torch.testing.assert_close(plain, recomputed)


def test_save_load_and_translate_all(tokenizer, tmp_path):
    model, _ = adapter_model(tokenizer)
    perturb(model.adapters)
    translator = Translator(model, tokenizer)
    translator.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert reloaded.config.sharing == "adapters"
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), reloaded.state_dict().values()))
    model.eval()
    batch = batch_of(tokenizer, corpus_rows()[:4])
    a, b = model(**batch), reloaded(**batch)
    assert model(batch["input_ids"]).loss is None  # no labels: no language is encoded
    assert all(torch.equal(a.language_losses[lang], b.language_losses[lang]) for lang in LANGS)
    texts = ["Open file", "Quit", "Delete selected items"]
    together = translator.translate(texts, num_beams=2, max_new_tokens=6)
    for lang in LANGS:
        assert translator.translate(texts, [lang], num_beams=2, max_new_tokens=6)[lang] == together[lang]
    with pytest.raises(ValueError, match="have encoder states of their own"):
        model.generate(batch["input_ids"], batch["attention_mask"], stacked=True)


def test_adding_a_language_changes_no_weight_and_removing_drops_only_its_adapters(tokenizer):
    model, pretrained = adapter_model(tokenizer)
    perturb(model.adapters)
    before = {name: p.clone() for name, p in model.state_dict().items()}
    new_config = adapter_config(tokenizer, languages=[*LANGS, "it"],
                                target_vocab_sizes={**model.config.target_vocab_sizes, "it": 50})
    build_sharing(new_config).add_language(model, "it")
    after = model.state_dict()
    assert all(torch.equal(after[name], value) for name, value in before.items())
    assert {name for name in after if name not in before} == {
        f"adapters.it.{name}" for name in model.adapters["de"].state_dict()}
    batch = batch_of(tokenizer, corpus_rows()[:4])
    model.eval()
    expected = pretrained(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(encode_all(model, batch, {"it": slice(None)})["it"], expected)  # identity
    build_sharing(new_config).remove_language(model, "de")
    left = model.state_dict()
    assert set(left) == set(after) - {name for name in after if name.startswith("adapters.de.")}
    assert all(torch.equal(left[name], after[name]) for name in left)


def test_quickstart_recipe_and_a_short_training_run_train_the_adapters(corpus_dir, tiny_encoder_dir, tmp_path):
    recipe = load_recipe("recipes/quickstart/config_adapters.yaml").model
    assert (recipe.sharing, recipe.trainable_encoder_layers) == ("adapters", 0)
    out = tmp_path / "run"
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(corpus_dir, tiny_encoder_dir, out, sharing="adapters", adapter_size=8,
                                               trainable_encoder_layers=0, max_steps=3, eval_steps=3, save_steps=3)))
    run(load_recipe(str(path)))
    trained, encoder = load_file(out / "model.safetensors"), load_file(f"{tiny_encoder_dir}/model.safetensors")
    assert all(torch.equal(trained[f"encoder.{name}"], w) for name, w in encoder.items())  # frozen
    ups = [w for name, w in trained.items() if name.startswith("adapters.") and name.endswith("up.weight")]
    assert len(ups) == 2 * len(LANGS) and all(w.abs().sum() > 0 for w in ups)  # every adapter left the identity
