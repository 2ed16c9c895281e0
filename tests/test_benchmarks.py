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
    assert re.search(r"state 1\.00x, peak -?\d+\.\d\dx", "\n".join(lines)), lines  # an added language adds one head
    match = re.fullmatch(r"train_step_speedup N=4: (\d+\.\d\d)x", lines[-1])
    assert match and float(match[1]) > 0, lines[-1]
