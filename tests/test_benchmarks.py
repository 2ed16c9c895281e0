"""The benchmark scripts run end to end (--quick: tiny models) and end with their one-line summary."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name: str, *args: str) -> list[str]:
    proc = subprocess.run([sys.executable, str(SCRIPTS / name), "--quick", *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()


@pytest.mark.parametrize("args", [(), ("--quantize", "int8")])
def test_benchmark_translate_quick(args):
    lines = run_script("benchmark_translate.py", *args)
    ratios = [float(x) for x in re.findall(r"(\d+\.\d\d)x", "\n".join(lines[:-1]))]
    assert len(ratios) == (2 if args else 1) and all(r > 0 for r in ratios)
    match = re.fullmatch(r"translate_all_speedup N=4 batch=32 greedy fp32: (\d+\.\d\d)x", lines[-1])
    assert match and float(match[1]) > 0, lines[-1]


def test_benchmark_train_quick():
    lines = run_script("benchmark_train.py")
    pattern = r"state 1\.00x, peak -?\d+\.\d\dx, peak with activation checkpointing -?\d+\.\d\dx"
    assert re.search(pattern, "\n".join(lines)), lines  # an added language adds one head
    match = re.fullmatch(r"train_step_speedup N=4: (\d+\.\d\d)x", lines[-1])
    assert match and float(match[1]) > 0, lines[-1]


def test_benchmark_weighting_quick():
    lines = run_script("benchmark_weighting.py", "--methods", "upgrad,pcgrad")
    assert [line.split()[0] for line in lines[2:5]] == ["static", "upgrad", "pcgrad"]
    match = re.fullmatch(r"weighting_cost N=4: (static|upgrad|pcgrad) (\d+\.\d\d)x static", lines[-1])
    assert match and float(match[2]) > 0, lines[-1]


def test_profile_translate_quick():
    lines = run_script("profile_translate.py", "--top", "3")
    for path in ("head by head (stacked=False, before)", "stacked (after)"):
        header = next(i for i, line in enumerate(lines) if line.startswith(path))
        assert re.search(r"\d+ ms per call, encoder \d+\.\d% of it", lines[header])
        assert lines[header + 1].split() == ["operator", "self", "ms", "share", "calls"]
        assert len([line for line in lines[header + 2 : header + 5] if line.startswith("aten::")]) == 3


def test_benchmark_quickstart_on_a_saved_model(tiny_model, tokenizer, corpus_dir, tmp_path):
    from mtl_translate import Translator

    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    proc = subprocess.run([sys.executable, str(SCRIPTS / "benchmark_quickstart.py"), "--model", str(tmp_path / "model"),
                           "--data", str(corpus_dir), "--max-samples", "8", "--batch-size", "4"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = {line.split("  ")[0]: line for line in proc.stdout.splitlines()
             if line.startswith(("fp32 head by head ", "fp32 stacked ", "int8 "))}
    assert set(table) == {"fp32 head by head", "fp32 stacked", "int8"}, proc.stdout
    assert re.search(r"1\.00x.*\(\+0\.00\)", table["fp32 stacked"])  # the reference row
    changes = re.findall(r"\(([+-]\d+\.\d\d)\)", table["fp32 head by head"])
    assert len(changes) == 3 and all(float(c) == 0 for c in changes)  # same translations, so the same BLEU
    assert "BLEU signature: nrefs:1" in proc.stdout
