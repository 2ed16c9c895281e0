"""`mtl-translate average-checkpoints`: the mean of a run's last checkpoints' weights, as a model folder."""

import re

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mtl_translate import Translator
from mtl_translate.cli import main
from mtl_translate.configs import load_recipe
from mtl_translate.train import run

from .conftest import LANGS, tiny_recipe


@pytest.fixture(scope="module")
def trained(corpus_dir, tiny_encoder_dir, tmp_path_factory):
    """4 steps, a checkpoint after each (keeping the last 3)."""
    out = tmp_path_factory.mktemp("avg") / "run"
    path = out.parent / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(corpus_dir, tiny_encoder_dir, out, max_steps=4, save_steps=1,
                                               save_total_limit=3, eval_steps=4)))
    run(load_recipe(str(path)))
    return out


def test_average_of_the_last_checkpoints_is_their_elementwise_mean(trained, tmp_path):
    main(["average-checkpoints", "--model", str(trained), "--last", "3", "--output_dir", str(tmp_path / "avg")])
    states = [load_file(str(trained / "checkpoints" / f"step_{s}" / "model.safetensors")) for s in (2, 3, 4)]
    averaged = Translator.from_pretrained(str(tmp_path / "avg"), device="cpu")
    weights = averaged.model.state_dict()
    moved = 0
    for name, value in states[0].items():
        expected = (states[0][name].double() + states[1][name].double() + states[2][name].double()) / 3
        torch.testing.assert_close(weights[name].double(), expected, rtol=0, atol=1e-6)
        moved += not torch.equal(states[0][name], states[2][name])
    assert moved > 0  # the checkpoints differ: the mean is not one of them
    assert (tmp_path / "avg" / "averaged_from.txt").read_text().split() == [
        str(trained / "checkpoints" / f"step_{s}") for s in (2, 3, 4)]
    assert averaged.model.config.languages == LANGS
    assert set(averaged.translate(["Open file"], max_new_tokens=4)) == set(LANGS)
    assert (tmp_path / "avg" / "recipe.yaml").is_file()


def test_bad_averaging_requests_are_clear_errors(trained, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    cases = [(["--last", "5"], "x", r"holds 3 complete checkpoint\(s\) \(step_2, step_3, step_4\), fewer than --last 5"),
             (["--last", "1"], "x", r"--last must be >= 2"),
             ([], "full", r"output_dir .*full is not empty")]
    for args, out, message in cases:
        with pytest.raises(SystemExit) as exit_:
            main(["average-checkpoints", "--model", str(trained), *args, "--output_dir", str(tmp_path / out)])
        assert re.search(f"^mtl-translate average-checkpoints: error: .*{message}", str(exit_.value.code))
    assert not (tmp_path / "x").exists()
