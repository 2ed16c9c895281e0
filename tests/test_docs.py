"""The Python snippets users copy run as written: the README's API example and the model card's usage block."""

import re
from pathlib import Path

from mtl_translate import Translator
from mtl_translate.hub import build_model_card

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def run_snippet(code: str) -> dict:
    namespace = {}
    exec(compile(code, "<snippet>", "exec"), namespace)
    return namespace


def test_readme_python_api_example_runs(tiny_model, tokenizer, tmp_path):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    block = next(b for b in python_blocks(README.read_text()) if "Translator.from_pretrained" in b)
    assert '"outputs/quickstart"' in block
    code = block.replace('"outputs/quickstart"', repr(str(tmp_path / "model")))
    lines = [line for line in code.splitlines() if line.strip() and not line.startswith("#")]
    lines[-1] = "result = " + lines[-1]  # the example's last statement is the call whose output it shows
    result = run_snippet("\n".join(lines))["result"]
    assert set(result) == {"de", "fr"} and all(len(v) == 2 and all(isinstance(s, str) for s in v)
                                              for v in result.values())


def test_model_card_usage_block_runs(tiny_model, tokenizer, tmp_path):
    folder = tmp_path / "model"
    Translator(tiny_model, tokenizer).save_pretrained(folder)
    api, pipe = python_blocks(build_model_card(folder, repo_id="acme/mtl-ui").text)
    namespace = run_snippet(api.replace('"acme/mtl-ui"', repr(str(folder))))
    assert namespace["translator"].model.config.languages == tiny_model.config.languages
    namespace = run_snippet(pipe.replace('"acme/mtl-ui"', repr(str(folder))))
    assert list(namespace["pipe"]("Open file")) == tiny_model.config.languages


def test_every_test_named_in_the_reliability_table_exists():
    """docs/reliability.md names a test for each case: a renamed or deleted test must update the table."""
    root = Path(__file__).resolve().parent
    table = (root.parent / "docs" / "reliability.md").read_text()
    named = set(re.findall(r"(test_\w+\.py)::(test_\w+)", table))
    assert len({row for row in table.splitlines() if row.startswith("| ") and "::" in row}) >= 50
    missing = [f"{file}::{name}" for file, name in sorted(named)
               if not re.search(rf"^def {name}\(", (root / file).read_text(), re.M)]
    assert not missing, missing
