"""Model card + Hub upload tests. No network: the Hub is faked at the HfApi boundary."""

import json
import logging

import httpx2
import pytest
import yaml
from huggingface_hub import HfApi, ModelCard, metadata_load
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.hf_api import RepoUrl
from huggingface_hub.repocard_data import model_index_to_eval_results

from mtl_translate import hub
from mtl_translate.cli import main

FAKE_TOKEN = "hf_FAKEtoken1234567890abcdefSECRET"
EVALS = {
    "bleu": {"de": 12.3, "fr": 17.8},
    "chrf": {"de": 40.1, "fr": 45.6},
    "n": {"de": 812, "fr": 790},
    "mean_bleu": 15.05,
    "signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
    "chrf_signature": "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0",
    "split": "test",
    "dataset": "acme/ui-strings",
}


def make_model_dir(tmp_path, encoder="sentence-transformers/all-MiniLM-L6-v2", evals=EVALS, recipe=None):
    model_dir = tmp_path / "model"
    for sub in ("tokenizers/source", "tokenizers/de", "tokenizers/fr", "checkpoint-500", "runs/exp1"):
        (model_dir / sub).mkdir(parents=True)
    config = {"model_type": "mtl_translation", "source_lang": "en", "languages": ["de", "fr"],
              "encoder_name_or_path": encoder, "sharing": "hard"}
    (model_dir / "config.json").write_text(json.dumps(config))
    (model_dir / "generation_config.json").write_text("{}")
    (model_dir / "model.safetensors").write_bytes(b"\0" * 16)
    (model_dir / "tokenizers/de/spm.model").write_bytes(b"x")
    (model_dir / "checkpoint-500/optimizer.pt").write_bytes(b"x")
    (model_dir / "runs/exp1/events.out").write_bytes(b"x")
    (model_dir / "train_state.pt").write_bytes(b"x")
    (model_dir / "pytorch_model.bin").write_bytes(b"x")
    (model_dir / "checkpoints/step_2").mkdir(parents=True)
    (model_dir / "checkpoints/step_2/random_states_0.pkl").write_bytes(b"x")
    (model_dir / "mtl-translate/1700000000.1").mkdir(parents=True)  # accelerate's tensorboard tracker
    (model_dir / "mtl-translate/1700000000.1/hparams.yml").write_text("output_dir: /home/me/out\n")
    (model_dir / "mtl-translate/events.out.tfevents.1700000000.host.1.0").write_bytes(b"x")
    if evals is not None:
        (model_dir / "eval_results.json").write_text(json.dumps(evals))
    if recipe is not None:
        (model_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return model_dir


def test_card_body_has_table_signatures_and_usage(tmp_path):
    model_dir = make_model_dir(tmp_path)
    text = hub.build_model_card(model_dir, repo_id="acme/mtl-ui").text
    assert "# mtl-ui" in text
    assert "sentence-transformers/all-MiniLM-L6-v2" in text and "2 decoder heads" in text
    assert "| Language | BLEU | chrF | Rows |" in text
    assert "| en → de | 12.3 | 40.1 | 812 |" in text
    assert "| en → fr | 17.8 | 45.6 | 790 |" in text
    assert "| **Macro mean** | **15.1** | **42.9** | 1602 |" in text  # 15.05 from the file, chrF mean 42.85
    assert "```\nBLEU: nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0\n" in text
    assert "chrF: nrefs:1|case:mixed|eff:yes|nc:6" in text
    assert "`test` split of `acme/ui-strings`" in text
    assert 'Translator.from_pretrained("acme/mtl-ui")' in text
    assert 'translator.translate(["Open file"], langs=["de", "fr"])' in text
    assert "mtl-translate translate --model acme/mtl-ui --langs de,fr" in text
    assert 'pipeline("multi-target-translation", model="acme/mtl-ui")' in text


def test_metadata_round_trips_through_huggingface_hub_parsers(tmp_path):
    recipe = {"dataset_name": "acme/ui-strings", "hub_model_id": "acme/mtl-ui", "license": "apache-2.0"}
    model_dir = make_model_dir(tmp_path, recipe=recipe)
    path = hub.save_model_card(model_dir)  # repo id comes from the recipe's hub_model_id
    assert path == model_dir / "README.md"

    card = ModelCard.load(path)
    assert card.data.language == ["en", "de", "fr"]
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.datasets == ["acme/ui-strings"]
    assert card.data.license == "apache-2.0"
    assert card.data.library_name == "mtl-translate" and card.data.pipeline_tag == "translation"
    assert set(card.data.tags) == {"translation", "multi-target", "mtl-translate"}
    assert card.data.model_name == "mtl-ui"
    got = {(r.metric_config, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert got == {("en-de", "bleu"): 12.3, ("en-de", "chrf"): 40.1, ("en-fr", "bleu"): 17.8, ("en-fr", "chrf"): 45.6}
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in card.data.eval_results} == {
        ("translation", "acme/ui-strings", "test")
    }

    raw = metadata_load(path)
    name, results = model_index_to_eval_results(raw["model-index"])
    assert name == "mtl-ui" and len(results) == 4


def test_local_encoder_path_is_not_base_model(tmp_path):
    encoder_dir = tmp_path / "my-encoder"
    encoder_dir.mkdir()
    recipe = {"dataset_name": str(tmp_path / "data")}
    (tmp_path / "data").mkdir()
    model_dir = make_model_dir(tmp_path, encoder=str(encoder_dir), recipe=recipe)
    card = ModelCard.load(hub.save_model_card(model_dir, repo_id="acme/local"))
    assert "base_model" not in metadata_load(model_dir / "README.md")
    assert card.data.base_model is None and card.data.datasets is None
    assert "encoder, `my-encoder` (a local checkpoint, not on the Hub)" in card.text  # named for humans
    assert "Trained on a local dataset: `data`." in card.text
    assert str(tmp_path) not in (model_dir / "README.md").read_text()  # no local paths, metadata or body


def test_card_without_repo_id_names_the_folder_not_its_absolute_path(tmp_path):
    text = hub.build_model_card(make_model_dir(tmp_path)).text
    assert 'Translator.from_pretrained("model")' in text and str(tmp_path) not in text


def test_card_lists_each_bleu_signature_with_its_languages(tmp_path):
    sig = "nrefs:1|case:mixed|eff:no|tok:{}|smooth:exp|version:2.6.0"
    evals = {**EVALS, "bleu": {"de": 12.3, "fr": 17.8, "zh": 20.1}, "signature": "combined",
             "signatures": {"de": sig.format("13a"), "fr": sig.format("13a"), "zh": sig.format("zh")}}
    text = hub.build_model_card(make_model_dir(tmp_path, evals=evals), repo_id="acme/mtl-ui").text
    assert f"BLEU (de, fr): {sig.format('13a')}\nBLEU (zh): {sig.format('zh')}\nchrF: " in text
    assert "combined" not in text


def test_unevaluated_model_has_no_model_index_or_table(tmp_path):
    model_dir = make_model_dir(tmp_path, evals=None)
    path = hub.save_model_card(model_dir, repo_id="acme/fresh")
    assert "model-index" not in metadata_load(path)
    card = ModelCard.load(path)
    assert card.data.eval_results is None
    assert "has not been evaluated" in card.text and "| Language |" not in card.text
    assert card.data.language == ["en", "de", "fr"]


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="not a trained mtl-translate model folder") as info:
        hub.build_model_card(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.fixture
def fake_hub(monkeypatch):
    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = {"repo_id": repo_id, "token": self.token, **kwargs}
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_commit(self, repo_id, operations, **kwargs):
        files = {}
        for op in operations:
            with op.as_file() as f:
                files[op.path_in_repo] = f.read()
        calls["create_commit"] = {"repo_id": repo_id, "files": files, **kwargs}

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return calls


def test_push_to_hub_uploads_folder_without_leaking_token(tmp_path, fake_hub, capsys, caplog):
    model_dir = make_model_dir(tmp_path)
    with caplog.at_level(logging.DEBUG):
        url = hub.push_to_hub(model_dir, "acme/mtl-ui", private=True, token=FAKE_TOKEN)

    assert url == "https://huggingface.co/acme/mtl-ui"
    assert fake_hub["create_repo"] == {"repo_id": "acme/mtl-ui", "token": FAKE_TOKEN, "private": True,
                                       "exist_ok": True, "repo_type": "model"}
    up = fake_hub["create_commit"]
    assert up["repo_id"] == "acme/mtl-ui" and up["repo_type"] == "model"
    assert up["commit_message"] == "Upload mtl-translate model"
    # checkpoints, tracker logs and every pickle (.pt, .bin, .pkl) stay local: weights go out as safetensors only
    assert sorted(up["files"]) == ["README.md", "config.json", "eval_results.json", "generation_config.json",
                                   "model.safetensors", "tokenizers/de/spm.model"]
    assert up["files"]["README.md"] == (model_dir / "README.md").read_bytes()
    assert "acme/mtl-ui" in caplog.text
    assert "Uploading 6 files" in caplog.text
    out = capsys.readouterr()
    assert FAKE_TOKEN not in out.out + out.err + caplog.text


def test_uploaded_configs_and_recipe_carry_no_local_paths_and_local_files_stay_intact(tmp_path, fake_hub, caplog):
    data_dir, encoder_dir = tmp_path / "corpora" / "ui", tmp_path / "encoders" / "my-encoder"
    recipe = {"dataset_name": str(data_dir), "output_dir": str(tmp_path / "model"), "hub_model_id": "acme/mtl-ui",
              "encoder_name_or_path": str(encoder_dir), "learning_rate": 0.001, "target_langs": ["de", "fr"]}
    model_dir = make_model_dir(tmp_path, encoder=str(encoder_dir), recipe=recipe,
                               evals={**EVALS, "dataset": str(data_dir)})
    config = json.loads((model_dir / "config.json").read_text())
    config["encoder"] = {"_name_or_path": str(encoder_dir), "hidden_size": 48}
    (model_dir / "config.json").write_text(json.dumps(config))
    vocab = {"model": {"vocab": {"/": 5, "/s": 6, "~": 7}}}  # tokens that look like paths are not paths
    (model_dir / "tokenizers/source/tokenizer.json").write_text(json.dumps(vocab))
    before = {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file() and p.name != "README.md"}

    with caplog.at_level(logging.INFO):
        hub.push_to_hub(model_dir, "acme/mtl-ui", token=FAKE_TOKEN)
    files = fake_hub["create_commit"]["files"]
    for name, content in files.items():
        assert str(tmp_path).encode() not in content, name
    uploaded_recipe = yaml.safe_load(files["recipe.yaml"])
    assert uploaded_recipe == {**recipe, "dataset_name": "ui", "output_dir": "model", "encoder_name_or_path": "my-encoder"}
    uploaded_config = json.loads(files["config.json"])
    assert uploaded_config["encoder_name_or_path"] == "my-encoder" == uploaded_config["encoder"]["_name_or_path"]
    assert json.loads(files["eval_results.json"])["dataset"] == "ui"
    assert json.loads(files["tokenizers/source/tokenizer.json"]) == vocab
    assert files["generation_config.json"] == b"{}"  # nothing to replace: uploaded byte for byte
    assert "config.json, eval_results.json, recipe.yaml with local paths replaced by their base names" in caplog.text
    assert before == {p: p.read_bytes() for p in before}  # the local folder still has its paths (resume, reproduce)


def test_invalid_recipe_in_model_folder_is_named_before_any_upload(tmp_path, fake_hub):
    model_dir = make_model_dir(tmp_path)
    (model_dir / "recipe.yaml").write_text("dataset_name: [unclosed\n")
    with pytest.raises(ValueError, match="recipe.yaml is not valid YAML") as info:
        hub.push_to_hub(model_dir, "acme/mtl-ui")
    assert str(model_dir) in str(info.value) and "create_repo" not in fake_hub


def test_hub_error_becomes_actionable_message(tmp_path, monkeypatch, capsys, caplog):
    def unauthorized(self, repo_id, **kwargs):
        request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
        raise HfHubHTTPError("401 Unauthorized", response=httpx2.Response(401, request=request))

    monkeypatch.setattr(HfApi, "create_repo", unauthorized)
    model_dir = make_model_dir(tmp_path)
    before = {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="hf auth login") as info:
        hub.push_to_hub(model_dir, "acme/mtl-ui", token=FAKE_TOKEN)
    message = str(info.value)
    assert "HF_TOKEN" in message and "acme/mtl-ui" in message and "\n" not in message
    assert f"The model folder is intact: retry with `mtl-translate push --model {model_dir}" in message
    assert isinstance(info.value.__cause__, HfHubHTTPError)
    out = capsys.readouterr()
    assert FAKE_TOKEN not in message + out.out + out.err + caplog.text
    after = {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
    assert after.keys() == before.keys() | {model_dir / "README.md"}  # the card is (re)written, nothing removed
    assert all(after[p] == content for p, content in before.items() if p.name != "README.md")


def test_network_error_is_one_line_from_the_cli_without_the_token(tmp_path, monkeypatch):
    def offline(self, repo_id, **kwargs):
        raise httpx2.ConnectError(f"[Errno -2] Name or service not known (token {FAKE_TOKEN})")

    monkeypatch.setattr(HfApi, "create_repo", offline)
    model_dir = make_model_dir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["push", "--model", str(model_dir), "--repo-id", "acme/mtl-ui", "--token", FAKE_TOKEN])
    message = str(info.value.code)
    assert message.startswith("mtl-translate push: error: could not push") and "\n" not in message
    assert "your network connection" in message and "ConnectError: [Errno -2]" in message
    assert FAKE_TOKEN not in message and "(token ***)" in message
