"""The model: shapes, missing targets, language skipping, save/load, translate-all."""

import pytest
import torch
from transformers import AutoConfig, AutoModel

from mtl_translate import MTLConfig, MTLTranslationModel
from mtl_translate.data.collator import MultiTargetCollator
from mtl_translate.encoders import freeze_encoder_layers
from mtl_translate.generation import beam_search, greedy_search
from mtl_translate.translate import Translator
from mtl_translate.weighting_methods import LOSS_WEIGHTINGS, check_loss_weighting

from .conftest import LANGS, corpus_rows, tiny_config


def batch_of(tokenizer, rows):
    return MultiTargetCollator(tokenizer, "en", LANGS)(rows)


def head_grads(model, lang):
    return {n: p.grad for n, p in model.decoders[lang].named_parameters()}


def test_forward_shapes_and_per_language_losses(tiny_model, tokenizer):
    batch = batch_of(tokenizer, corpus_rows()[:4])
    out = tiny_model(**batch)
    assert set(out.language_losses) == set(LANGS)
    assert torch.allclose(out.loss, sum(out.language_losses.values()))
    memory = tiny_model.encode(batch["input_ids"], batch["attention_mask"], {"de": slice(None)})["de"]
    assert memory.shape == (*batch["input_ids"].shape, 48)
    head = tiny_model.decoders["de"]
    labels = batch["labels"]["de"]
    logits = head(labels.clamp(min=0), head.cross_kv(memory), batch["attention_mask"][:, None, None, :].bool())
    assert logits.shape == (*labels.shape, tokenizer["de"].vocab_size)


def test_static_loss_weights_scale_each_language(tokenizer):
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(tokenizer, loss_weights={"de": 2.0, "fr": 0.5}))
    out = model(**batch_of(tokenizer, corpus_rows()[:4]))
    expected = 2.0 * out.language_losses["de"] + 0.5 * out.language_losses["fr"] + out.language_losses["es"]
    assert torch.allclose(out.loss, expected)


def test_language_absent_from_batch_does_not_run(tiny_model, tokenizer):
    rows = [r for r in corpus_rows() if r["translation"]["de"] is None]  # "Invalid argument": no German
    batch = batch_of(tokenizer, rows)
    assert "de" not in batch["labels"]
    out = tiny_model(**batch)
    out.loss.backward()
    assert "de" not in out.language_losses
    assert all(g is None for g in head_grads(tiny_model, "de").values())
    assert all(g is not None for g in head_grads(tiny_model, "fr").values())


def test_missing_target_gives_zero_gradient_and_changes_nothing_else(tiny_model, tokenizer):
    """Row 1 has no German: its source text must not influence the German head or the German loss at all."""
    rows = corpus_rows()[:2]
    rows[1]["translation"]["de"] = None
    other = [dict(r, translation=dict(r["translation"])) for r in rows]
    other[1]["translation"]["en"] = "Print document"  # a different source for the row without German
    results = []
    for variant in (rows, other):
        tiny_model.zero_grad()
        out = tiny_model(**batch_of(tokenizer, variant))
        out.language_losses["de"].backward()
        results.append((out.language_losses["de"].detach(), head_grads(tiny_model, "de")))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-6), name
    # and the German loss is exactly the loss of the one row that has German
    alone = tiny_model(**batch_of(tokenizer, rows[:1])).language_losses["de"]
    assert torch.allclose(loss_a, alone, atol=1e-5)


def test_missing_target_row_gets_zero_encoder_gradient_from_that_language(tiny_model, tokenizer):
    rows = corpus_rows()[:2]
    rows[1]["translation"]["de"] = None
    batch = batch_of(tokenizer, rows)
    assert (batch["labels"]["de"][1] == -100).all()
    embeddings = tiny_model.encoder.get_input_embeddings()
    captured = {}

    def keep(module, inputs, output):
        captured["out"] = output

    hook = embeddings.register_forward_hook(keep)
    out = tiny_model(**batch)
    captured["out"].retain_grad()
    out.language_losses["de"].backward()
    hook.remove()
    grad = captured["out"].grad  # (B, S, E)
    assert grad[1].abs().sum() == 0
    assert grad[0].abs().sum() > 0


def test_unknown_language_in_labels_is_a_clear_error(tiny_model, tokenizer):
    batch = batch_of(tokenizer, corpus_rows()[:2])
    batch["labels"]["xx"] = batch["labels"].pop("de")
    with pytest.raises(ValueError, match=r"unknown language.*\['xx'\].*de"):
        tiny_model(**batch)


def test_save_and_reload_with_automodel_gives_identical_outputs(tiny_model, tokenizer, tmp_path):
    translator = Translator(tiny_model, tokenizer)
    translator.save_pretrained(tmp_path)
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert {"config.json", "model.safetensors", "generation_config.json"} <= files
    assert {f"tokenizers/{lang}/tokenizer.model" for lang in LANGS} <= files
    assert "tokenizers/source/tokenizer_config.json" in files
    assert len([f for f in files if f.endswith(".safetensors")]) == 1  # encoder stored once, in one file
    assert isinstance(AutoConfig.from_pretrained(tmp_path), MTLConfig)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(reloaded, MTLTranslationModel)
    batch = batch_of(tokenizer, corpus_rows()[:4])
    tiny_model.eval()
    a, b = tiny_model(**batch), reloaded(**batch)
    for lang in LANGS:
        assert torch.equal(a.language_losses[lang], b.language_losses[lang])
    again = Translator.from_pretrained(str(tmp_path), device="cpu")
    texts = ["Open file", "Quit"]
    assert again.translate(texts, num_beams=2, max_new_tokens=6) == translator.translate(texts, num_beams=2,
                                                                                           max_new_tokens=6)


def test_translate_all_equals_per_language_generation(tiny_model, tokenizer):
    translator = Translator(tiny_model, tokenizer)
    texts = ["Open file", "Delete selected items", "Quit", "Show help"]
    for num_beams in (1, 3):
        together = translator.translate(texts, num_beams=num_beams, max_new_tokens=8, batch_size=3)
        assert set(together) == set(LANGS) and all(len(v) == len(texts) for v in together.values())
        for lang in LANGS:
            alone = translator.translate(texts, [lang], num_beams=num_beams, max_new_tokens=8, batch_size=3)
            assert alone[lang] == together[lang]


def test_beam_search_with_one_beam_equals_greedy(tiny_model, tokenizer):
    batch = batch_of(tokenizer, corpus_rows()[:5])
    tiny_model.eval()
    memory = tiny_model.encode(batch["input_ids"], batch["attention_mask"], {"de": slice(None)})["de"]
    mask = batch["attention_mask"][:, None, None, :].bool()
    ids = dict(bos=2, eos=3, pad=0, max_new_tokens=7)
    for lang in LANGS:
        head = tiny_model.decoders[lang]
        greedy = greedy_search(head, head.cross_kv(memory), mask, **ids)
        beam = beam_search(head, head.cross_kv(memory), mask, num_beams=1, **ids)
        assert greedy.shape[0] == 5 and greedy.shape[1] <= 7
        assert torch.equal(greedy[:, : beam.shape[1]], beam) and (greedy[:, beam.shape[1]:] == 0).all()


def test_unknown_translation_language_lists_the_models_languages(tiny_model, tokenizer):
    with pytest.raises(ValueError, match=r"unknown target language.*\['it'\].*\['de', 'fr', 'es'\]"):
        Translator(tiny_model, tokenizer).translate(["Quit"], ["de", "it"])


def test_freeze_encoder_layers(tiny_model):
    freeze_encoder_layers(tiny_model.encoder, 0)
    assert not any(p.requires_grad for p in tiny_model.encoder.parameters())
    model = tiny_model
    model.encoder.requires_grad_(True)
    freeze_encoder_layers(model.encoder, 1)
    trainable = {n for n, p in model.encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("encoder.layer.0.") for n in trainable)  # the top (only) block
    assert not model.encoder.embeddings.word_embeddings.weight.requires_grad


def test_beam_search_with_enough_beams_finds_the_exact_best_sequence():
    """With more beams than prefixes, beam search is exhaustive: compare with brute force over all sequences."""
    from itertools import product

    from mtl_translate.decoder import DecoderHead

    torch.manual_seed(1)
    config = MTLConfig(languages=[], decoder_layers=1, decoder_hidden_size=16, decoder_attention_heads=2,
                       decoder_ffn_dim=32, decoder_dropout=0.0)
    head = DecoderHead(6, 16, config).eval()
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.5)  # a peaky, arbitrary distribution
    memory, mask = torch.randn(1, 4, 16), torch.ones(1, 1, 1, 4, dtype=torch.bool)
    bos, eos, length, penalty = 2, 3, 3, 1.0

    def score(seq):
        ids = torch.tensor([[bos, *seq[:-1]]])
        logp = head(ids, head.cross_kv(memory), mask).log_softmax(-1)[0]
        return sum(logp[t, tok].item() for t, tok in enumerate(seq)) / len(seq) ** penalty

    candidates = [list(s) for n in range(1, length + 1) for s in product(range(6), repeat=n)
                  if (s[-1] == eos or n == length) and eos not in s[:-1]]
    best = max(candidates, key=score)
    found = beam_search(head, head.cross_kv(memory), mask, bos=bos, eos=eos, pad=0, max_new_tokens=length,
                        num_beams=50, length_penalty=penalty)[0].tolist()
    assert found[: len(best)] == best and all(t == 0 for t in found[len(best):])


def test_per_language_generation_config_survives_save_and_call_overrides_win(tiny_model, tmp_path):
    tiny_model.generation_config.per_language = {"de": {"num_beams": 4, "max_new_tokens": 9}}
    tiny_model.save_pretrained(tmp_path)
    reloaded = MTLTranslationModel.from_pretrained(tmp_path)
    assert reloaded.generation_settings("de") == {"num_beams": 4, "max_new_tokens": 9, "length_penalty": 1.0,
                                                  "no_repeat_ngram_size": 0, "repetition_penalty": 1.0}
    assert reloaded.generation_settings("fr")["num_beams"] == 1
    assert reloaded.generation_settings("de", num_beams=2, max_new_tokens=None)["num_beams"] == 2


def test_bf16_mixed_precision_through_accelerate(tiny_model, tokenizer):
    """The `mixed_precision` recipe flag: Accelerate autocasts the forward pass; weights and grads stay fp32."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    try:
        accelerator = Accelerator(mixed_precision="bf16", cpu=True)
        model = accelerator.prepare(tiny_model)
        seen = []
        tiny_model.decoders["de"].layers[0].ffn[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        out = model(**batch_of(tokenizer, corpus_rows()[:4]))
        assert seen == [torch.bfloat16]  # matmuls ran in bf16 ...
        assert torch.isfinite(out.loss)
        accelerator.backward(out.loss)
        grad = tiny_model.decoders["de"].embed_tokens.weight.grad
        assert grad.dtype == torch.float32 and torch.isfinite(grad).all() and grad.abs().sum() > 0  # ... weights fp32
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("method", sorted(LOSS_WEIGHTINGS))
def test_every_loss_weighting_trains_the_model_and_saves_its_state(tokenizer, tmp_path, method):
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(tokenizer, loss_weighting=method, dwa_window=2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = batch_of(tokenizer, corpus_rows()[:8])
    losses = []
    for _ in range(6):
        out = model(**batch)
        out.loss.backward()
        assert all(p.grad is not None for p in model.encoder.encoder.parameters())
        optimizer.step()
        optimizer.zero_grad()
        model.loss_weighting.end_step({lang: v.item() for lang, v in out.language_losses.items()})  # the trainer's call
        losses.append(sum(out.language_losses.values()).item())
    assert losses[-1] < losses[0]
    weights = model.loss_weighting.current_weights()
    assert set(weights) == set(LANGS)
    if method not in ("static", "pcgrad") and not check_loss_weighting(method).gradient:
        assert any(abs(w - 1.0) > 1e-4 for w in weights.values())  # learned, dynamic or random: not the plain sum
    if method == "gradnorm":
        assert any(abs(w - 1.0) > 1e-4 for w in weights.values())  # learned: they moved
    if method == "gradvac":
        assert model.loss_weighting.targets.abs().sum() > 0  # the target cosines moved
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).loss_weighting
    assert loaded.current_weights() == pytest.approx(weights)
    state = model.loss_weighting.state_dict()
    assert loaded.state_dict().keys() == state.keys() and all(torch.equal(loaded.state_dict()[k], v)
                                                              for k, v in state.items())


def step_saving(model, batch) -> tuple[int, dict]:
    """Bytes of the tensors autograd keeps for backward outside checkpointed regions, and the gradients."""
    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    model.zero_grad()
    torch.manual_seed(3)  # the same dropout masks in both runs
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    loss.backward()
    return saved, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_activation_checkpointing_keeps_gradients_and_drops_head_activations(tokenizer):
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(tokenizer, decoder_dropout=0.1)).train()
    batch = batch_of(tokenizer, corpus_rows()[:8])
    kept, grads = step_saving(model, batch)
    model.activation_checkpointing_enable()
    assert all(model.decoders[lang].gradient_checkpointing for lang in LANGS)
    kept_checkpointed, grads_checkpointed = step_saving(model, batch)
    assert grads.keys() == grads_checkpointed.keys() and len(grads) > 20
    for name, grad in grads.items():
        torch.testing.assert_close(grads_checkpointed[name], grad, msg=name)
    assert kept_checkpointed < kept / 10, (kept_checkpointed, kept)  # heads keep only their inputs
