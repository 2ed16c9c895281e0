"""What the cross-stitch and sluice tests share: sluice networks generalise cross-stitch (one encoder copy per
language, mixed by α after every block; sluice adds subspaces and β), so building a model, training one language
alone, freezing, saving and translating all, adding a language and a short training run are checked the same way.
`model.<sharing>` holds the mixing units: `model.cross_stitch` or `model.sluice`, {lang: its α row (and β)}."""

import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModel, BertModel

from mtl_translate import MTLTranslationModel
from mtl_translate.configs import load_recipe
from mtl_translate.hub import build_model_card
from mtl_translate.languages import add_language, remove_language, train_only
from mtl_translate.train import run
from mtl_translate.translate import Translator

from .conftest import LANGS, corpus_rows, tiny_config, tiny_recipe
from .test_sharing import batch_of, three_layer_encoder

TEXTS = ["Open file", "Quit", "Delete selected items"]


def units(model):
    """The mixing units, {lang: α row (and β)}: `model.cross_stitch` or `model.sluice`."""
    return getattr(model, model.config.sharing)


def mixed_model(tokenizer, sharing, blocks=3, languages=LANGS, diverged=True, **kwargs):
    """A `sharing` model over a `blocks`-block BERT (E = 48), its copies made to differ (as after training) unless not
    `diverged`."""
    torch.manual_seed(0)
    encoder = three_layer_encoder(tokenizer)
    encoder.num_hidden_layers = blocks
    model = MTLTranslationModel(tiny_config(tokenizer, encoder=encoder.to_dict(), sharing=sharing,
                                            languages=languages, **kwargs))
    if diverged:
        with torch.no_grad():
            for p in model.encoders.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def encode_all(model, batch):
    return model.encode(batch["input_ids"], batch["attention_mask"], dict.fromkeys(model.config.languages, slice(None)))


def cloned_weights(model) -> dict:
    return {name: value.clone() for name, value in model.state_dict().items()}


def with_a_pretrained_encoder(model, tokenizer) -> tuple:
    """Loads a freshly made pretrained encoder into every copy: (every language's memory, the encoder's own output)."""
    torch.manual_seed(1)
    pretrained = BertModel(three_layer_encoder(tokenizer)).eval()
    model.load_encoder_weights(pretrained)
    batch = batch_of(tokenizer, corpus_rows()[:5])  # padded rows
    expected = pretrained(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return encode_all(model, batch), expected


def assert_same_gradients(model, reference) -> None:
    for p, q in zip(model.parameters(), reference.parameters()):
        assert (p.grad is None) == (q.grad is None) and (p.grad is None or torch.allclose(p.grad, q.grad))


def train_alone(model, tokenizer, lang, steps=3) -> list:
    """Trains `lang` alone for `steps` steps (AdamW, lr 1e-2) and leaves the model in eval mode; returns what
    `train_only` left trainable."""
    model.train()
    model.freeze_encoder(None)
    trainable = train_only(model, [lang])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        model(**batch_of(tokenizer, corpus_rows()[:6], [lang])).loss.backward()  # a sluice penalty included
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return trainable


def check_freezing_applies_to_each_copy_and_the_units_train_unless_all_is_frozen(model) -> None:
    model.freeze_encoder(1)
    for copy_ in model.encoders.values():
        assert [any(p.requires_grad for p in b.parameters()) for b in copy_.encoder.layer] == [False, False, True]
    assert all(p.requires_grad for p in units(model).parameters())
    model.freeze_encoder(0)
    assert not any(p.requires_grad for p in [*model.encoders.parameters(), *units(model).parameters()])


def check_save_load_and_translate_all(model, tokenizer, folder) -> tuple:
    """Saves, reloads (every weight and memory bit for bit) and translates all at once as one at a time: returns
    (the reloaded model, its model card)."""
    translator = Translator(model, tokenizer)
    translator.save_pretrained(folder)
    reloaded = AutoModel.from_pretrained(folder).eval()
    assert reloaded.config.sharing == model.config.sharing
    weights = reloaded.state_dict()
    assert all(torch.equal(value, weights[name]) for name, value in model.state_dict().items())
    batch = batch_of(tokenizer, corpus_rows()[:4])
    a, b = encode_all(model, batch), encode_all(reloaded, batch)
    assert all(torch.equal(a[lang], b[lang]) for lang in LANGS)
    together = translator.translate(TEXTS, num_beams=2, max_new_tokens=6)
    assert together == {lang: translator.translate(TEXTS, [lang], num_beams=2, max_new_tokens=6)[lang]
                        for lang in LANGS}
    return reloaded, str(build_model_card(folder))


def add_es(model, tokenizer) -> tuple:
    """Adds es to a de, fr model: only es's copy, units and head are new, and nothing but α changes. Returns (the
    weights before, the weights after, a batch, the older languages' memory on it, α before)."""
    before = cloned_weights(model)
    batch = batch_of(tokenizer, corpus_rows()[:6])
    old_memory, old_alpha = encode_all(model, batch), model.sharing_mode.alpha(model).detach().clone()
    add_language(model, "es", len(tokenizer["es"]))
    after = cloned_weights(model)
    assert {".".join(name.split(".")[:2]) for name in set(after) - set(before)} == {
        "encoders.es", f"{model.config.sharing}.es", "decoders.es"}
    assert all(torch.equal(after[name], value) for name, value in before.items() if not name.endswith(".alpha"))
    return before, after, batch, old_memory, old_alpha


def check_es_trained_alone_keeps_the_others(model, tokenizer, after, batch, old_memory) -> tuple:
    """Trains the added es alone: de's and fr's memory and everything es does not own stay bit for bit. Returns (what
    `train_only` left trainable, the trained weights)."""
    trainable = train_alone(model, tokenizer, "es")
    new_memory = encode_all(model, batch)
    assert all(torch.equal(new_memory[lang], old_memory[lang]) for lang in ["de", "fr"])
    trained = cloned_weights(model)
    owned = ("encoders.es.", f"{model.config.sharing}.es.", "decoders.es.")
    assert all(torch.equal(trained[name], value) for name, value in after.items() if not name.startswith(owned))
    return trainable, trained


def check_removing_the_newest_restores(model, before) -> None:
    remove_language(model, "es")  # the newest language: nobody reads its copy, so removing it restores the model
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[name], value) for name, value in before.items())


def short_training_run(corpus_dir, tiny_encoder_dir, tmp_path, sharing) -> tuple:
    """Three steps of a tiny recipe with `sharing` (2 blocks, 1 trainable): (the saved weights, the run's folder)."""
    out = tmp_path / "run"
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(corpus_dir, tiny_encoder_dir, out, sharing=sharing,
                                               trainable_encoder_layers=1, max_steps=3, eval_steps=3, save_steps=3)))
    run(load_recipe(str(path)))
    return load_file(out / "model.safetensors"), out
