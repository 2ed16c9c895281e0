"""Decoding never emits broken text: only valid UTF-8 from byte pieces, no special token, and no U+FFFD in any
decoded string; `repetition_penalty` as transformers defines it."""

import json

import pytest
import torch
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from mtl_translate import MTLTranslationModel
from mtl_translate.cli import main
from mtl_translate.configs import load_recipe
from mtl_translate.generation import Pieces, Utf8Guard, byte_piece_offset, penalize_repeats
from mtl_translate.train import prepare_model
from mtl_translate.translate import Translator

from .conftest import tiny_recipe

PAD, UNK, BOS, EOS = 0, 1, 2, 3
OFFSET = 4  # <0x00> right after the special tokens, as SentencePiece lays out byte-fallback pieces


def byte(b: int) -> int:
    return OFFSET + b


@pytest.fixture(scope="module")
def utf8() -> tuple[set[bytes], set[bytes]]:
    """Every valid UTF-8 character (surrogates are none), and every proper prefix of one."""
    chars = {chr(c).encode() for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF}
    return chars, {code[:n] for code in chars for n in range(1, len(code))}


def allowed(guard: Utf8Guard, rows: int, vocab: int) -> torch.Tensor:
    return guard.mask(torch.zeros(rows, vocab)) == 0  # (rows, V) pieces not masked


def test_guard_allows_exactly_the_bytes_that_keep_utf8_valid(utf8):
    """In every reachable state (no character open, or any proper prefix of one) the guard allows a byte iff the
    bytes so far plus it still start valid UTF-8; EOS and ordinary pieces only between characters."""
    chars, prefixes = utf8
    vocab = OFFSET + 256 + 1  # specials, the 256 byte pieces, one ordinary piece
    pieces = Pieces.build([OFFSET], (PAD, BOS, UNK), vocab, "cpu")
    states = [b""]  # all of one length: the open characters' bytes so far
    while states:
        guard = Utf8Guard(pieces, len(states))
        for i in range(len(states[0])):
            guard.step(torch.tensor([byte(state[i]) for state in states]))
        ok = allowed(guard, len(states), vocab)
        assert (ok[:, EOS] == ok[:, vocab - 1]).all() and ok[:, EOS].tolist() == [not states[0]] * len(states)
        assert not ok[:, [PAD, BOS, UNK]].any()
        for state, row in zip(states, ok[:, OFFSET : OFFSET + 256].tolist()):
            assert row == [state + bytes([b]) in chars or state + bytes([b]) in prefixes for b in range(256)], state
        states = [state + bytes([b]) for state in states for b in range(256) if state + bytes([b]) in prefixes]


def test_guard_state_follows_beam_reordering():
    pieces = Pieces.build([OFFSET], (PAD, BOS, UNK), OFFSET + 256, "cpu")
    guard = Utf8Guard(pieces, 2)
    guard.step(torch.tensor([byte(0xE2), byte(ord("a"))]))  # row 0 opens a 3-byte character, row 1 is between
    guard.step(torch.tensor([byte(0x82), byte(0x82)]), rows=torch.tensor([0, 0]))  # both continue row 0
    ok = allowed(guard, 2, OFFSET + 256)
    assert ok[:, byte(0xAC)].all() and not ok[:, byte(ord("a"))].any() and not ok[:, EOS].any()


def test_pieces_of_stacked_languages_are_per_language():
    """Stacked rows are language-major: each block of rows reads its own language's table."""
    pieces = Pieces.build([OFFSET, None], (PAD, BOS, UNK), 300, "cpu")
    guard = Utf8Guard(pieces, 4)  # 2 languages x 2 rows
    ok = allowed(guard, 4, 300)
    assert not ok[:2, byte(0xA9)].any() and ok[2:, byte(0xA9)].all()  # a continuation byte: only in language 0


def test_byte_piece_offset_of_a_trained_tokenizer(tokenizer):
    sp = tokenizer["de"].sp_model
    assert byte_piece_offset(sp) == OFFSET
    assert [sp.id_to_piece(OFFSET + b) for b in (0, 0xA9, 0xFF)] == ["<0x00>", "<0xA9>", "<0xFF>"]


def test_decode_batch_drops_broken_byte_sequences(tokenizer):
    tok = tokenizer["de"]
    datei, offnen = tok.sp_model.encode("Datei"), tok.sp_model.encode("öffnen")
    assert tok.sp_model.decode([*datei, byte(0xA9)]) == "Datei\ufffd"  # what SentencePiece alone gives
    assert tok.decode_batch([
        [*datei, byte(0xA9), *offnen, EOS],  # a lone continuation byte
        [*datei, byte(0xE2), byte(0x82)],  # a 3-byte sequence cut off at the end
        [byte(0xC3), byte(0xA9), EOS, PAD],  # a valid "é" from two byte pieces
        [byte(0xC0), byte(0x80), *datei],  # an overlong "\0" (no valid UTF-8) first: no space left before "Datei"
        [byte(0xF0), byte(0x9F), byte(0x98), byte(0x80), byte(0xED), byte(0xA0), byte(0x80)],  # emoji, surrogate
    ]) == ["Datei öffnen", "Datei", "é", "Datei", "😀"]


# Forced logits: every step, whatever the input, these pieces score highest in this order (others score 0).
FORCED = {PAD: 11, UNK: 10, BOS: 9.5, byte(0xA9): 9, byte(0xC0): 8.5, byte(0xF5): 8, byte(0xE2): 7, EOS: 6}
VALID = [byte(0xE2), byte(0xA9), byte(0xA9)] * 2  # the best valid output: E2 opens "⩩" (E2 A9 A9) and A9 closes it


def force_logits(model):
    """Zero final norm weight and bias u, so the hidden state is u at every position; embedding rows (tied to the
    output) of the FORCED pieces are multiples of u, every other row 0."""
    torch.manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(model.config.decoder_hidden_size), dim=0)
    with torch.no_grad():
        for head in model.decoders.values():
            head.final_norm.weight.zero_()
            head.final_norm.bias.copy_(u)
            head.embed_tokens.weight.zero_()
            for piece, score in FORCED.items():
                head.embed_tokens.weight[piece] = score * u
    return model.eval()


@pytest.fixture
def forced(tiny_model, tokenizer):
    return Translator(force_logits(tiny_model), tokenizer)


@pytest.mark.parametrize("stacked", [True, False])
@pytest.mark.parametrize("num_beams", [1, 3])
def test_forced_broken_pieces_never_come_out(forced, tokenizer, num_beams, stacked):
    enc = tokenizer.source(["Open file", "Quit"], padding=True, return_tensors="pt", return_token_type_ids=False)
    out = forced.model.generate(**enc, num_beams=num_beams, max_new_tokens=6, stacked=stacked)
    for lang, ids in out.items():
        assert ids.tolist() == [VALID, VALID], (lang, ids)
    texts = forced.translate(["Open file", "Quit"], num_beams=num_beams, max_new_tokens=7, stacked=stacked)
    assert texts == {lang: ["⩩⩩", "⩩⩩"] for lang in tokenizer.languages}  # the 7th piece, a lone E2, is dropped


def test_a_model_knows_its_byte_pieces_after_save_and_load(forced, tokenizer, tmp_path):
    input_ids = tokenizer.source(["Quit"], return_tensors="pt")["input_ids"]
    bare = MTLTranslationModel(forced.model.config)
    bare.load_state_dict(forced.model.state_dict())
    unguarded = bare.eval().generate(input_ids, max_new_tokens=3)["de"]  # never given its tokenizers
    assert unguarded.tolist() == [[byte(0xA9)] * 3]  # specials are still masked; the bytes are not checked
    assert tokenizer["de"].decode_batch(unguarded.tolist()) == [""]  # and their U+FFFD are dropped
    forced.save_pretrained(tmp_path)
    reloaded = MTLTranslationModel.from_pretrained(tmp_path).eval()
    assert reloaded.generation_config.byte_piece_offsets == {lang: OFFSET for lang in tokenizer.languages}
    assert reloaded.generate(input_ids, max_new_tokens=6)["de"].tolist() == [VALID]


def test_repetition_penalty_is_transformers_repetition_penalty():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0, -0.2], [1.0, 1.0, -4.0, 0.0, 2.0]])
    seqs = torch.tensor([[0, 1, 1], [2, 3, 2]])  # a token seen twice is penalized once
    expected = torch.tensor([[1.0, -2.0, 0.5, 3.0, -0.2], [1.0, 1.0, -8.0, 0.0, 2.0]])
    assert torch.equal(penalize_repeats(logits, seqs, 2.0), expected)
    assert torch.equal(penalize_repeats(logits, seqs, 1.3), RepetitionPenaltyLogitsProcessor(1.3)(seqs, logits.clone()))
    assert torch.equal(penalize_repeats(logits, seqs, 1.0), logits)


def test_bad_repetition_penalty_is_an_error(tiny_model):
    for bad in (0, -1.2, "1.2", True):
        with pytest.raises(ValueError, match=r"repetition_penalty must be a number > 0 \(1.0: none\), got"):
            tiny_model.generation_settings("de", repetition_penalty=bad)


@pytest.mark.parametrize("value, message", [("0", "must be > 0, got 0"), ("-1.2", "must be > 0, got -1.2"),
                                            ("high", "must be a number > 0, got 'high'")])
def test_cli_bad_repetition_penalty_is_a_usage_error(value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["translate", "--model", "unused", "--repetition-penalty", value])
    assert exit_.value.code == 2 and f"argument --repetition-penalty: {message}" in capsys.readouterr().err


def test_cli_repetition_penalty_reaches_decoding(tiny_model, tokenizer, tmp_path):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    texts = ["Open file", "Print document", "Delete selected items"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    main(["translate", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "in.txt"), "--output",
          str(tmp_path / "out.jsonl"), "--max-new-tokens", "12", "--repetition-penalty", "3"])
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    translator = Translator.from_pretrained(tmp_path / "model", device="cpu")
    penalized = translator.translate(texts, max_new_tokens=12, repetition_penalty=3.0)
    assert {lang: [r[lang] for r in records] for lang in tokenizer.languages} == penalized
    assert penalized != translator.translate(texts, max_new_tokens=12)  # a random model repeats itself


def test_recipe_repetition_penalty_is_saved_in_the_generation_config(tiny_model, corpus_dir, tmp_path):
    recipe = load_recipe(base=tiny_recipe(corpus_dir, "unused-encoder", tmp_path), overrides=["--repetition_penalty",
                                                                                            "1.3"])
    assert prepare_model(recipe, tiny_model).generation_config.repetition_penalty == 1.3
    with pytest.raises(ValueError, match=r"recipe key 'repetition_penalty' must be > 0, got 0.0"):
        load_recipe(base=tiny_recipe(corpus_dir, "unused-encoder", tmp_path, repetition_penalty=0))
