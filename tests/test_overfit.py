"""End to end: train -> generate -> BLEU. A small model must memorise 16 sentences in 3 languages."""

import torch

from mtl_translate.data.collator import MultiTargetCollator
from mtl_translate.evaluation import evaluate_translator
from mtl_translate.translate import Translator

from .conftest import LANGS, corpus_rows


def overfit(model, tokenizer, steps=200, lr=3e-3):
    rows = corpus_rows()
    batch = MultiTargetCollator(tokenizer, "en", LANGS)(rows)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return loss.item()


def test_overfit_16_sentences_reaches_bleu_90(tiny_model, tokenizer):
    final_loss = overfit(tiny_model, tokenizer)
    translator = Translator(tiny_model, tokenizer)
    rows = [row["translation"] for row in corpus_rows()]
    for num_beams in (1, 4):
        results = evaluate_translator(translator, rows, "en", num_beams=num_beams)
        assert results["n"] == {"de": 15, "fr": 15, "es": 15}
        assert min(results["bleu"].values()) >= 90, (final_loss, num_beams, results)
