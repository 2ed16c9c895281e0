"""`Translator.translate_stream` (what `mtl-translate translate` runs): lazy chunks, bounded memory, input order."""

from itertools import islice

from mtl_translate.translate import Translator

from .conftest import CORPUS, LANGS


def test_stream_reads_the_input_one_chunk_at_a_time(tiny_model, tokenizer):
    pulled = 0

    def lines():  # far too many to translate here: only laziness lets this test finish
        nonlocal pulled
        for _ in range(100_000):
            pulled += 1
            yield "Open file\n"

    records = Translator(tiny_model, tokenizer).translate_stream(lines(), chunk_size=16, batch_size=8,
                                                                 max_new_tokens=4)
    assert pulled == 0  # nothing is read before the first record is asked for
    first = list(islice(records, 3))
    assert pulled == 16  # one chunk
    assert [r["source"] for r in first] == ["Open file"] * 3 and all(list(r) == ["source", *LANGS] for r in first)
    assert len(list(islice(records, 14))) == 14 and pulled == 32  # the 17th record needed the second chunk


def test_stream_gives_every_language_in_input_order_with_progress(tiny_model, tokenizer, capsys):
    texts = [row[0] for row in CORPUS] * 2  # 32 lines: chunks of 10 + 10 + 10 + 2, batches of 4 within each
    translator = Translator(tiny_model, tokenizer)
    records = list(translator.translate_stream((t + "\n" for t in texts), ["es", "de"], chunk_size=10, batch_size=4,
                                               max_new_tokens=6, show_progress=True))
    expected = translator.translate(texts, ["es", "de"], max_new_tokens=6)
    assert [r["source"] for r in records] == texts
    assert all(list(r) == ["source", "es", "de"] for r in records)
    assert [r["es"] for r in records] == expected["es"] and [r["de"] for r in records] == expected["de"]
    assert "32 lines" in capsys.readouterr().err
