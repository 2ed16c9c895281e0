"""Recipes: every file parses, YAML and CLI merge, unknown keys raise."""

from pathlib import Path

import pytest
import yaml

from mtl_translate import MTLConfig
from mtl_translate.configs import load_recipe
from mtl_translate.sharing import MODES

RECIPES = sorted(p for p in Path(__file__).parents[1].joinpath("recipes").rglob("*.yaml")
                 if "accelerate_configs" not in p.parts)


def test_there_are_recipes():
    names = {p.parent.name for p in RECIPES}
    assert {"quickstart", "gettext", "xlmr_ted"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recipe_parses(path):
    recipe = load_recipe(str(path))
    assert recipe.data.target_langs and recipe.model.encoder_name_or_path
    assert recipe.training.output_dir.startswith("outputs/")


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("recipes/accelerate_configs/*.yaml")))
def test_accelerate_configs_are_valid_yaml(path):
    config = yaml.safe_load(path.read_text())
    assert config["distributed_type"] in {"NO", "MULTI_GPU", "FSDP"}


def test_cli_overrides_win_over_yaml_and_are_typed(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("learning_rate: 1.0e-3\ntarget_langs: [de, fr]\nmax_steps: 10\n")
    recipe = load_recipe(str(path), ["--max_steps", "20", "--loss_weights", "{de: 2}", "--target_langs=de,ru",
                                     "--trainable_encoder_layers", "null"])
    assert recipe.training.max_steps == 20 and recipe.training.learning_rate == 1e-3
    assert recipe.model.loss_weights == {"de": 2} and recipe.data.target_langs == ["de", "ru"]
    assert recipe.model.trainable_encoder_layers is None
    assert load_recipe(None, ["--learning_rate", "3e-4"]).training.learning_rate == 3e-4


def test_unknown_key_lists_valid_keys(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("learning_rat: 1.0e-3\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rat'\] in recipe .*Valid keys: .*learning_rate"):
        load_recipe(str(path))


def test_wrong_type_names_key(tmp_path):
    with pytest.raises(ValueError, match="recipe key 'max_steps' must be"):
        load_recipe(None, ["--max_steps", "many"])


def test_recipe_round_trips_through_yaml(tmp_path):
    recipe = load_recipe(None, ["--target_langs", "de,fr", "--hub_token", "hf_SECRET"])
    recipe.save(tmp_path / "recipe.yaml")
    assert "hf_SECRET" not in (tmp_path / "recipe.yaml").read_text()
    again = load_recipe(str(tmp_path / "recipe.yaml"))
    assert again.data.target_langs == ["de", "fr"] and again.training == recipe.training.__class__(
        **{**recipe.training.__dict__, "hub_token": None})


def test_a_recipe_can_start_from_a_base_recipe(tmp_path):
    (tmp_path / "base.yaml").write_text("learning_rate: 1.0e-3\nmax_steps: 10\ntarget_langs: [de]\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nmax_steps: 20\nloss_weighting: dwa\n")
    recipe = load_recipe(str(tmp_path / "child.yaml"), ["--learning_rate", "2e-3"])
    assert recipe.training.max_steps == 20 and recipe.model.loss_weighting == "dwa"
    assert recipe.data.target_langs == ["de"] and recipe.training.learning_rate == 2e-3


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recipe_gives_a_valid_model_config(path):
    """Sharing / weighting keys are checked when the model config is built (groups, modes, combinations)."""
    m, data = load_recipe(str(path)).model, load_recipe(str(path)).data
    config = MTLConfig(languages=data.target_langs, target_vocab_sizes={lang: 8 for lang in data.target_langs},
                       sharing=m.sharing, shared_layers=m.shared_layers, language_groups=m.language_groups or None,
                       loss_weighting=m.loss_weighting, loss_weights=m.loss_weights)
    assert config.sharing in MODES


def test_quickstart_has_a_recipe_per_method():
    methods = {load_recipe(str(p)).model.loss_weighting for p in RECIPES if p.parent.name == "quickstart"}
    sharing = {load_recipe(str(p)).model.sharing for p in RECIPES if p.parent.name == "quickstart"}
    temperatures = {load_recipe(str(p)).data.language_temperature for p in RECIPES if p.parent.name == "quickstart"}
    assert methods == {"static", "uncertainty", "dwa", "gradnorm", "pcgrad"}
    assert sharing == set(MODES) and len(temperatures) > 1
