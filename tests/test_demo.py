"""The web demo: the request function, the Space files, and the page itself driven in headless Chromium, whose boxes
must show exactly what `Translator.translate` gives for the same text and settings."""

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoUrl

from mtl_translate import cli
from mtl_translate.demo import DEFAULT_EXAMPLES, language_name, model_examples, push_space, space_files, \
    translate_request
from mtl_translate.translate import Translator

from .conftest import CORPUS, LANGS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import demo_screenshot  # noqa: E402  (the screenshot script's page helpers)

TEXT = "Save file"


@pytest.fixture
def model_dir(tiny_model, tokenizer, tmp_path):
    Translator(tiny_model, tokenizer).save_pretrained(tmp_path / "model")
    return str(tmp_path / "model")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None; CI has all three (.ci/run installs chromium, .[dev] the rest)."""
    for module in ("gradio", "playwright"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: pip install -e '.[dev]'"
    if shutil.which(demo_screenshot.CHROMIUM) is None:
        return f"{demo_screenshot.CHROMIUM} is missing: apt-get install chromium"
    return None


BROWSER_MISSING = browser_missing()
needs_browser = pytest.mark.skipif(BROWSER_MISSING is not None, reason=str(BROWSER_MISSING))


def test_one_request_is_one_translate_call_for_the_selected_languages(tiny_model, tokenizer, monkeypatch):
    translator = Translator(tiny_model, tokenizer)
    expected = translator.translate([TEXT], ["de", "es"], num_beams=2)
    calls = []
    real = translator.translate_counting  # translate, and how many parts were truncated (said on the page)
    monkeypatch.setattr(translator, "translate_counting", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    texts, latency = translate_request(translator, TEXT, ["es", "de"], 2.0)  # a slider gives a float
    assert calls == [(([TEXT], ["de", "es"]), {"num_beams": 2})]
    assert texts == {"de": expected["de"][0], "fr": "", "es": expected["es"][0]}
    assert re.fullmatch(r"\d+ ms for 2 languages", latency), latency
    assert translate_request(translator, "  ", LANGS, 1) == (dict.fromkeys(LANGS, ""),
                                                              "type a text and select at least one language")
    assert translate_request(translator, TEXT, [], 1)[0] == dict.fromkeys(LANGS, "")
    assert len(calls) == 1
    assert re.fullmatch(r"\d+ ms for 1 language", translate_request(translator, TEXT, ["fr"], 1)[1])


def test_languages_are_named_and_examples_come_from_the_training_data(model_dir, corpus_dir):
    assert [language_name(c) for c in ("de", "pt_BR", "zh-cn", "yue", "xx")] == \
        ["German", "Portuguese", "Chinese", "Yue Chinese", "xx"]
    assert model_examples(model_dir) == DEFAULT_EXAMPLES  # no recipe.yaml
    recipe = {"dataset_name": str(corpus_dir), "source_lang": "en", "target_langs": LANGS, "test_split": "test",
              "seed": 0}
    Path(model_dir, "recipe.yaml").write_text(yaml.safe_dump(recipe))
    examples = model_examples(model_dir, n=4)
    assert len(examples) == 4 and set(examples) <= {row[0] for row in CORPUS}
    Path(model_dir, "recipe.yaml").write_text(yaml.safe_dump({**recipe, "dataset_name": "/nonexistent/data"}))
    assert model_examples(model_dir) == DEFAULT_EXAMPLES


def test_space_app_builds_the_demo_and_the_space_carries_the_package(model_dir, tmp_path, monkeypatch):
    gr = pytest.importorskip("gradio", reason="gradio is not installed: pip install -e '.[dev]'")
    files = space_files(model_dir)
    assert {"app.py", "README.md", "requirements.txt", "mtl_translate/demo.py",
            "mtl_translate/data/loading.py"} <= set(files)
    assert "sdk: gradio" in files["README.md"] and "app_file: app.py" in files["README.md"]
    assert any(line.startswith("torch") for line in files["requirements.txt"].splitlines())
    (tmp_path / "app.py").write_text(files["app.py"])
    namespace = {}
    exec(compile(files["app.py"], "app.py", "exec"), namespace)  # `demo` built, not launched (not __main__)
    demo = namespace["demo"]
    assert isinstance(demo, gr.Blocks)
    ids = {block.elem_id for block in demo.blocks.values()}
    assert {"source", "translate", "langs", "beams", "latency", *(f"out-{lang}" for lang in LANGS)} <= ids


def test_push_with_space_uploads_the_model_then_its_demo_space(model_dir, monkeypatch, capsys):
    commits = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: commits.append(("repo", repo_id, kw))
                        or RepoUrl(f"https://huggingface.co/{repo_id}"))
    monkeypatch.setattr(HfApi, "create_commit", lambda self, repo_id, operations, **kw: commits.append(
        ("commit", repo_id, sorted(op.path_in_repo for op in operations), kw["repo_type"])))
    cli.main(["push", "--model", model_dir, "--repo-id", "me/tiny", "--space", "me/tiny-demo"])
    assert [c[:2] for c in commits] == [("repo", "me/tiny"), ("commit", "me/tiny"), ("repo", "me/tiny-demo"),
                                        ("commit", "me/tiny-demo")]
    assert commits[2][2] == {"repo_type": "space", "space_sdk": "gradio", "exist_ok": True}
    assert commits[3][3] == "space" and "app.py" in commits[3][2] and "mtl_translate/demo.py" in commits[3][2]
    assert capsys.readouterr().out.splitlines()[-1] == "https://huggingface.co/me/tiny-demo"

    def refused(self, repo_id, **kw):
        raise PermissionError("403 Forbidden: token hf_secret cannot write")

    monkeypatch.setattr(HfApi, "create_repo", refused)
    with pytest.raises(ValueError, match=r"could not push the demo Space 'me/x'.*PermissionError: 403 Forbidden: "
                                         r"token \*\*\* cannot write"):
        push_space("me/x", "me/tiny", token="hf_secret")


def test_demo_command_serves_the_model_on_the_given_host_and_port(monkeypatch):
    calls = []
    monkeypatch.setattr("mtl_translate.demo.launch_demo", lambda *a, **k: calls.append((a, k)))
    cli.main(["demo", "--model", "me/tiny", "--port", "8000", "--host", "0.0.0.0", "--share"])
    cli.main(["demo", "--model", "dir"])
    assert calls == [(("me/tiny",), {"port": 8000, "share": True, "server_name": "0.0.0.0"}),
                     (("dir",), {"port": 7860, "share": False, "server_name": "127.0.0.1"})]


@needs_browser
def test_page_in_chromium_shows_the_translators_output_in_every_language_box(model_dir):
    expected = Translator.from_pretrained(model_dir, device="cpu").translate([TEXT], num_beams=2)
    assert all(expected[lang][0] for lang in LANGS)  # a blank translation could not tell a cleared box apart
    with demo_screenshot.serve(model_dir) as url, demo_screenshot.browser_page(url) as page:
        assert url.startswith("http://127.0.0.1:")
        page.locator("#beams input[type=number]").fill("2")
        page.locator("#beams input[type=number]").press("Enter")
        latency = demo_screenshot.translate_on_page(page, TEXT, 3)
        assert re.fullmatch(r"\d+ ms for 3 languages", latency), latency
        assert {lang: page.locator(f"#out-{lang} textarea").input_value() for lang in LANGS} == \
            {lang: expected[lang][0] for lang in LANGS}
        assert page.locator("#out-de label").inner_text().strip() == "de · German"

        page.locator("#langs label", has_text="fr · French").click()  # deselect: the box goes away at once
        page.locator("#out-fr").wait_for(state="hidden")
        demo_screenshot.translate_on_page(page, TEXT, 2)
        assert page.locator("#out-de textarea").input_value() == expected["de"][0]
        assert page.locator("#out-es textarea").input_value() == expected["es"][0]
        assert not page.locator("#out-fr").is_visible()


@needs_browser
def test_screenshot_script_writes_a_png_of_the_page(model_dir, tmp_path, capsys):
    out = tmp_path / "demo.png"
    demo_screenshot.main(["--model", model_dir, "--out", str(out), "--text", TEXT])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert re.search(r"^\d+ ms for 3 languages$", printed, re.M) and f"wrote {out}\n" in printed
