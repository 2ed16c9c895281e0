"""Temperature sampling of multi-target rows: the effective language shares on a skewed corpus."""

import pytest
import torch

from mtl_translate.data.balancing import RowSampler, language_shares, target_mask, temperature_row_weights

LANGS = ["de", "fr", "ru"]


@pytest.fixture(scope="module")
def skewed_rows():
    """2000 rows: German everywhere, French on 400 rows, Russian on 50 scattered rows (shares .82/.16/.02)."""
    g = torch.Generator().manual_seed(0)
    rows = [{"en": f"s{i}", "de": f"d{i}", "fr": f"f{i}" if i < 400 else None, "ru": None} for i in range(2000)]
    for i in torch.randperm(2000, generator=g)[:50].tolist():
        rows[i]["ru"] = f"r{i}"
    return rows


def expected_shares(counts, temperature):
    p = torch.tensor(counts, dtype=torch.float64).pow(1 / temperature)
    return p / p.sum()


def test_target_mask_treats_null_and_empty_as_missing():
    has = target_mask([{"de": "a", "fr": None}, {"de": "", "fr": "b"}], ["de", "fr"])
    assert has.tolist() == [[True, False], [False, True]]


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_row_weights_reach_the_temperature_shares(skewed_rows, temperature):
    has = target_mask(skewed_rows, LANGS)
    natural = language_shares(has)
    torch.testing.assert_close(natural, expected_shares([2000, 400, 50], 1.0))
    weights = temperature_row_weights(has, temperature)
    torch.testing.assert_close(language_shares(has, weights), expected_shares([2000, 400, 50], temperature),
                               atol=1e-3, rtol=0)
    if temperature == 1.0:
        torch.testing.assert_close(weights, torch.ones_like(weights))


def test_high_temperature_is_nearly_uniform(skewed_rows):
    has = target_mask(skewed_rows, LANGS)
    shares = language_shares(has, temperature_row_weights(has, 1000.0))
    assert (shares - 1 / 3).abs().max() < 0.02


def test_sampler_draws_rows_with_the_effective_shares(skewed_rows):
    has = target_mask(skewed_rows, LANGS)
    weights = temperature_row_weights(has, 5.0)
    sampler = RowSampler(len(skewed_rows), seed=0, weights=weights)
    counts = torch.zeros(3)
    for epoch in range(10):
        sampler.set_epoch(epoch)
        counts += has[list(sampler)].sum(0)
    assert (counts / counts.sum() - expected_shares([2000, 400, 50], 5.0)).abs().max() < 0.01


def test_sampler_is_reproducible_per_epoch_and_groups_by_length():
    lengths = [i % 37 for i in range(512)]
    sampler = RowSampler(512, seed=3, lengths=lengths, batch_size=32)
    first = list(sampler)
    assert sorted(first) == list(range(512)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    spread = [max(lengths[i] for i in first[k:k + 32]) - min(lengths[i] for i in first[k:k + 32])
              for k in range(0, 512, 32)]
    assert sum(spread) / len(spread) < 36 / 2  # batches of similar length, unlike a random permutation


def test_temperature_must_be_positive(skewed_rows):
    with pytest.raises(ValueError, match="language_temperature must be > 0"):
        temperature_row_weights(target_mask(skewed_rows, LANGS), 0.0)
