"""`streaming: true`: the train split read as an endless stream. Each process gets its own slice of every global
batch, a resume goes on with the very batches the uninterrupted run had, bad rows fail when read with the file and
line, and memory stays flat on a corpus far larger than a batch."""

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from mtl_translate.configs import load_recipe
from mtl_translate.data.loading import load_multitarget_dataset
from mtl_translate.data.streaming import RowStream, StreamingRows
from mtl_translate.placeholders import mask_rows
from mtl_translate.train import run

from .conftest import CORPUS, LANGS, corpus_rows, tiny_recipe
from .test_distributed import launch, state, train_logs

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def numbered(tmp_path, n: int, no_target_every: int | None = None) -> RowStream:
    """n rows with distinct sources of varied length; every `no_target_every`-th row has no target."""
    rows = [{"translation": {"en": f"s{i:04d}" + " x" * (i % 7),
                             "de": None if no_target_every and i % no_target_every == 3 else f"d{i}"}}
            for i in range(n)]
    return RowStream(str(write_jsonl(tmp_path / "train.jsonl", rows)), "train", "en", ["de"])


def take(rows: StreamingRows, count: int) -> list[dict]:
    return list(itertools.islice(iter(rows), count))


def sources(item: dict) -> list[str]:
    return [row["translation"]["en"] for row in item["rows"]]


@pytest.mark.parametrize("group_by_length", [False, True])
def test_two_processes_split_each_global_batch_as_one_process_with_accumulation_does(tmp_path, group_by_length):
    stream = numbered(tmp_path, 400)
    one = take(StreamingRows(stream, 7, 10, 3, accumulation=2, group_by_length=group_by_length), 100)
    ranks = [take(StreamingRows(stream, 7, 10, 3, num_processes=2, process_index=rank,
                                group_by_length=group_by_length), 50) for rank in (0, 1)]
    for j in range(50):
        assert sources(ranks[0][j]) == sources(one[2 * j]) and sources(ranks[1][j]) == sources(one[2 * j + 1])
        assert ranks[0][j]["position"] == ranks[1][j]["position"]  # one position for every process
    seen = [{source for item in rank for source in sources(item)} for rank in ranks]
    assert len(seen[0]) == len(seen[1]) == 150 and not seen[0] & seen[1]  # 300 distinct rows, disjoint halves


def test_each_epoch_holds_every_row_with_a_target_once_in_a_new_order(tmp_path):
    items = take(StreamingRows(numbered(tmp_path, 50, no_target_every=10), 0, 8, 1), 90)
    rows = [source for item in items for source in sources(item)]
    kept = [f"s{i:04d}" + " x" * (i % 7) for i in range(50) if i % 10 != 3]
    first, second = rows[:45], rows[45:]
    assert sorted(first) == sorted(second) == sorted(kept)  # rows without a target are skipped
    assert first != kept and second != first  # shuffled, and reshuffled each epoch


@pytest.mark.parametrize("group_by_length", [False, True])
def test_resuming_at_any_position_gives_the_batches_that_followed_it(tmp_path, group_by_length):
    """23 rows, a buffer of 5, rank 1 of 2 with accumulation 2: positions inside and at the end of a window
    (a window spans many epochs), resumed by fresh objects as a resumed run builds them."""
    stream = numbered(tmp_path, 23, no_target_every=10)
    make = lambda: StreamingRows(stream, 3, 5, 2, num_processes=2, process_index=1, accumulation=2,
                                 group_by_length=group_by_length)
    reference = take(make(), 230)
    for k in (0, 1, 37, 99, 100, 173):
        resumed = make()
        resumed.resume(reference[k]["position"])
        assert take(resumed, 30) == reference[k + 1: k + 31], k
    assert reference[-1]["position"]["epoch"] >= 30  # 230 x 2 rows of each of 2 processes: 40+ epochs of 20


BAD_LINES = [
    ("not json", "line 3 is not valid JSON"),
    ('{"translation": {"de": "x"}}', "line 3 has no source text in field translation.en"),
    ('{"translation": {"en": 5, "de": "x"}}', "line 3: field translation.en is a int ('5'), not a string"),
    ("[1, 2]", "line 3 is a list"),
    ('{"translation": {"en": "a", "en": "b", "de": "x"}}', "line 3: key 'en' appears twice"),
    ('{"translation": "Hallo"}', "line 3: field translation is a str, expected an object"),
    ('{"translation": {"language": ["en"], "translation": ["a", "b"]}}', "line 3: field translation ("),
]


@pytest.mark.parametrize("line,message", BAD_LINES)
def test_a_bad_row_fails_when_it_is_read_naming_the_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "train.jsonl"
    good = '{"translation": {"en": "a", "de": "b"}}\n'
    path.write_text(f"{good}\n{line}\n{good}")
    items = iter(StreamingRows(RowStream(str(path), "train", "en", ["de"]), 0, 1, 1))
    assert sources(next(items)) == ["a"]  # read lazily: the rows before it train
    with pytest.raises(ValueError) as err:
        next(items)
    assert str(err.value).startswith(f"{path}: {message}")


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"translation": {"en": "a", "de": "b"}}\n{"translation": {"en": "\xff", "de": "b"}}\n')
    with pytest.raises(ValueError, match="line 2 is not valid UTF-8"):
        RowStream(str(path), "train", "en", ["de"]).head(10)


def test_tokenizer_sample_must_hold_every_language(tmp_path):
    rows = [{"translation": {"en": f"s{i}", "de": f"d{i}", "fr": f"f{i}" if i >= 5 else None}} for i in range(8)]
    stream = RowStream(str(write_jsonl(tmp_path / "train.jsonl", rows)), "train", "en", ["de", "fr"])
    with pytest.raises(ValueError, match=r"the first 5 rows have no \['fr'\] target.*tokenizer_train_rows=5"):
        stream.head(5)
    assert [row["fr"] for row in stream.head(6)] == [None] * 5 + ["f5"]


def flat_rows() -> list[dict]:
    return [dict(zip(["en", *LANGS], row)) for row in CORPUS]


def write_csv(path: Path, delimiter: str) -> None:
    lines = [delimiter.join(["en", *LANGS])] + [delimiter.join(value or "" for value in row) for row in CORPUS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


WRITERS = {
    "train.jsonl": lambda path: write_jsonl(path, corpus_rows()),
    "train.csv": lambda path: write_csv(path, ","),
    "train.tsv": lambda path: write_csv(path, "\t"),
    "train.parquet": lambda path: pq.write_table(pa.Table.from_pylist(corpus_rows()), path),
    "flat.jsonl": lambda path: write_jsonl(path, flat_rows()),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_file_format_streams_the_rows_loading_reads(tmp_path, name):
    path = tmp_path / name
    WRITERS[name](path)
    loaded = load_multitarget_dataset(str(path), "en", LANGS, split="train")["translation"]
    assert RowStream(str(path), "train", "en", LANGS).head(100) == loaded


def test_protect_placeholders_masks_streamed_rows_as_load_data_masks_loaded_ones(tmp_path):
    rows = [{"translation": {"en": "Delete %s from /tmp/cache?", "de": "%s aus /tmp/cache löschen?"}},
            {"translation": {"en": "Use --force to retry", "de": "Mit --force erneut versuchen"}}]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    masked = RowStream(str(path), "train", "en", ["de"], protect_placeholders=True).head(10)
    assert masked == mask_rows([row["translation"] for row in rows], "en")[0]
    assert "%s" not in masked[0]["en"] and "--force" not in masked[1]["de"]


def test_a_csv_line_with_a_missing_field_names_the_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("en,de\nOpen,Öffnen\nSave\n")
    with pytest.raises(ValueError, match=r"train.csv: line 3 has 1 fields, expected 2 \(the header's columns: en, de"):
        RowStream(str(path), "train", "en", ["de"]).head(10)


def test_what_cannot_be_streamed_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="streaming reads local files .*build-data hub.*or set streaming: false"):
        RowStream("acme/corpus", "train", "en", ["de"])
    array = tmp_path / "train.json"
    array.write_text(json.dumps(corpus_rows()))
    with pytest.raises(ValueError, match="one JSON array cannot be streamed; write it as JSON lines"):
        RowStream(str(array), "train", "en", ["de"])
    with pytest.raises(ValueError, match=r"no file for split 'train'; found splits \['train_de'\]"):
        write_jsonl(tmp_path / "folder" / "train_de.jsonl", corpus_rows())
        RowStream(str(tmp_path / "folder"), "train", "en", ["de"])


@pytest.mark.parametrize("key,value", [("language_temperature", 2.0), ("max_rows_per_language", {"de": 5}),
                                       ("max_train_samples", 100), ("language_batches", True)])
def test_keys_that_count_the_whole_split_need_streaming_false(key, value):
    with pytest.raises(ValueError, match=rf"recipe key\(s\) \['{key}'\] need streaming: false"):
        load_recipe(base={"streaming": True, key: value})


# ------------------------------------------------------------------------------------------ training runs


def streaming_recipe(corpus_dir, encoder, output_dir, **overrides) -> dict:
    """Dropout and DWA weights (state a resume must restore), accumulation 2 and a buffer smaller than the 16 rows:
    8 steps of 8 rows cross 4 epochs, in one length-grouped window of 50 global batches."""
    return tiny_recipe(corpus_dir, encoder, output_dir, streaming=True, shuffle_buffer_size=5, decoder_dropout=0.1,
                       trainable_encoder_layers=1, loss_weighting="dwa", dwa_window=3, max_steps=8, save_steps=3,
                       eval_steps=4, save_total_limit=3, gradient_accumulation_steps=2, **overrides)


def history_after(output_dir: Path, step: int) -> list[dict]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["history"]
    return [entry for entry in history if entry["step"] > step]


@pytest.mark.slow
def test_a_streaming_run_resumed_from_a_checkpoint_is_bit_identical(corpus_dir, tiny_encoder_dir, tmp_path):
    reference = tmp_path / "reference"
    run(load_recipe(base=streaming_recipe(corpus_dir, tiny_encoder_dir, reference)))
    saved = json.loads((reference / "checkpoints/step_3/trainer_state.json").read_text())["stream_position"]
    assert saved == {"epoch": 0, "drawn": 0, "batches": 6}  # 3 steps x 2 micro-batches into the first window
    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    shutil.rmtree(resumed / "checkpoints/step_6")
    shutil.rmtree(resumed / "checkpoints/step_8")
    run(load_recipe(base=streaming_recipe(corpus_dir, tiny_encoder_dir, resumed, resume_from_checkpoint="latest")))
    a, b = (load_file(folder / "checkpoints/step_8/model.safetensors") for folder in (resumed, reference))
    assert a.keys() == b.keys()
    for key in a:  # bit for bit (DWA's loss history starts as NaN: NaN equals NaN here)
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True, msg=key)
    assert history_after(resumed, 3) == history_after(reference, 3)  # losses, lr, BLEU, loss weights
    assert len(history_after(reference, 3)) >= 5
    old = resumed / "checkpoints/step_3/trainer_state.json"  # as a checkpoint of a run without streaming has it
    old.write_text(json.dumps({k: v for k, v in json.loads(old.read_text()).items() if k != "stream_position"}))
    again = streaming_recipe(corpus_dir, tiny_encoder_dir, resumed, resume_from_checkpoint=str(old.parent))
    with pytest.raises(ValueError, match="step_3 was written by a run without streaming; resume it with streaming: f"):
        run(load_recipe(base=again))


@pytest.mark.slow
def test_two_streaming_processes_train_as_one_process_with_accumulation(corpus_dir, tiny_encoder_dir, tmp_path):
    common = dict(streaming=True, shuffle_buffer_size=5, trainable_encoder_layers=1, max_steps=4, save_steps=4,
                  eval_steps=4, test_split=None)
    two = tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "two", **common)
    one = tiny_recipe(corpus_dir, tiny_encoder_dir, tmp_path / "one", gradient_accumulation_steps=2, **common)
    launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], two, tmp_path)
    launch([sys.executable], one, tmp_path)
    assert state(tmp_path / "two")["num_processes"] == 2
    for a, b in zip(train_logs(tmp_path / "two"), train_logs(tmp_path / "one"), strict=True):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-4), a["step"]
    weights_two = load_file(tmp_path / "two/checkpoints/step_4/model.safetensors")
    weights_one = load_file(tmp_path / "one/checkpoints/step_4/model.safetensors")
    for key in weights_one:
        torch.testing.assert_close(weights_two[key], weights_one[key], atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory) -> Path:
    """200k rows (~65 MB) in train.jsonl: 50,000 batches of 4."""
    root = tmp_path_factory.mktemp("big")
    with open(root / "train.jsonl", "w", encoding="utf-8") as f:
        for i in range(200_000):
            row = {"en": f"Open the file number {i} in the folder {i % 97} and save it under another name",
                   "de": f"Öffne die Datei Nummer {i} im Ordner {i % 97} und speichere sie unter anderem Namen",
                   "fr": f"Ouvrez le fichier numéro {i} du dossier {i % 97} et enregistrez-le sous un autre nom",
                   "es": None if i % 5 == 0 else f"Abra el archivo número {i} de la carpeta {i % 97} y guárdelo"}
            f.write(json.dumps({"translation": row}, ensure_ascii=False) + "\n")
    return root


def peak_rss_mib(script: str, *args: str) -> float:
    """Peak resident memory of a fresh Python process that runs `script` (imports included)."""
    code = f"import resource, sys\n{script}\nprint('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=ENV, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return int(proc.stdout.split("peak")[-1]) / 1024  # ru_maxrss is in KiB on Linux


STREAM_PASS = """
import itertools
from mtl_translate.data.streaming import RowStream, StreamingRows
from mtl_translate.placeholders import mask_rows
rows = StreamingRows(RowStream(sys.argv[1], "train", "en", ["de", "fr", "es"]), 0, 10_000, 64, group_by_length=True)
for item in itertools.islice(rows, int(sys.argv[2])):
    pass
"""

TRAIN = """
import json
from mtl_translate.configs import load_recipe
from mtl_translate.train import run
run(load_recipe(base=json.loads(sys.argv[1])))
"""


@pytest.mark.slow
def test_a_full_pass_over_a_corpus_far_larger_than_a_batch_keeps_memory_flat(big_corpus, corpus_dir):
    """1.2 epochs of the 200k rows (3,750 batches of 64) against a few batches of the 16-row corpus: the growth stays
    under a fifth of the file's size, so the stream never holds the corpus (loading it holds several times it)."""
    size_mib = (big_corpus / "train.jsonl").stat().st_size / 2**20
    small = peak_rss_mib(STREAM_PASS, str(corpus_dir), "10")
    big = peak_rss_mib(STREAM_PASS, str(big_corpus), "3750")
    assert size_mib > 40 and big - small < size_mib / 5, (size_mib, small, big)


@pytest.mark.slow
def test_streaming_training_memory_does_not_grow_with_the_corpus(big_corpus, corpus_dir, tiny_encoder_dir, tmp_path):
    """The same 3-step run (tokenizers from the first 1,000 rows) on the 200k-row corpus and on the 16-row one."""
    size_mib = (big_corpus / "train.jsonl").stat().st_size / 2**20
    peaks = {}
    for name, data in (("small", corpus_dir), ("big", big_corpus)):
        recipe = tiny_recipe(data, tiny_encoder_dir, tmp_path / name, streaming=True, tokenizer_train_rows=1000,
                             max_steps=3, validation_split=None, test_split=None)
        peaks[name] = peak_rss_mib(TRAIN, json.dumps(recipe))
    assert peaks["big"] - peaks["small"] < size_mib / 5, (size_mib, peaks)
