"""`mtl-translate demo`: a Gradio page that translates one text into every language of a model at once, and the same
page as a Hugging Face Space.

Gradio is imported inside the functions that build the page (`pip install "mtl-translate[demo]"`): the rest of the
package never needs it. One request is one `Translator.translate` call: the encoder runs once for all the selected
languages, as everywhere else."""

import importlib.metadata
import logging
import socket
import time
from pathlib import Path

import pycountry

from .data.loading import load_multitarget_dataset, sample_rows
from .info import read_object
from .tokenization_mtl import local_folder
from .translate import Translator

logger = logging.getLogger(__name__)

DEFAULT_EXAMPLES = ["Open file", "Permission denied", "Save the current document", "%s: cannot remove %s",
                    "  -h, --help     display this help and exit"]
MAX_BEAMS = 8
MAX_EXAMPLE_CHARS = 80
TRUNCATED = "⚠ Truncated:"  # starts the page's notice that a translation covers only the start of the text


def language_name(code: str) -> str:
    """`de` -> `German`, `pt_BR` -> `Portuguese`; a code ISO 639 does not know is shown as it is."""
    base = code.replace("-", "_").split("_")[0].lower()
    found = pycountry.languages.get(**{"alpha_2" if len(base) == 2 else "alpha_3": base})
    return found.name if found else code


def model_examples(model: str, n: int = 5) -> list[str]:
    """Up to `n` short sources of the test split the model was trained with (its recipe.yaml names the data), so
    that a model of TED talks is not shown software strings; `DEFAULT_EXAMPLES` for a Hub id, a folder without a
    recipe, or data no longer on this machine."""
    folder = local_folder(model)
    recipe = read_object(folder, "recipe.yaml") if folder else None
    data = (recipe or {}).get("dataset_name")
    if not data or not Path(data).exists() or not recipe.get("test_split"):
        return list(DEFAULT_EXAMPLES)
    try:
        rows = load_multitarget_dataset(data, recipe["source_lang"], recipe["target_langs"], recipe["test_split"],
                                        recipe.get("dataset_config"), recipe.get("column_mapping"))
    except (ValueError, OSError) as err:
        logger.warning("demo examples: %s could not be read (%s); showing the default examples", data, err)
        return list(DEFAULT_EXAMPLES)
    sources = [row[recipe["source_lang"]] for row in sample_rows(rows, 20 * n, recipe.get("seed", 42))]
    short = [text for text in sources if len(text) <= MAX_EXAMPLE_CHARS and "\n" not in text]
    return list(dict.fromkeys(short))[:n] or list(DEFAULT_EXAMPLES)


def translate_request(translator: Translator, text: str, selected: list[str], num_beams: int) -> tuple[dict, str]:
    """One page request -> ({lang: translation, "" for a language not selected}, "N ms for K languages").

    A blank text or no language selected calls no model and says so in the latency line. A text with a part too
    long for the model (`max_source_length`) is translated from that part's start only: the line says so, since the
    person reading the page never sees the server's log."""
    langs = [lang for lang in translator.model.config.languages if lang in selected]
    empty = dict.fromkeys(translator.model.config.languages, "")
    if not text.strip() or not langs:
        return empty, "type a text and select at least one language"
    start = time.perf_counter()
    out, truncated = translator.translate_counting([text], langs, num_beams=int(num_beams))
    elapsed_ms = (time.perf_counter() - start) * 1000
    translator.warn_truncated(truncated, 1)
    latency = f"{elapsed_ms:.0f} ms for {len(langs)} language{'s' * (len(langs) != 1)}"
    if truncated:
        latency += (f"\n\n{TRUNCATED} {truncated} part{'s' * (truncated != 1)} of the text exceeded the "
                    f"{translator.max_source_length} tokens the model reads at once (max_source_length) and only "
                    "its start was translated: split the text at sentence ends or lines.")
    return {**empty, **{lang: out[lang][0] for lang in langs}}, latency


def build_demo(translator: Translator, examples: list[str] | None = None):
    """The page: a source box, a Translate button, a language selection, a beam-size slider, examples, then one
    output box per language (hidden while not selected) and the latency line. Every component has an `elem_id`
    (`source`, `translate`, `langs`, `beams`, `examples`, `out-<lang>`, `latency`) for tests and styling."""
    import gradio as gr

    config = translator.model.config
    langs = list(config.languages)
    beams = min(max(translator.model.generation_config.num_beams or 1, 1), MAX_BEAMS)
    with gr.Blocks(title="mtl-translate", analytics_enabled=False) as demo:  # no telemetry, no version check call
        gr.Markdown(f"## mtl-translate: {config.source_lang} → {', '.join(langs)}\nOne encoder pass, every selected "
                    f"language's decoder head translates from it.")
        source = gr.Textbox(label=f"Source ({config.source_lang} · {language_name(config.source_lang)})", lines=2,
                            placeholder="Type a sentence", elem_id="source")
        with gr.Row():
            selected = gr.CheckboxGroup([(f"{lang} · {language_name(lang)}", lang) for lang in langs], value=langs,
                                        label="Languages", elem_id="langs", scale=3)
            num_beams = gr.Slider(1, MAX_BEAMS, value=beams, step=1, label="Beam size", elem_id="beams", scale=1)
        button = gr.Button("Translate", variant="primary", elem_id="translate")
        gr.Examples([[text] for text in examples or DEFAULT_EXAMPLES], inputs=[source], elem_id="examples")
        outputs = [gr.Textbox(label=f"{lang} · {language_name(lang)}", interactive=False, elem_id=f"out-{lang}")
                   for lang in langs]
        latency = gr.Markdown(elem_id="latency")

        def run(text, chosen, beam_size):
            try:
                texts, line = translate_request(translator, text, chosen, beam_size)
            except ValueError as err:  # settings the model refuses: shown on the page, not a server traceback
                raise gr.Error(str(err)) from None
            if TRUNCATED in line:  # a toast too: the line under the boxes is easy to miss
                gr.Warning(line.split(TRUNCATED, 1)[1].strip())
            return [gr.Textbox(value=texts[lang], visible=lang in chosen) for lang in langs] + [line]

        def show(chosen):  # an unselected language's box is hidden and cleared at once
            return [gr.Textbox(visible=True) if lang in chosen else gr.Textbox(value="", visible=False)
                    for lang in langs]

        gr.on([button.click, source.submit], run, [source, selected, num_beams], [*outputs, latency])
        selected.change(show, selected, outputs)
    return demo


def launch_demo(model: str, port: int | None = 7860, share: bool = False, server_name: str | None = "127.0.0.1",
                examples: list[str] | None = None, prevent_thread_lock: bool = False):
    """Load `model` (a folder or Hub repo id), build the page and serve it; blocks unless `prevent_thread_lock`
    (then the caller closes the returned Blocks). `share=True` asks Gradio for a public link."""
    host = server_name or "127.0.0.1"  # Gradio's default
    check_port(host, port)
    translator = Translator.from_pretrained(model)
    demo = build_demo(translator, examples if examples is not None else model_examples(model))
    try:
        demo.launch(server_name=server_name, server_port=port, share=share, prevent_thread_lock=prevent_thread_lock,
                    show_error=True)
    except OSError as err:  # taken since check_port; Gradio's message names an environment variable our port overrides
        raise ValueError(port_taken(host, port, err)) from None
    return demo


def check_port(host: str, port: int | None) -> None:
    """Fails before the model loads when `port` cannot be served on `host` (None: Gradio picks one)."""
    if port is None:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ValueError(port_taken(host, port, err)) from None


def port_taken(host: str, port: int | None, err: OSError) -> str:
    return (f"cannot serve the demo on {host}:{port} ({err.strerror or err}): another program uses that port, or it "
            f"is not allowed. Pass another one with --port (e.g. --port {(port or 7860) + 1}).")


SPACE_APP = '''"""The mtl-translate demo of {model}: one text, every language at once (written by `mtl-translate push
--space`)."""

from mtl_translate.demo import build_demo, model_examples
from mtl_translate.translate import Translator

MODEL = {model!r}
demo = build_demo(Translator.from_pretrained(MODEL), model_examples(MODEL))

if __name__ == "__main__":
    demo.launch()
'''
SPACE_README = """---
title: {title}
sdk: gradio
sdk_version: {gradio}
app_file: app.py
tags: [translation, mtl-translate]
models: [{model}]
---

The mtl-translate demo of [{model}](https://huggingface.co/{model}): one text, translated into every language of
the model at once (one encoder pass, one decoder head per language).
"""


def space_files(model: str) -> dict[str, str]:
    """The files of a Gradio Space that serves the demo of the Hub model `model`: app.py, README.md (the Space's
    settings), requirements.txt (this package's dependencies) and the package's own source, so that the Space runs
    exactly this version of the code."""
    package = Path(__file__).parent
    requirements = [r for r in importlib.metadata.requires("mtl-translate") or [] if ";" not in r]
    files = {"app.py": SPACE_APP.format(model=model), "requirements.txt": "\n".join(requirements) + "\n",
             "README.md": SPACE_README.format(title=model.split("/")[-1], model=model,
                                              gradio=importlib.metadata.version("gradio"))}
    for path in sorted(package.rglob("*.py")):
        files[path.relative_to(package.parent).as_posix()] = path.read_text(encoding="utf-8")
    return files


def push_space(space_id: str, model: str, token: str | None = None) -> str:
    """Create (or update) the Gradio Space `space_id` with `space_files(model)` in one commit; returns its URL. The
    model repo must be public, or the Space needs an HF_TOKEN secret that can read it."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=text.encode("utf-8"))
                  for name, text in space_files(model).items()]
    try:
        url = api.create_repo(space_id, repo_type="space", space_sdk="gradio", exist_ok=True)
        api.create_commit(space_id, operations, commit_message=f"Demo of {model}", repo_type="space")
    except Exception as err:  # HTTP status, auth, offline mode, or a network error of the HTTP client underneath
        detail = " ".join(str(err).split()).replace(token, "***") if token else " ".join(str(err).split())
        raise ValueError(f"could not push the demo Space {space_id!r}: check the Space id, your network and that "
                         f"your token can write there: `hf auth login`, --token or HF_TOKEN ({type(err).__name__}: "
                         f"{detail}).") from err
    return str(url)
