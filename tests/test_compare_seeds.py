"""`compare --seeds`: mean ± std over seeds with paired deltas; `max_rows_per_language`: a low-resource language."""

import json
import statistics
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from mtl_translate import compare, train
from mtl_translate.cli import main
from mtl_translate.compare import run_comparison
from mtl_translate.configs import load_recipe
from mtl_translate.data.balancing import limit_rows_per_language
from mtl_translate.data.loading import language_coverage, load_multitarget_dataset

from .conftest import tiny_recipe

# BLEU per seed of each run (chrF = BLEU + 20): de gains 2 ± 1, fr loses 1 ± 1 (in 2 of 3 seeds).
BLEU = {1: {"single-de": 10, "single-fr": 20, "mtl": {"de": 12, "fr": 18}},
        2: {"single-de": 12, "single-fr": 22, "mtl": {"de": 13, "fr": 21}},
        3: {"single-de": 14, "single-fr": 21, "mtl": {"de": 17, "fr": 21}}}


@pytest.fixture
def fake_training(tmp_path, monkeypatch):
    """`train.run` writes a finished run; scoring returns the BLEU above for the run's seed folder and name."""
    trained = []

    def fake_run(recipe):
        out = Path(recipe.training.output_dir)
        trained.append((out.parent.name, out.name, recipe.training.seed))
        out.mkdir(parents=True, exist_ok=True)
        recipe.save(out / "recipe.yaml")
        (out / "eval_results.json").write_text("{}")

    def fake_scores(folder, rows, source, **kwargs):
        seed, name = int(Path(folder).parent.name.removeprefix("seed_")), Path(folder).name
        bleu = BLEU[seed][name] if name == "mtl" else {name.removeprefix("single-"): BLEU[seed][name]}
        return {"bleu": bleu, "chrf": {lang: b + 20 for lang, b in bleu.items()}, "n": {lang: 10 for lang in bleu},
                "signature": "nrefs:1|sig"}

    monkeypatch.setattr(train, "run", fake_run)
    monkeypatch.setattr(compare, "comparison_rows", lambda recipe: [])
    monkeypatch.setattr(compare.Translator, "from_pretrained", lambda path: path)
    monkeypatch.setattr(compare, "evaluate_translator", fake_scores)
    recipe = {"target_langs": ["de", "fr"], "output_dir": str(tmp_path / "cmp"), "seed": 42}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(recipe))
    return trained


def test_seeds_table_has_means_stds_and_paired_deltas(tmp_path, fake_training, capsys):
    main(["compare", str(tmp_path / "config.yaml"), "--seeds", "1,2,3"])
    printed = capsys.readouterr().out
    names = ("mtl", "single-de", "single-fr")
    assert sorted(fake_training) == [(f"seed_{s}", name, s) for s in (1, 2, 3) for name in names]
    assert "# Multi-task vs single-task, 3 seeds (1, 2, 3)" in printed
    assert "| lang | rows | single BLEU | mtl BLEU | Δ mtl BLEU | single chrF | mtl chrF | Δ mtl chrF |" in printed
    assert ("| de | 10 | 12.00 ± 2.00 | 14.00 ± 2.65 | +2.00 ± 1.00 | 32.00 ± 2.00 | 34.00 ± 2.65 | +2.00 ± 1.00 |"
            in printed)
    assert ("| fr | 10 | 21.00 ± 1.00 | 20.00 ± 1.73 | -1.00 ± 1.00 | 41.00 ± 1.00 | 40.00 ± 1.73 | -1.00 ± 1.00 |"
            in printed)
    assert "| mean | 20 | 16.50 ± 1.32 | 17.00 ± 2.00 | +0.50 ± 0.87 |" in printed  # means of the per-seed means
    assert "Negative transfer (mean Δ BLEU below 0) for: fr (-1.00 ± 1.00, below in 2 of 3 seeds)." in printed
    root = tmp_path / "cmp"
    report = json.loads((root / "comparison.json").read_text())
    assert report["seeds"] == [1, 2, 3] and [r["lang"] for r in report["table"]] == ["de", "fr", "mean"]
    de, fr = report["table"][:2]
    assert de["delta"]["mtl"]["bleu"] == {"mean": 2.0, "std": 1.0, "per_seed": [2.0, 1.0, 3.0]}
    assert fr["mtl"]["chrf"] == {"mean": 40.0, "std": 1.73, "per_seed": [38.0, 41.0, 41.0]}
    assert set(report["train_seconds"]) == {"1", "2", "3"}
    seed_2 = json.loads((root / "seed_2" / "comparison.json").read_text())  # each seed's own report
    assert seed_2["scores"]["mtl"]["bleu"] == {"de": 13, "fr": 21}
    assert (root / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    fake_training.clear()
    main(["compare", str(tmp_path / "config.yaml"), "--seeds", "1,2,3"])
    assert fake_training == []  # finished runs of each seed are reused


def test_without_seeds_the_runs_and_the_table_are_as_before(tmp_path, fake_training, capsys, monkeypatch):
    monkeypatch.setattr(compare, "evaluate_translator", lambda folder, *a, **k: {
        "bleu": {"de": 10.0, "fr": 20.0}, "chrf": {"de": 30.0, "fr": 40.0}, "n": {"de": 10, "fr": 10},
        "signature": "nrefs:1|sig"})
    main(["compare", str(tmp_path / "config.yaml")])
    assert sorted(fake_training) == [("cmp", name, 42) for name in ("mtl", "single-de", "single-fr")]
    assert "| de | 10 | 10.00 | 10.00 (+0.00) | 30.00 | 30.00 (+0.00) |" in capsys.readouterr().out


@pytest.mark.parametrize("seeds, message", [
    ("1", "seeds [1]: give at least 2 different seeds (a std needs two), e.g. --seeds 1,2,3"),
    ("1,1", "seeds [1, 1]: give at least 2 different seeds"),
    ("1,x", "argument --seeds: must be integers separated by commas, e.g. 1,2,3; got '1,x'"),
])
def test_bad_seeds_are_a_one_line_error(tmp_path, fake_training, capsys, seeds, message):
    with pytest.raises(SystemExit) as stop:
        main(["compare", str(tmp_path / "config.yaml"), "--seeds", seeds])
    assert message in f"{stop.value.code}{capsys.readouterr().err}"
    assert fake_training == []


def multitarget_file(path: Path) -> Path:
    """40 rows: de on rows 0-29, fr on rows 10-39, es on every 4th row; rows 30-39 have fr (and es) only."""
    with open(path, "w") as f:
        for i in range(40):
            row = {"en": f"s{i}", "de": f"d{i}" if i < 30 else None, "fr": f"f{i}" if i >= 10 else None,
                   "es": f"e{i}" if i % 4 == 0 else None}
            f.write(json.dumps({"translation": row}) + "\n")
    return path


def sources(ds, lang: str) -> set[str]:
    return {row["en"] for row in ds["translation"] if row[lang]}


def test_max_rows_per_language_keeps_n_targets_and_the_other_languages(tmp_path):
    path = multitarget_file(tmp_path / "train.jsonl")
    full = load_multitarget_dataset(str(path), "en", ["de", "fr", "es"], split="train")
    limited = limit_rows_per_language(full, {"fr": 5}, ["de", "fr", "es"], seed=1)
    assert language_coverage(limited, ["de", "fr", "es"]) == {"de": 30, "fr": 5, "es": 10}
    assert sources(limited, "de") == sources(full, "de") and sources(limited, "es") == sources(full, "es")
    assert sources(limited, "fr") < sources(full, "fr")
    kept = sources(limited, "de") | sources(limited, "fr") | sources(limited, "es")
    assert {row["en"] for row in limited["translation"]} == kept and len(limited) == len(kept)  # no empty row
    assert len(limited) < len(full)  # rows 30-39 without es lost their only target, unless drawn
    assert sources(limit_rows_per_language(full, {"fr": 5}, ["de", "fr", "es"], seed=1), "fr") == sources(limited, "fr")
    assert sources(limit_rows_per_language(full, {"fr": 5}, ["de", "fr", "es"], seed=2), "fr") != sources(limited, "fr")
    alone = load_multitarget_dataset(str(path), "en", ["fr"], split="train")  # compare's single-task fr run
    assert sources(limit_rows_per_language(alone, {"fr": 5}, ["fr"], seed=1), "fr") == sources(limited, "fr")
    assert limit_rows_per_language(full, {"fr": 40}, ["de", "fr", "es"], seed=1)["translation"] == full["translation"]


@pytest.mark.parametrize("value, message", [
    ("{xx: 5}", "recipe key 'max_rows_per_language' names ['xx'], not in target_langs"),
    ("{fr: 0}", "recipe key 'max_rows_per_language' must be >= 1 for every language, got {'fr': 0}"),
])
def test_max_rows_per_language_is_checked(value, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_recipe(None, ["--target_langs", "de,fr", "--max_rows_per_language", value])


def test_two_seeds_of_real_training_with_a_low_resource_language(corpus_dir, tiny_encoder_dir, tmp_path, capsys):
    root = tmp_path / "cmp"
    recipe = load_recipe(None, base=tiny_recipe(corpus_dir, tiny_encoder_dir, root, target_langs=["de", "fr"],
                                                max_steps=2, validation_split=None, max_rows_per_language={"fr": 5}))
    report = run_comparison(recipe, seeds=[1, 2])
    printed = capsys.readouterr().out
    for seed in (1, 2):
        for name in ("mtl", "single-de", "single-fr"):
            saved = yaml.safe_load((root / f"seed_{seed}" / name / "recipe.yaml").read_text())
            assert saved["seed"] == seed and saved["output_dir"] == str(root / f"seed_{seed}" / name)
        assert yaml.safe_load((root / f"seed_{seed}" / "single-fr" / "recipe.yaml").read_text())[
            "max_rows_per_language"] == {"fr": 5}
        assert yaml.safe_load((root / f"seed_{seed}" / "single-de" / "recipe.yaml").read_text())[
            "max_rows_per_language"] == {}
    assert printed.count("target coverage: {'de': 15, 'fr': 5}") == 2  # the multi-task run of each seed
    assert printed.count("target coverage: {'fr': 5}") == 2  # the single-task fr run sees the same 5 rows
    one, two = (load_file(root / f"seed_{s}" / "mtl" / "model.safetensors") for s in (1, 2))
    assert any(not one[k].equal(two[k]) for k in one)
    assert report["seeds"] == [1, 2] and [r["lang"] for r in report["table"]] == ["de", "fr", "mean"]
    assert "# Multi-task vs single-task, 2 seeds (1, 2)" in (root / "comparison.md").read_text()
    timing = json.loads((root / "seed_1" / "mtl" / "train_results.json").read_text())
    assert timing["train_steps"] == 2 and timing["num_processes"] == 1 and timing["device"] == "cpu"
    assert 0 < timing["seconds_per_step"] * 2 <= timing["train_runtime"]  # the steps are part of the loop
    assert report["seconds_per_step"]["mtl"] == pytest.approx(statistics.mean(
        json.loads((root / f"seed_{s}" / "mtl" / "train_results.json").read_text())["seconds_per_step"] for s in (1, 2)),
        abs=1e-4)


def test_a_methods_study_has_a_row_per_run_with_its_step_time(tmp_path, fake_training, capsys, monkeypatch):
    """Four multi-task runs (more than WIDE_RUNS): the scores and deltas are one row per run; s/step comes from the
    runs' train_results.json where they have one (not the seed 2 run of `b`, nor any of `c`)."""
    step_seconds = {"mtl": 2.0, "a": 3.0, "b": 4.0}
    trained_by_fake = train.run

    def run_with_time(recipe):
        trained_by_fake(recipe)
        out = Path(recipe.training.output_dir)
        if out.name in step_seconds and (out.name, recipe.training.seed) != ("b", 2):
            (out / "train_results.json").write_text(json.dumps({"seconds_per_step": step_seconds[out.name]
                                                                * recipe.training.seed}))

    def gains(folder, rows, source, **kwargs):  # a run's BLEU: the single-task model's plus its offset, + seed
        seed, name = int(Path(folder).parent.name.removeprefix("seed_")), Path(folder).name
        offset = {"mtl": {"de": 1, "fr": -1}, "a": {"de": 2, "fr": 0}, "b": {"de": -1, "fr": 1},
                  "c": {"de": 0, "fr": 0}}
        langs = [name.removeprefix("single-")] if name.startswith("single-") else ["de", "fr"]
        bleu = {lang: 10 + seed + offset.get(name, {}).get(lang, 0) * seed for lang in langs}
        return {"bleu": bleu, "chrf": {lang: b + 20 for lang, b in bleu.items()}, "n": dict.fromkeys(langs, 10),
                "signature": "nrefs:1|sig"}

    monkeypatch.setattr(train, "run", run_with_time)
    monkeypatch.setattr(compare, "evaluate_translator", gains)
    for name in "abc":
        (tmp_path / f"config_{name}.yaml").write_text(yaml.safe_dump({"base": "config.yaml", "max_steps": 7}))
    variants = [arg for name in "abc" for arg in ("--variant", str(tmp_path / f"config_{name}.yaml"))]
    main(["compare", str(tmp_path / "config.yaml"), "--seeds", "1,2", *variants])
    text = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| lang | rows | single BLEU |" not in text  # no column per run
    assert "| model | BLEU de | BLEU fr | BLEU mean | chrF de | chrF fr | chrF mean | s/step | × step |" in text
    assert "| single | 11.50 ± 0.71 | 11.50 ± 0.71 | 11.50 ± 0.71 | 31.50 ± 0.71 |" in text
    assert "| 3.000 | 1.00× |" in text.split("| mtl |")[1].splitlines()[0]  # (2 + 4) / 2
    assert text.split("| a |")[1].splitlines()[0].endswith("| 4.500 | 1.50× |")
    assert text.split("| b |")[1].splitlines()[0].endswith("| 4.000 | 1.33× |")  # seed 1 only
    assert text.split("| c |")[1].splitlines()[0].endswith("| – | – |")
    assert ("| run | Δ BLEU de | Δ BLEU fr | Δ BLEU mean | Δ chrF de | Δ chrF fr | Δ chrF mean | below single |"
            in text)
    assert "| a | +3.00 ± 1.41 | +0.00 ± 0.00 | +1.50 ± 0.71 | +3.00 ± 1.41 | +0.00 ± 0.00 | +1.50 ± 0.71 | none |" in text
    assert "| b | -1.50 ± 0.71 | +1.50 ± 0.71 | +0.00 ± 0.00 |" in text
    assert text.split("| b |")[2].splitlines()[0].endswith("| de |")  # the deltas' row of b: de below single
    assert "mtl: Negative transfer (mean Δ BLEU below 0) for: fr (-1.50 ± 0.71, below in 2 of 2 seeds)." in text
    assert (tmp_path / "cmp" / "comparison_delta.png").read_bytes()[:4] == b"\x89PNG"
    seed_2 = (tmp_path / "cmp" / "seed_2" / "comparison.md").read_text()  # one seed's own report: no std
    assert "| b | 10.00 | 14.00 | 12.00 | 30.00 | 34.00 | 32.00 | – | – |" in seed_2  # its train_results.json: none
    assert "| a | +4.00 | +0.00 | +2.00 | +4.00 | +0.00 | +2.00 | none |" in seed_2
    assert (tmp_path / "cmp" / "seed_2" / "comparison_delta.png").read_bytes()[:4] == b"\x89PNG"


def test_logged_gradient_conflicts_are_summarised_per_run(tmp_path, fake_training, capsys, monkeypatch):
    """A run that logged its gradients gets a row: per pair the mean cosine over its logged steps (± std over
    seeds) and the share of steps below 0, per language the mean norm; a run that logged none gets no row."""
    trained_by_fake = train.run
    cosines = {1: [0.2, -0.1, 0.05, 0.05], 2: [0.4, 0.2, -0.3, 0.1]}  # seed -> the logged cos de/fr: means 0.05, 0.10

    def run_with_history(recipe):
        trained_by_fake(recipe)
        out, seed = Path(recipe.training.output_dir), recipe.training.seed
        logs = [{"step": 25 * i, "train/loss": 1.0} for i in range(1, 5)]
        if out.name == "mtl":
            for i, entry in enumerate(logs):
                entry.update({"train/grad_cos_de_fr": cosines[seed][i], "train/grad_norm_de": 0.01 * seed,
                              "train/grad_norm_fr": 0.02})
            logs.append({"step": 100, "validation": {"bleu": {}}})
        (out / "trainer_state.json").write_text(json.dumps({"step": 100, "history": logs}))

    monkeypatch.setattr(train, "run", run_with_history)
    scores = compare.evaluate_translator  # `plain` scores as mtl does
    monkeypatch.setattr(compare, "evaluate_translator", lambda folder, *args, **kwargs: scores(
        str(folder).replace("plain", "mtl"), *args, **kwargs))
    (tmp_path / "config_plain.yaml").write_text(yaml.safe_dump({"base": "config.yaml", "max_steps": 7}))
    main(["compare", str(tmp_path / "config.yaml"), "--seeds", "1,2", "--variant", str(tmp_path / "config_plain.yaml")])
    report = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert list(report["gradient_conflict"]) == ["mtl"]  # `plain` and the single-task models logged none
    mtl = report["gradient_conflict"]["mtl"]
    assert mtl["cosine"]["de/fr"] == {"mean": 0.075, "std": 0.035, "per_seed": [0.05, 0.1]}
    assert mtl["negative"] == {"de/fr": 0.25}  # 1 of 4 logged steps in each seed
    assert mtl["norm"]["de"]["per_seed"] == [0.01, 0.02]
    text = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| run | cos de/fr | norm de | norm fr |" in text
    assert "| mtl | +0.075 ± 0.035 (25% < 0) | 0.0150 ± 0.0071 | 0.0200 ± 0.0000 |" in text
    seed_1 = (tmp_path / "cmp" / "seed_1" / "comparison.md").read_text()
    assert "| mtl | +0.050 (25% < 0) | 0.0100 | 0.0200 |" in seed_1


def test_baselines_reuse_another_comparisons_single_task_models_with_the_same_recipe(tmp_path, fake_training,
                                                                                    capsys):
    """--baselines DIR: a single-task model DIR trained with the same recipe is scored where it is, its folder left
    as it was (no score cache written there); one trained with another recipe is trained here, saying why."""
    main(["compare", str(tmp_path / "config.yaml"), "--seeds", "1,2"])  # the first comparison, in cmp/
    first = tmp_path / "cmp"
    for folder in first.glob("seed_*/single-*"):  # model files: scoring them here would cache their scores
        (folder / "model.safetensors").write_bytes(b"weights")
    before = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    # the second comparison: other output_dir, fr capped (its single-task recipe changes), de as before
    (tmp_path / "second.yaml").write_text(yaml.safe_dump({"base": "config.yaml", "output_dir": str(tmp_path / "cmp2"),
                                                          "max_rows_per_language": {"fr": 5}}))
    fake_training.clear()
    main(["compare", str(tmp_path / "second.yaml"), "--seeds", "1,2", "--baselines", str(first)])
    assert sorted(fake_training) == [("seed_1", "mtl", 1), ("seed_1", "single-fr", 1),
                                     ("seed_2", "mtl", 2), ("seed_2", "single-fr", 2)]  # single-de: reused
    out = capsys.readouterr().out
    assert (f"compare: training single-fr here: {first / 'seed_1' / 'single-fr'} was trained with another recipe "
            "(max_rows_per_language: {} -> {'fr': 5})") in out
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()} == before  # nothing written there
    report = json.loads((tmp_path / "cmp2" / "comparison.json").read_text())
    assert report["reused"] == {"1": {"single-de": str(first / "seed_1" / "single-de")},
                                "2": {"single-de": str(first / "seed_2" / "single-de")}}
    assert report["table"][0]["single"]["bleu"]["per_seed"] == [10, 12]  # de's single-task BLEU, from cmp/
    assert not (tmp_path / "cmp2" / "seed_1" / "single-de").exists()
    text = (tmp_path / "cmp2" / "comparison.md").read_text()
    assert f"`{first / 'seed_1' / 'single-de'}`, `{first / 'seed_2' / 'single-de'}`" in text
    # with both comparisons as baselines, the first that trained a model with the same recipe provides it
    (tmp_path / "third.yaml").write_text(yaml.safe_dump({"base": "second.yaml", "output_dir": str(tmp_path / "cmp3")}))
    fake_training.clear()
    main(["compare", str(tmp_path / "third.yaml"), "--seeds", "1,2", "--baselines", str(first),
          "--baselines", str(tmp_path / "cmp2")])
    assert sorted(fake_training) == [("seed_1", "mtl", 1), ("seed_2", "mtl", 2)]
    assert "training single-fr here" not in capsys.readouterr().out
    reused = json.loads((tmp_path / "cmp3" / "comparison.json").read_text())["reused"]["1"]
    assert reused == {"single-de": str(first / "seed_1" / "single-de"),
                      "single-fr": str(tmp_path / "cmp2" / "seed_1" / "single-fr")}


def test_baselines_that_are_not_a_folder_are_an_error(tmp_path, fake_training, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", str(tmp_path / "config.yaml"), "--seeds", "1,2", "--baselines", str(tmp_path / "nowhere")])
    assert (f"mtl-translate compare: error: --baselines {tmp_path / 'nowhere'}: no such folder; give the output_dir "
            "of an earlier comparison") == exit_info.value.code
    assert fake_training == []
