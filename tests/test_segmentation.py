"""Long inputs are split into pieces that fit the model and joined back with their own separators."""

from mtl_translate.segmentation import join_pieces, keep_layout, split_text

HELP = ("Usage: grep [OPTION]... PATTERNS [FILE]...\n"
        "Search for PATTERNS in each FILE.\n"
        "  -E, --extended-regexp     PATTERNS are extended regular expressions\n"
        "  -i, --ignore-case         ignore case distinctions in patterns and data\n\n")


def words_fit(n):
    return lambda text: len(text.split()) <= n


def test_a_text_that_fits_is_one_piece():
    assert split_text("Open the file. Then close it.", words_fit(10)) == (["Open the file. Then close it."], ["", ""])


def test_lines_keep_their_indentation_and_breaks():
    pieces, glue = split_text(HELP, words_fit(100))
    assert pieces == ["Usage: grep [OPTION]... PATTERNS [FILE]...", "Search for PATTERNS in each FILE.",
                      "-E, --extended-regexp     PATTERNS are extended regular expressions",
                      "-i, --ignore-case         ignore case distinctions in patterns and data"]
    assert glue == ["", "\n", "\n  ", "\n  ", "\n\n"]
    assert join_pieces(pieces, glue) == HELP
    assert join_pieces([p.upper() for p in pieces], glue) == HELP.upper().replace("\n  -E", "\n  -E")


def test_a_long_line_is_cut_at_sentences_and_option_items_then_merged_while_it_fits():
    collapsed = ("-a, --all do not ignore entries starting with . -A, --almost-all do not list implied . and .. "
                 "--author with -l, print the author of each file. Sort entries alphabetically if none is given.")
    pieces, glue = split_text(collapsed, words_fit(12))
    assert pieces[0] == "-a, --all do not ignore entries starting with ."  # an option item is never cut after "-a,"
    assert pieces[1].startswith("-A, --almost-all") and pieces[-1] == "Sort entries alphabetically if none is given."
    assert all(len(p.split()) <= 12 for p in pieces) and len(pieces) == 4
    assert join_pieces(pieces, glue) == collapsed


def test_a_piece_without_break_points_stays_whole_and_blank_text_has_no_pieces():
    long_word_run = "word " * 30
    assert split_text(long_word_run.strip(), words_fit(5))[0] == [long_word_run.strip()]
    assert split_text(" \n \n", words_fit(5)) == ([], [" \n \n"])
    assert join_pieces([], [" \n \n"]) == " \n \n"


def test_translator_translates_each_line_and_each_long_sentence_on_its_own(tiny_model, tokenizer):
    """A --help block: every line is translated as its own input and keeps its indentation and line break; a line
    longer than max_source_length is cut at its sentences instead of truncated (no truncation warning)."""
    from mtl_translate.translate import Translator

    translator = Translator(tiny_model, tokenizer, max_source_length=12)
    alone = translator.translate(["Open file", "Close window", "Save the file now.", "Delete the old file."],
                                 max_new_tokens=5)
    long_line = "Save the file now. Delete the old file."
    assert not translator.fits(long_line) and translator.fits("Save the file now.")
    got = translator.translate(["Open file\n  Close window\n", long_line, "Open file", "  "], ["de", "fr"],
                               rows={"fr": [True, True, False, True]}, max_new_tokens=5)
    for lang in ("de", "fr"):
        assert got[lang][0] == f"{alone[lang][0]}\n  {alone[lang][1]}\n"
        assert got[lang][1] == f"{alone[lang][2]} {alone[lang][3]}"
        assert got[lang][3] == ""
    assert got["de"][2] == alone["de"][0] and got["fr"][2] is None  # rows still pick texts


def test_the_whitespace_between_pieces_of_a_line_is_kept_as_written():
    line = "Sort entries.  Then  print them.\tDone:   --all      list all"
    pieces, glue = split_text(line, words_fit(3))
    assert pieces == ["Sort entries.", "Then  print them.", "Done:", "--all      list all"]
    assert glue == ["", "  ", "\t", "   ", ""]
    assert join_pieces(pieces, glue) == line


def test_an_output_keeps_the_layout_of_its_one_line_source():
    # a small model trained on aligned --help columns pads and breaks lines the source does not
    assert keep_layout("%s: %s in der %s, aber          \n   s  es\n", "cmp: EOF on %s after byte %s") == \
        "%s: %s in der %s, aber s es"
    assert keep_layout("Fichier\u00a0: %s", "File: %s") == "Fichier\u00a0: %s"  # one blank, as the language writes it
    assert keep_layout("a  b\tc", "x  y\tz") == "a  b\tc"  # runs the source has stay
