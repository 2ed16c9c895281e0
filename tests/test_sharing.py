"""Sharing modes: soft copies pulled together by a penalty, partial (hierarchical) sharing by identity and gradient."""

import pytest
import torch
from transformers import AutoModel, BertConfig, BertModel

from mtl_translate import MTLTranslationModel
from mtl_translate.data.collator import MultiTargetCollator
from mtl_translate.hub import build_model_card
from mtl_translate.sharing.soft import soft_sharing_penalty
from mtl_translate.translate import Translator

from .conftest import LANGS, corpus_rows, tiny_config


def batch_of(tokenizer, rows, langs=LANGS):
    return MultiTargetCollator(tokenizer, "en", langs)(rows)


def three_layer_encoder(tokenizer) -> BertConfig:
    return BertConfig(vocab_size=tokenizer.source.vocab_size, hidden_size=48, num_hidden_layers=3,
                      num_attention_heads=2, intermediate_size=96, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)


def partial_model(tokenizer, **kwargs):
    torch.manual_seed(0)
    config = tiny_config(tokenizer, encoder=three_layer_encoder(tokenizer).to_dict(), sharing="partial",
                         shared_layers=1, language_groups={"romance": ["fr", "es"]}, **kwargs)
    return MTLTranslationModel(config)


def grads(module):
    return [p.grad for p in module.parameters()]


def has_grad(module) -> bool:
    return any(g is not None and g.abs().sum() > 0 for g in grads(module))


def distance(a, b) -> float:
    return sum((p - q).pow(2).sum() for p, q in zip(a.parameters(), b.parameters())).sqrt().item()


def test_soft_sharing_has_one_encoder_copy_per_language(tokenizer):
    model = MTLTranslationModel(tiny_config(tokenizer, sharing="soft"))
    assert set(model.encoders) == set(LANGS) and not hasattr(model, "encoder")
    de, fr = model.encoders["de"], model.encoders["fr"]
    assert de is not fr and next(de.parameters()) is not next(fr.parameters())
    assert distance(de, fr) == 0  # all copies start from the same weights
    assert soft_sharing_penalty(model.encoders).item() == pytest.approx(0, abs=1e-9)


def test_soft_sharing_penalty_gradient_pulls_the_copies_together(tokenizer):
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(tokenizer, sharing="soft", soft_sharing_weight=1.0))
    with torch.no_grad():
        for p in model.encoders["de"].parameters():
            p.add_(0.05 * torch.randn_like(p))
    before = distance(model.encoders["de"], model.encoders["fr"])
    penalty = soft_sharing_penalty(model.encoders)
    penalty.backward()
    params = {lang: list(model.encoders[lang].parameters()) for lang in LANGS}
    for i, p in enumerate(params["de"]):  # d/dθ_de Σ_l ||θ_l − mean||² = 2 (θ_de − mean)
        mean = torch.stack([params[lang][i] for lang in LANGS]).mean(0)
        torch.testing.assert_close(p.grad, 2 * (p - mean).detach())
    with torch.no_grad():
        for p in model.encoders.parameters():
            p.sub_(0.1 * p.grad)
    assert distance(model.encoders["de"], model.encoders["fr"]) < 0.9 * before


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_soft_sharing_weight_zero_gives_independent_encoders(tokenizer, weight):
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(tokenizer, sharing="soft", soft_sharing_weight=weight))
    with torch.no_grad():
        for p in model.encoders["de"].parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = batch_of(tokenizer, corpus_rows()[:4], ["de"])  # only German targets
    out = model(**batch)
    assert out.sharing_penalty.item() > 0
    out.loss.backward()
    assert has_grad(model.encoders["de"])
    assert has_grad(model.encoders["fr"]) == (weight > 0)  # coupled only through the penalty


def test_partial_sharing_shares_bottom_blocks_by_identity_and_groups_the_top(tokenizer):
    model = partial_model(tokenizer)
    assert model.sharing_mode.group == {"de": "de", "fr": "romance", "es": "romance"}
    assert set(model.encoder_groups) == {"de", "romance"}
    assert [len(blocks) for blocks in model.encoder_groups.values()] == [2, 2]
    assert len([b for b in model.encoder.encoder.layer if list(b.parameters())]) == 1  # one shared block
    full = sum(p.numel() for p in BertModel(three_layer_encoder(tokenizer)).parameters())
    block = sum(p.numel() for p in model.encoder.encoder.layer[0].parameters())
    assert sum(p.numel() for p in model.encoder.parameters()) + sum(
        p.numel() for p in model.encoder_groups.parameters()) == full + 2 * block  # one extra copy of 2 blocks


def test_partial_sharing_equals_the_unsplit_encoder_at_start(tokenizer):
    """Each group starts as a copy of the pretrained top blocks, so every language reads the full encoder's output."""
    model = partial_model(tokenizer)
    torch.manual_seed(1)
    pretrained = BertModel(three_layer_encoder(tokenizer)).eval()
    model.load_encoder_weights(pretrained)
    model.eval()
    batch = batch_of(tokenizer, corpus_rows()[:5])
    memory = model.encode(batch["input_ids"], batch["attention_mask"], {lang: slice(None) for lang in LANGS})
    expected = pretrained(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    for lang in LANGS:
        torch.testing.assert_close(memory[lang], expected)


@pytest.mark.parametrize("lang, reached, untouched", [("fr", "romance", "de"), ("de", "de", "romance")])
def test_partial_sharing_gradient_flows_to_shared_blocks_and_own_group_only(tokenizer, lang, reached, untouched):
    model = partial_model(tokenizer)
    model(**batch_of(tokenizer, corpus_rows()[:4])).language_losses[lang].backward()
    assert has_grad(model.encoder.encoder.layer[0])
    assert has_grad(model.encoder_groups[reached])
    assert not has_grad(model.encoder_groups[untouched])


def test_partial_sharing_freezes_from_the_top_of_each_stack(tokenizer):
    model = partial_model(tokenizer)
    model.freeze_encoder(1)
    for blocks in model.encoder_groups.values():
        assert [any(p.requires_grad for p in b.parameters()) for b in blocks] == [False, True]
    assert not any(p.requires_grad for p in model.encoder.parameters())
    model.freeze_encoder(3)  # 2 group blocks + the shared one below
    assert all(p.requires_grad for p in model.encoder_groups.parameters())
    assert all(p.requires_grad for p in model.encoder.encoder.layer[0].parameters())
    assert not model.encoder.embeddings.word_embeddings.weight.requires_grad


@pytest.mark.parametrize("sharing", ["soft", "partial", "sluice"])
def test_save_load_and_translate_all_for_every_sharing_mode(tokenizer, tmp_path, sharing):
    if sharing == "partial":
        model = partial_model(tokenizer)
    else:
        torch.manual_seed(0)
        model = MTLTranslationModel(tiny_config(tokenizer, sharing=sharing))
    translator = Translator(model, tokenizer)
    translator.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert reloaded.config.sharing == sharing
    batch = batch_of(tokenizer, corpus_rows()[:4])
    model.eval()
    a, b = model(**batch), reloaded(**batch)
    for lang in LANGS:
        assert torch.equal(a.language_losses[lang], b.language_losses[lang])
    texts = ["Open file", "Quit", "Delete selected items"]
    together = translator.translate(texts, num_beams=2, max_new_tokens=6)
    for lang in LANGS:
        assert translator.translate(texts, [lang], num_beams=2, max_new_tokens=6)[lang] == together[lang]
    assert f"`{sharing}` parameter sharing" in str(build_model_card(tmp_path))


@pytest.mark.parametrize("kwargs, message", [
    (dict(sharing="sideways"), r"sharing='sideways' is not one of"),
    (dict(sharing="partial"), r"partial needs shared_layers"),
    (dict(sharing="soft", loss_weighting="pcgrad"), r"only sharing: hard has"),
    (dict(sharing="sluice", loss_weighting="gradnorm"), r"only sharing: hard has"),
    (dict(sharing="partial", shared_layers=0, language_groups={"x": ["de", "it"]}), r"\['it'\], not among"),
    (dict(sharing="partial", shared_layers=0, language_groups={"a": ["de"], "b": ["de"]}), r"'de' is in both"),
])
def test_bad_sharing_settings_are_clear_errors(tokenizer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(tokenizer, **kwargs)


def test_partial_shared_layers_must_leave_blocks_to_split(tokenizer):
    with pytest.raises(ValueError, match=r"shared_layers=1: the encoder has 1 blocks"):
        MTLTranslationModel(tiny_config(tokenizer, sharing="partial", shared_layers=1))


def test_the_model_names_no_sharing_mode():
    """Modes live behind `SharingMode` (mtl_translate/sharing/): the model and its config name none of them."""
    import inspect

    from mtl_translate import configuration_mtl, modeling_mtl
    from mtl_translate.sharing import MODES

    for module in (modeling_mtl, configuration_mtl):
        lines = [line for line in inspect.getsource(module).splitlines() if not line.strip().startswith("sharing: str")]
        named = [line for line in lines for mode in MODES if f'"{mode}"' in line or f"'{mode}'" in line]
        assert not named, (module.__name__, named)  # the config's default value aside
