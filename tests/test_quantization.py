"""int8 dynamic quantization: the heads' Linears and tied output projections (encoder on request), generate works."""

import copy
import json

import pytest
import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

from mtl_translate.cli import build_parser, main
from mtl_translate.data.collator import MultiTargetCollator
from mtl_translate.quantization import quantize_int8
from mtl_translate.translate import Translator

from .conftest import LANGS, corpus_rows


@pytest.fixture
def quantized(tiny_model):
    return quantize_int8(copy.deepcopy(tiny_model))


def test_head_linears_and_output_projection_become_int8_and_the_encoder_only_on_request(tiny_model, quantized):
    def count(module, kind):
        return sum(isinstance(m, kind) for m in module.modules())

    assert count(quantized.decoders, nn.Linear) == 0
    assert count(quantized.decoders, Int8Linear) == count(tiny_model.decoders, nn.Linear) + len(LANGS)  # + output
    assert count(quantized.encoder, nn.Linear) == count(tiny_model.encoder, nn.Linear) > 0  # float by default
    for head in quantized.decoders.values():
        vocab, dim = head.embed_tokens.weight.shape
        assert (head.output_proj.in_features, head.output_proj.out_features) == (dim, vocab)
        assert head.embed_tokens.weight.dtype == torch.float32  # the input embedding stays float
    everything = quantize_int8(copy.deepcopy(tiny_model), encoder=True)
    assert count(everything, nn.Linear) == 0 and count(everything.encoder, Int8Linear) > 0


def test_quantized_loss_and_greedy_tokens_agree_with_float32(tiny_model, quantized, tokenizer):
    batch = MultiTargetCollator(tokenizer, "en", LANGS)(corpus_rows())
    tiny_model.eval()
    with torch.no_grad():
        fp32, int8 = tiny_model(**batch).language_losses, quantized(**batch).language_losses
    for lang in LANGS:
        assert abs(int8[lang] - fp32[lang]) < 0.02 * fp32[lang], (lang, fp32, int8)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    a, b = tiny_model.generate(ids, mask, max_new_tokens=8), quantized.generate(ids, mask, max_new_tokens=8)
    for lang in LANGS:
        width = min(a[lang].shape[1], b[lang].shape[1])
        agree = (a[lang][:, :width] == b[lang][:, :width]).float().mean().item()
        assert agree >= 0.8, (lang, agree)


def test_quantized_model_translates_with_greedy_and_beam_search(quantized, tokenizer):
    translator = Translator(quantized, tokenizer)
    texts = [row["translation"]["en"] for row in corpus_rows()[:5]]
    for num_beams in (1, 3):
        out = translator.translate(texts, num_beams=num_beams, max_new_tokens=6)
        assert set(out) == set(LANGS) and all(len(out[lang]) == 5 for lang in LANGS)
        assert all(isinstance(text, str) for lang in LANGS for text in out[lang])


def test_quantized_model_decodes_head_by_head(quantized, tokenizer):
    ids = tokenizer.source(["Open file", "Quit"], padding=True, return_tensors="pt")["input_ids"]
    assert set(quantized.generate(ids, stacked=None, max_new_tokens=4)) == set(LANGS)  # auto: no stacking
    with pytest.raises(ValueError, match="head by head"):
        quantized.generate(ids, stacked=True, max_new_tokens=4)


def test_cli_quantize_flag(tiny_model, tokenizer, tmp_path):
    for command in ("translate", "evaluate"):
        extra = ["--data", "d"] if command == "evaluate" else []
        assert build_parser().parse_args([command, "--model", "m", *extra]).quantize == "none"
        assert build_parser().parse_args([command, "--model", "m", *extra, "--quantize", "int8"]).quantize == "int8"
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--model", "m", *extra, "--quantize", "int4"])
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    (tmp_path / "in.txt").write_text("Open file\nQuit\n")
    main(["translate", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "in.txt"),
          "--output", str(tmp_path / "out.jsonl"), "--quantize", "int8", "--max-new-tokens", "4"])
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == ["Open file", "Quit"] and all(set(LANGS) <= set(r) for r in records)
