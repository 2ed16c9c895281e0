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
    assert str(encoder_dir) in card.text  # still mentioned for humans
    assert str(tmp_path) not in json.dumps(metadata_load(model_dir / "README.md"))  # no local paths in metadata


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

    def upload_folder(self, **kwargs):
        calls["upload_folder"] = kwargs
        calls["readme_at_upload"] = (kwargs["folder_path"] / "README.md").is_file()
        return None

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_to_hub_uploads_folder_without_leaking_token(tmp_path, fake_hub, capsys, caplog):
    model_dir = make_model_dir(tmp_path)
    with caplog.at_level(logging.DEBUG):
        url = hub.push_to_hub(model_dir, "acme/mtl-ui", private=True, token=FAKE_TOKEN)

    assert url == "https://huggingface.co/acme/mtl-ui"
    assert fake_hub["create_repo"] == {"repo_id": "acme/mtl-ui", "token": FAKE_TOKEN, "private": True,
                                       "exist_ok": True, "repo_type": "model"}
    up = fake_hub["upload_folder"]
    assert up["repo_id"] == "acme/mtl-ui" and up["folder_path"] == model_dir
    assert up["commit_message"] == "Upload mtl-translate model"
    assert set(up["ignore_patterns"]) >= {"checkpoint*", "checkpoints/*", "*.pt", "runs/*"}
    assert fake_hub["readme_at_upload"]
    assert "acme/mtl-ui" in caplog.text
    # README, config, generation_config, eval_results, weights, 1 tokenizer file; checkpoints/runs/.pt skipped
    assert "Uploading 6 files" in caplog.text
    out = capsys.readouterr()
    assert FAKE_TOKEN not in out.out + out.err + caplog.text


def test_hub_error_becomes_actionable_message(tmp_path, monkeypatch, capsys, caplog):
    def unauthorized(self, repo_id, **kwargs):
        request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
        raise HfHubHTTPError("401 Unauthorized", response=httpx2.Response(401, request=request))

    monkeypatch.setattr(HfApi, "create_repo", unauthorized)
    model_dir = make_model_dir(tmp_path)
    with pytest.raises(RuntimeError, match="hf auth login") as info:
        hub.push_to_hub(model_dir, "acme/mtl-ui", token=FAKE_TOKEN)
    assert "HF_TOKEN" in str(info.value) and "acme/mtl-ui" in str(info.value)
    assert isinstance(info.value.__cause__, HfHubHTTPError)
    out = capsys.readouterr()
    assert FAKE_TOKEN not in str(info.value) + out.out + out.err + caplog.text
