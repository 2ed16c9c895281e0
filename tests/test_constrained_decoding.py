"""Constrained decoding of mask tokens (every protected span of a source comes out exactly once) and the confidence
of each output (its mean token log-probability), on tiny models whose next-token scores are forced."""

import math
import re

import polib
import pytest
import torch

from mtl_translate import MTLTranslationModel
from mtl_translate.cli import main
from mtl_translate.generation import COUNTED
from mtl_translate.localization import format_report, translate_po
from mtl_translate.placeholders import MASK_TOKENS, MAX_SPANS
from mtl_translate.tokenization_mtl import MTLTokenizer, TargetTokenizer
from mtl_translate.translate import Translator

from .conftest import CORPUS, LANGS, corpus_rows, tiny_config

EOS = 3


@pytest.fixture(scope="module")
def masked_tokenizer(tokenizer, tmp_path_factory):
    """The conftest tokenizers retrained on targets holding mask tokens: every `⟨k⟩` is one piece."""
    root = tmp_path_factory.mktemp("masked")
    texts = {lang: [row[i + 1] for row in CORPUS if row[i + 1]] + ["⟨0⟩ zeigt Hilfe"] for i, lang in enumerate(LANGS)}
    return MTLTokenizer(tokenizer.source, {lang: TargetTokenizer.train(lines, 400, str(root / lang), lang)
                                           for lang, lines in texts.items()})


def piece(tokenizer, lang: str, text: str) -> int:
    """The id of a mask token, or of the first piece of a word."""
    sp = tokenizer[lang].sp_model
    return sp.piece_to_id(text) if text in MASK_TOKENS else sp.encode(text)[0]


@pytest.fixture
def forced(masked_tokenizer):
    """A Translator whose heads score, at every step and for any input, EOS 10, `⟨3⟩` 9, `⟨0⟩` 8, `⟨1⟩` 7, the first
    piece of `Datei` 6, `⟨2⟩` 5 and everything else 0 (zero final norm with bias u; output embeddings multiples of u).
    Unconstrained, every output is just EOS: each mask token of the source is lost."""
    torch.manual_seed(0)
    model = MTLTranslationModel(tiny_config(masked_tokenizer, protect_placeholders=True))
    u = torch.nn.functional.normalize(torch.randn(model.config.decoder_hidden_size), dim=0)
    with torch.no_grad():
        for lang, head in model.decoders.items():
            head.final_norm.weight.zero_()
            head.final_norm.bias.copy_(u)
            head.embed_tokens.weight.zero_()
            for text, score in (("⟨3⟩", 9), ("⟨0⟩", 8), ("⟨1⟩", 7), ("Datei", 6), ("⟨2⟩", 5)):
                head.embed_tokens.weight[piece(masked_tokenizer, lang, text)] = score * u
            head.embed_tokens.weight[EOS] = 10 * u
    return Translator(model, masked_tokenizer)


def source(tokenizer, texts):
    return tokenizer.source(texts, padding=True, return_tensors="pt", return_token_type_ids=False)


def required(*counts: int) -> torch.Tensor:
    """(B, MAX_SPANS) bool: row b's source holds `⟨0⟩`..`⟨counts[b] - 1⟩`."""
    return torch.arange(MAX_SPANS)[None] < torch.tensor(counts)[:, None]


def test_mask_pieces_are_recorded_per_language(forced, masked_tokenizer):
    ids = forced.model.generation_config.mask_piece_ids
    assert set(ids) == set(LANGS)
    assert ids["de"] == [piece(masked_tokenizer, "de", token) for token in MASK_TOKENS]
    assert len(set(ids["de"])) == MAX_SPANS and masked_tokenizer["de"].sp_model.unk_id() not in ids["de"]


@pytest.mark.parametrize("stacked", [True, False])
def test_greedy_places_each_required_mask_once_and_ends_only_after_the_last(forced, masked_tokenizer, stacked):
    enc = source(masked_tokenizer, ["Open ⟨0⟩ with ⟨1⟩ as ⟨2⟩", "Quit"])
    free = forced.model.generate(**enc, max_new_tokens=10, stacked=stacked)
    assert all(ids[:, 0].tolist() == [EOS, EOS] for ids in free.values())  # unconstrained: every mask lost
    out = forced.model.generate(**enc, max_new_tokens=10, stacked=stacked, no_repeat_ngram_size=1,
                                required_masks=required(3, 0))
    for lang, ids in out.items():
        m0, m1, m2, word = (piece(masked_tokenizer, lang, t) for t in ("⟨0⟩", "⟨1⟩", "⟨2⟩", "Datei"))
        # ⟨3⟩ (not in the source) and EOS (masks missing) are banned; `Datei` once (no-repeat), then ⟨2⟩, then EOS
        assert ids.tolist() == [[m0, m1, word, m2, EOS], [EOS, 0, 0, 0, 0]], lang


@pytest.mark.parametrize("stacked", [True, False])
def test_missing_masks_are_forced_when_the_tokens_left_are_as_many(forced, masked_tokenizer, stacked):
    enc = source(masked_tokenizer, ["Open ⟨0⟩ with ⟨1⟩ as ⟨2⟩"])
    for lang, ids in forced.model.generate(**enc, max_new_tokens=4, stacked=stacked,
                                           required_masks=required(3)).items():
        m0, m1, m2, word = (piece(masked_tokenizer, lang, t) for t in ("⟨0⟩", "⟨1⟩", "⟨2⟩", "Datei"))
        assert ids.tolist() == [[m0, m1, word, m2]], lang  # the 4th and last token: ⟨2⟩, not `Datei` again
    for lang, ids in forced.model.generate(**enc, max_new_tokens=3, stacked=stacked,
                                           required_masks=required(3)).items():
        assert ids.tolist() == [[piece(masked_tokenizer, lang, t) for t in ("⟨0⟩", "⟨1⟩", "⟨2⟩")]], lang


@pytest.mark.parametrize("stacked", [True, False])
@pytest.mark.parametrize("num_beams", [2, 4])
def test_beam_search_outputs_hold_each_required_mask_exactly_once(forced, masked_tokenizer, num_beams, stacked):
    enc = source(masked_tokenizer, ["Open ⟨0⟩ with ⟨1⟩ as ⟨2⟩", "Open ⟨0⟩", "Quit"])
    free = forced.model.generate(**enc, max_new_tokens=8, num_beams=num_beams, stacked=stacked)
    assert all((ids[:, 0] == EOS).all() for ids in free.values())
    out = forced.model.generate(**enc, max_new_tokens=8, num_beams=num_beams, stacked=stacked,
                                repetition_penalty=2.0, required_masks=required(3, 1, 0))
    for lang, ids in out.items():
        masks = [piece(masked_tokenizer, lang, t) for t in MASK_TOKENS]
        for row, count in zip(ids.tolist(), (3, 1, 0)):
            placed = sorted(t for t in row if t in masks)
            assert placed == sorted(masks[:count]), (lang, row)
            assert EOS in row and all(t in (EOS, 0) for t in row[row.index(EOS):]), (lang, row)
        assert ids[2].tolist()[0] == EOS  # a source without spans ends at once, as unconstrained


def test_the_translator_restores_every_span_the_model_would_lose(forced):
    texts = ["Use --help or -h for help", "Quit"]
    assert forced.translate(texts, ["de"], max_new_tokens=6) == {"de": ["--help -h", ""]}  # set apart as in the source
    forced.model.config.protect_placeholders = False  # no masking: nothing to require, the model's EOS wins
    assert forced.translate(texts, ["de"], max_new_tokens=6) == {"de": ["", ""]}


def counted(**chars: int) -> list[int]:
    """A row of `required_counts`: how many of each COUNTED character (`paren=1` for "(")."""
    names = {"paren": "(", "close": ")", "bracket": "[", "tab": "\t", "lt": "<"}
    want = {names[name]: n for name, n in chars.items()}
    return [want.get(ch, 0) for ch in COUNTED]


@pytest.fixture
def eager(forced):
    """`forced`, whose heads also score "(" 11, above EOS: unconstrained, every output starts with "("."""
    with torch.no_grad():
        for lang, head in forced.model.decoders.items():
            u = head.embed_tokens.weight[EOS] / 10
            head.embed_tokens.weight[forced.model.generation_config.counted_pieces[lang]["single"]["("]] = 11 * u
    return forced


def test_counted_pieces_say_which_pieces_write_each_bracket_tab_and_angle(forced, masked_tokenizer):
    for lang in LANGS:
        sp, recorded = masked_tokenizer[lang].sp_model, forced.model.generation_config.counted_pieces[lang]
        assert set(recorded["single"]) == set(COUNTED)  # byte fallback: every character has a piece
        for ch, i in recorded["single"].items():
            assert sp.decode([i]) == ch, (lang, ch)
        listed = dict(recorded["pieces"])
        for i in range(sp.get_piece_size()):
            text = "" if sp.is_control(i) or sp.is_unknown(i) else sp.decode([i])
            assert listed.get(i, "") == "".join(ch for ch in text if ch in COUNTED), (lang, i)


@pytest.mark.parametrize("stacked", [True, False])
@pytest.mark.parametrize("num_beams", [1, 3])
def test_outputs_hold_each_counted_character_as_often_as_their_source(eager, masked_tokenizer, num_beams, stacked):
    model = eager.model
    enc = source(masked_tokenizer, ["Open (read only)", "Quit"])
    free = model.generate(**enc, max_new_tokens=6, num_beams=num_beams, stacked=stacked)
    counts = torch.tensor([counted(paren=1, close=1), counted()])
    out = model.generate(**enc, max_new_tokens=6, num_beams=num_beams, stacked=stacked, no_repeat_ngram_size=1,
                         required_counts=counts)
    for lang in LANGS:
        single = model.generation_config.counted_pieces[lang]["single"]
        assert (free[lang][:, 0] == single["("]).all()  # unconstrained: "(" in every output
        opened, rest = out[lang].tolist()
        assert opened[0] == single["("] and opened.count(single["("]) == 1, (lang, opened)
        # EOS waits for the ")" owed; with nothing else worth writing it comes last, forced at the budget's end
        assert opened.count(single[")"]) == 1 and EOS not in opened[: opened.index(single[")"])], (lang, opened)
        assert rest[0] == EOS  # "(" is banned where the source has none: EOS, as the model would without "("


@pytest.mark.parametrize("num_beams", [1, 2])
def test_masks_and_counted_characters_owed_share_the_budget_end(eager, masked_tokenizer, num_beams):
    enc = source(masked_tokenizer, ["Open ⟨0⟩ (with ⟨1⟩)"])
    out = eager.model.generate(**enc, max_new_tokens=4, num_beams=num_beams, required_masks=required(2),
                               required_counts=torch.tensor([counted(paren=1, close=1)]))
    for lang, ids in out.items():
        single = eager.model.generation_config.counted_pieces[lang]["single"]
        m0, m1 = (piece(masked_tokenizer, lang, t) for t in ("⟨0⟩", "⟨1⟩"))
        assert ids.tolist() == [[single["("], m0, m1, single[")"]]], lang  # 4 owed, 4 left: all forced, best first


def test_the_translator_balances_brackets_and_writes_no_angle_its_source_lacks(eager):
    out = eager.translate(["Open (read only)", "Quit", "Use <N> lines"], ["de", "fr"], max_new_tokens=8)
    for lang, texts in out.items():
        assert [(t.count("("), t.count(")"), t.count("<"), t.count(">")) for t in texts] == [
            (1, 1, 0, 0), (0, 0, 0, 0), (0, 0, 1, 1)], (lang, texts)
    eager.model.config.protect_placeholders = False  # no masking: nothing counted, the model's "(" everywhere
    assert all(t.startswith("(") for texts in eager.translate(["Quit"], ["de"], max_new_tokens=3).values()
               for t in texts)


def recomputed_mean_logprobs(model, enc, lang: str, ids: torch.Tensor) -> list[float]:
    """Teacher-forced: the mean log-probability the head gives each token of `ids` (B, T), up to its EOS."""
    memory = model.encode(enc["input_ids"], enc["attention_mask"], {lang: slice(None)})[lang]
    head = model.decoders[lang]
    inputs = torch.cat([torch.full_like(ids[:, :1], model.config.target_bos_token_id), ids[:, :-1]], dim=1)
    with torch.no_grad():
        logp = head(inputs, head.cross_kv(memory), enc["attention_mask"][:, None, None, :].bool()).log_softmax(-1)
    chosen = logp.gather(2, ids[:, :, None])[:, :, 0]  # (B, T)
    out = []
    for row, scores in zip(ids.tolist(), chosen.tolist()):
        length = row.index(EOS) + 1 if EOS in row else len(row)
        out.append(sum(scores[:length]) / length)
    return out


@pytest.mark.parametrize("num_beams, stacked", [(1, False), (1, True), (3, False), (3, True)])
def test_confidence_is_the_models_mean_token_logprob_of_its_output(tiny_model, tokenizer, num_beams, stacked):
    tiny_model.eval()
    enc = source(tokenizer, [row["translation"]["en"] for row in corpus_rows()[:4]])
    plain = tiny_model.generate(**enc, max_new_tokens=7, num_beams=num_beams, stacked=stacked,
                                repetition_penalty=1.3)
    out, logprobs = tiny_model.generate(**enc, max_new_tokens=7, num_beams=num_beams, stacked=stacked,
                                        repetition_penalty=1.3, mean_logprobs=True)
    for lang in LANGS:
        assert torch.equal(out[lang], plain[lang])  # asking for it changes no output
        assert logprobs[lang].shape == (4,) and (logprobs[lang] < 0).all()
        assert logprobs[lang].tolist() == pytest.approx(recomputed_mean_logprobs(tiny_model, enc, lang, out[lang]),
                                                        abs=1e-5)


def test_translate_returns_confidence_only_when_asked(tiny_model, tokenizer):
    translator = Translator(tiny_model, tokenizer)
    texts = ["Open file", "", "Save file\nClose window"]
    plain = translator.translate(texts, ["de"], max_new_tokens=5)
    out, confidence = translator.translate(texts, ["de"], max_new_tokens=5, return_confidence=True)
    assert out == plain and isinstance(plain, dict)
    assert confidence["de"][1] is None  # a blank text gets "" without the model
    enc = source(tokenizer, ["Open file", "Save file", "Close window"])
    _, logprobs = tiny_model.generate(**enc, langs=["de"], max_new_tokens=5, mean_logprobs=True)
    expected = [math.exp(x) for x in logprobs["de"].tolist()]
    assert confidence["de"][0] == pytest.approx(expected[0], rel=1e-4)
    assert confidence["de"][2] == pytest.approx(min(expected[1:]), rel=1e-4)  # two lines: the less sure one


class ScoredTranslator:
    """Translator's interface as translate_po uses it: "DE " before each text, with a confidence per text."""

    def __init__(self, confidence: dict[str, float]):
        self.confidence = confidence
        self.model = type("Model", (), {"config": type("Config", (), {"_name_or_path": "acme/mtl-ui"})})()

    def check_languages(self, langs):
        return list(langs or ["de"])

    def translate(self, texts, langs, *, rows, batch_size, return_confidence=False, **generation):
        out = {lang: [f"DE {t}" if keep else None for t, keep in zip(texts, rows[lang])] for lang in langs}
        sure = {lang: [self.confidence[t] if keep else None for t, keep in zip(texts, rows[lang])] for lang in langs}
        return (out, sure) if return_confidence else out


TEMPLATE = '''msgid "Open"
msgstr ""

msgid "Close"
msgstr ""

msgid "%d window"
msgid_plural "%d windows"
msgstr[0] ""
msgstr[1] ""
'''


def test_translate_po_writes_the_confidence_and_leaves_unsure_entries_untranslated(tmp_path):
    (tmp_path / "demo.pot").write_text(TEMPLATE, encoding="utf-8")
    translator = ScoredTranslator({"Open": 0.871, "Close": 0.3, "%d window": 0.9, "%d windows": 0.45})
    report = translate_po(tmp_path / "demo.pot", translator, ["de"], tmp_path / "all")
    assert report["de"]["filled"] == 3 and report["de"]["unsure"] == 0
    po = polib.pofile(str(tmp_path / "all" / "de.po"))
    assert po.find("Open").tcomment == "machine translation by acme/mtl-ui, confidence 0.87"
    assert po.find("%d window").tcomment == "machine translation by acme/mtl-ui, confidence 0.45"  # its least sure form

    report = translate_po(tmp_path / "demo.pot", translator, ["de"], tmp_path / "sure", min_confidence=0.5)
    assert {k: report["de"][k] for k in ("filled", "unsure", "mismatch", "empty")} == {
        "filled": 1, "unsure": 2, "mismatch": 0, "empty": 0}
    po = polib.pofile(str(tmp_path / "sure" / "de.po"))
    assert po.find("Open").msgstr == "DE Open" and "fuzzy" in po.find("Open").flags
    assert po.find("Close").msgstr == "" and not po.find("Close").flags and not po.find("Close").tcomment
    assert set(po.find("%d window").msgstr_plural.values()) == {""}
    assert "unsure: confidence below --min-confidence" in format_report(report)
    with pytest.raises(ValueError, match=r"min_confidence must be a number from 0 to 1 .*got 87\."):
        translate_po(tmp_path / "demo.pot", translator, ["de"], tmp_path / "sure", min_confidence=87)


def test_min_confidence_option_reaches_translate_po(tiny_model, tokenizer, tmp_path, capsys):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    (tmp_path / "demo.pot").write_text(TEMPLATE, encoding="utf-8")
    columns = r"^de\s+3\s+0\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+.*de\.po$"  # filled, mismatch, empty, unsure
    for out_dir, extra in (("all", []), ("none", ["--min-confidence", "1"])):
        main(["translate-po", str(tmp_path / "demo.pot"), "--model", str(tmp_path / "model"), "--langs", "de",
              "--out-dir", str(tmp_path / out_dir), "--max-new-tokens", "3", *extra])
    everything, sure = (tuple(map(int, m)) for m in re.findall(columns, capsys.readouterr().out, re.M))
    assert everything[0] > 0 and everything[3] == 0
    assert sure == (0, everything[1], everything[2], everything[0])  # every confidence is below 1
    with pytest.raises(SystemExit):
        main(["translate-po", str(tmp_path / "demo.pot"), "--model", str(tmp_path / "model"), "--min-confidence",
              "87"])
    assert "--min-confidence: must be from 0 to 1, got 87" in capsys.readouterr().err


@pytest.mark.parametrize("stacked", [True, False])
def test_ordered_masks_come_out_in_source_order(forced, masked_tokenizer, stacked):
    enc = source(masked_tokenizer, ["Copy ⟨0⟩ ⟨1⟩ to ⟨2⟩ ⟨3⟩"])
    only = torch.zeros(1, MAX_SPANS, dtype=torch.bool)
    only[0, [1, 3]] = True  # two conversions (`%s`) among other spans
    for ordered, expected in ((None, ("⟨3⟩", "⟨0⟩", "⟨1⟩", "Datei", "⟨2⟩")),  # the model's preference
                              (required(4), ("⟨0⟩", "⟨1⟩", "Datei", "⟨2⟩", "⟨3⟩")),
                              (only, ("⟨0⟩", "⟨1⟩", "⟨3⟩", "Datei", "⟨2⟩"))):  # ⟨3⟩ waits for ⟨1⟩ only
        out = forced.model.generate(**enc, max_new_tokens=8, stacked=stacked, no_repeat_ngram_size=1,
                                    required_masks=required(4), ordered_masks=ordered)
        for lang, ids in out.items():
            assert ids.tolist()[0][:6] == [piece(masked_tokenizer, lang, t) for t in expected] + [EOS], (lang, ordered)


def test_the_translator_keeps_conversions_in_source_order():
    from mtl_translate.placeholders import in_source_order, mask
    assert in_source_order(mask("Written by %s, %s, and %s.")[1]) == [True, True, True]
    assert in_source_order(mask("copy %s to %1$s --force")[1]) == [False, False, False]  # numbered: free to move
    assert in_source_order(mask("%d files in /tmp")[1]) == [True, False]
