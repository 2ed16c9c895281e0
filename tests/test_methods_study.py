"""scripts/methods_study.py: the methods study's goal check and its pre-registered selection of the best runs."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "methods_study.py"


def spread(*values):
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return {"bleu": {"mean": round(mean, 2), "std": round(std, 2), "per_seed": list(values)}}


def study(tmp_path, deltas: dict[str, dict[str, tuple]]) -> Path:
    """A comparison.json of `compare --seeds 1,2` with the given per-seed Δ BLEU {run: {lang: (seed 1, seed 2)}}."""
    langs = list(next(iter(deltas.values())))
    table = [{"lang": lang, "delta": {run: spread(*d[lang]) for run, d in deltas.items()}} for lang in langs]
    table.append({"lang": "mean", "delta": {run: spread(*(sum(d[lang][i] for lang in langs) / len(langs)
                                                          for i in (0, 1))) for run, d in deltas.items()}})
    path = tmp_path / "comparison.json"
    path.write_text(json.dumps({"seeds": [1, 2], "table": table}))
    return path


def run(*args):
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def test_low_resource_goal_ranking_and_exclusions(tmp_path):
    path = study(tmp_path, {
        "mtl": {"de": (0.5, 0.7), "ru": (2.0, 2.2)},       # gains most on ru but excluded from the best
        "a": {"de": (-0.5, -0.3), "ru": (1.5, 1.7)},       # de loses 0.40, more than its std 0.14: missed
        "b": {"de": (-1.0, 0.6), "ru": (1.0, 1.2)},        # de -0.20 within its std 1.13, ru +1.10: met
        "c": {"de": (1.0, 1.0), "ru": (0.5, 0.7)},         # ru +0.60 < +1: missed
        "d": {"de": (0.0, 0.0), "ru": (0.6, 0.6)},         # ru ties c, lower mean: ranked after c
    })
    code, out, err = run(path, "--sparse", "ru", "--top", "3", "--exclude", "mtl")
    assert code == 0, err
    ranks = [line.split(" | ")[1] for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert ranks == ["mtl", "a", "b", "c", "d"]
    assert "| a | -0.40 ± 0.14 | +1.60 ± 0.14 |" in out and "missed: de -0.40 loses more than its std 0.14" in out
    assert "missed: ru +0.60 < +1.00" in out
    assert "meet the goal: mtl, b" in out
    assert out.strip().endswith("best 3: a, b, c")


def test_full_data_goal_needs_every_language_above_single(tmp_path):
    path = study(tmp_path, {"mtl": {"de": (0.5, 0.7), "ru": (-0.2, 0.1)}, "a": {"de": (0.1, 0.3), "ru": (0.1, 0.1)}})
    code, out, err = run(path)
    assert code == 0, err
    assert "missed: ru -0.05 ≤ 0" in out and "meet the goal: a" in out


def test_a_language_that_is_not_in_the_study_is_a_clear_error(tmp_path):
    path = study(tmp_path, {"mtl": {"de": (0.5, 0.7), "ru": (0.1, 0.2)}})
    code, out, err = run(path, "--sparse", "es")
    assert code != 0 and "--sparse es: not a language of" in err and "(de, ru)" in err
