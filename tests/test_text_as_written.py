"""Target tokenizers give text back as written: decode(encode(t)) == t (issue 26 §1)."""

import logging
import random
from pathlib import Path

import polib
import pytest

from mtl_translate.placeholders import mask, restore
from mtl_translate.tokenization_mtl import TargetTokenizer

from .conftest import CORPUS

ISSUE_EXAMPLES = ["Patientez…", "Fichier\u00a0: %s", "Taille\u202f: %d\u202fo", "文件：%s，（默认）！",
                  "  -o, --output=FILE      write to FILE", "a\tb\n  c  ", " leading", "two  spaces", "⟨0⟩ ⟨1⟩"]
DOMAINS = ("coreutils", "bash", "tar", "glib20", "diffutils", "grep", "sed")


def installed_targets(lang: str) -> list[str]:
    """Up to 3000 msgstrs (ends stripped, as the gettext reader keeps them) of some installed catalogs."""
    paths = [Path(f"/usr/share/locale/{lang}/LC_MESSAGES/{domain}.mo") for domain in DOMAINS]
    texts = sorted({e.msgstr.strip() for p in paths if p.is_file() for e in polib.mofile(str(p)) if e.msgstr.strip()})
    if len(texts) < 1000:
        pytest.skip(f"fewer than 1000 installed {lang} catalog strings on this machine")
    return random.Random(0).sample(texts, min(3000, len(texts)))


@pytest.mark.parametrize("lang", ["de", "fr", "ru", "ja"])
def test_round_trip_is_exact_on_real_catalog_strings(lang, tmp_path, caplog):
    texts = installed_targets(lang)
    with caplog.at_level(logging.INFO, logger="mtl_translate.tokenization_mtl"):
        tok = TargetTokenizer.train(texts, 2000, str(tmp_path), lang)
    failed = tok.round_trip_failures(texts)
    assert len(failed) <= 0.001 * len(texts), failed[:5]
    assert sum("\n" in t for t in texts) > 100 and sum("  " in t for t in texts) > 100  # the sample has both
    assert tok.round_trip_failures(ISSUE_EXAMPLES) == []
    logged = f"all {len(texts)}" if not failed else f"{len(texts) - len(failed)} of {len(texts)}"
    assert f"{lang}: {logged} training targets" in caplog.text


def test_unseen_characters_and_whitespace_come_back_through_byte_pieces(tmp_path):
    tok = TargetTokenizer.train([row[1] for row in CORPUS if row[1]], 400, str(tmp_path), "de")
    assert tok.round_trip_failures(ISSUE_EXAMPLES) == []
    assert tok.decode_batch([tok.sp_model.encode(text) for text in ISSUE_EXAMPLES]) == ISSUE_EXAMPLES
    assert tok.sp_model.encode("\u00a0", out_type=str) == ["▁", "<0xC2>", "<0xA0>"]  # not a space: its bytes


def test_texts_that_do_not_come_back_are_counted_and_shown(tmp_path, caplog):
    texts = [row[1] for row in CORPUS if row[1]] + ["Block ▁ U+2581"]  # SentencePiece's own space mark
    with caplog.at_level(logging.INFO, logger="mtl_translate.tokenization_mtl"):
        tok = TargetTokenizer.train(texts, 400, str(tmp_path), "de")
    assert tok.round_trip_failures(texts) == ["Block ▁ U+2581"]
    assert "de: 15 of 16 training targets (93.75 %) come back exactly from the tokenizer; not, e.g.: " \
           "['Block ▁ U+2581']" in caplog.text


def test_a_tokenizer_saved_before_keeps_its_own_normaliser(tmp_path):
    """Models trained with SentencePiece's defaults (NFKC, whitespace collapsed) load and encode as they did."""
    texts = [row[1] for row in CORPUS if row[1]]
    TargetTokenizer.train(texts, 400, str(tmp_path), "de", normalization_rule_name="nmt_nfkc",
                          remove_extra_whitespaces=True)
    old = TargetTokenizer(vocab_file=str(tmp_path / "tokenizer.model"))
    assert old.sp_model.decode(old.sp_model.encode(["Patientez…", "Fichier\u00a0:  %s "])) == \
        ["Patientez...", "Fichier : %s"]


@pytest.mark.parametrize("text", ["Fichier\u00a0: %s  (%d)\n\t--all", "  -o, --output=FILE      write to FILE",
                                  "Taille\u202f: %d\u202fo !"])
def test_masking_and_restoring_placeholders_keeps_the_whitespace_around_them(text):
    masked, spans = mask(text)
    assert restore(masked, spans) == (text, 0)
