"""BDHS sampler on a tiny LLaVA: masking, guidance bookkeeping, the similarity check, offline files."""

import json

import pytest
import torch

from mmbench.harness.generation import GenerationRequest
from mmbench.harness.model import load_model
from mmbench.trainers import bdhs
from mmbench.trainers.bdhs import BDHSConfig, masked_generate, precompute_offline, sample_negatives
from mmbench.trainers.data import load_preferences

from trainer_fixtures import make_model, make_prefs


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bdhs")
    prefs = load_preferences(make_prefs(root / "data"))
    adapter = load_model(make_model(root / "models", seed=3))
    return adapter, prefs, root


def bag_of_words(texts):
    """A deterministic embedder for tests: normalised hashed word counts."""
    import zlib

    out = torch.zeros(len(texts), 512)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, zlib.crc32(word.encode()) % 512] += 1
    return torch.nn.functional.normalize(out, dim=-1)


def test_fully_masked_image_equals_text_only_generation(setup):
    adapter, prefs, _ = setup
    with_image = [e.request for e in prefs[:4]]
    text_only = [GenerationRequest(prompt=e.prompt, image=None) for e in prefs[:4]]
    stop = [adapter.tokenizer.eos_token_id]
    gen = torch.Generator().manual_seed(0)
    masked = masked_generate(adapter, with_image, [[]] * 4, rho_th=1.0, max_new_tokens=12, stop_ids=stop, generator=gen)
    plain = masked_generate(adapter, text_only, [[]] * 4, rho_th=1.0, max_new_tokens=12, stop_ids=stop, generator=gen)
    assert masked == plain
    visible = masked_generate(adapter, with_image, [[]] * 4, rho_th=0.0, max_new_tokens=12, stop_ids=stop, generator=gen)
    assert visible != masked  # with the image visible the (random) model answers differently


def test_similarity_check_rejects_a_copy_of_the_chosen_answer(setup, monkeypatch):
    adapter, prefs, _ = setup
    calls = []

    def copying(adapter_, requests, prefixes, **kwargs):
        # Guided tries "complete" each sentence with exactly the chosen answer's remaining words.
        calls.append(kwargs["max_new_tokens"])
        return [[] for _ in requests]  # prefix + nothing: the cut sentence

    monkeypatch.setattr(bdhs, "masked_generate", copying)
    never_different = lambda texts: torch.ones(len(texts), 4) / 2  # noqa: E731  (cosine 1 for everything)
    config = BDHSConfig(max_tries=3, sentence_tokens=5, full_tokens=7)
    negatives = sample_negatives(adapter, prefs[:2], config, never_different)
    assert all(n.tries == 3 and not n.guided for n in negatives)  # rejected twice, last try kept
    assert calls == [5, 5, 7]


def test_guided_negative_keeps_prefix_ids_and_differs(setup):
    adapter, prefs, _ = setup
    config = BDHSConfig(max_tries=2, epsilon_s=0.999, sentence_tokens=6)
    negatives = sample_negatives(adapter, prefs[:3], config, bag_of_words)
    for negative, example in zip(negatives, prefs[:3]):
        assert negative.ids[-1] == adapter.tokenizer.eos_token_id
        assert negative.text != example.chosen or not negative.guided
        assert adapter.tokenizer.image_token_id not in negative.ids


def test_yes_no_sentences_are_flipped(setup):
    adapter, prefs, _ = setup
    import random

    flips = 0
    for seed in range(40):
        jobs = bdhs._plan(adapter, "yes there is a square . it is red .", 0, random.Random(seed), 0.5)
        assert len(jobs) == 2 and jobs[1].context_ids  # second sentence sees the first, true one
        flips += jobs[0].prefix_text.startswith("no")
    assert 8 < flips < 32


def test_offline_precompute_resumes_to_the_same_file(setup, tmp_path):
    adapter, prefs, _ = setup
    config = BDHSConfig(max_tries=2, sentence_tokens=6)
    full = tmp_path / "full.jsonl"
    precompute_offline(adapter, prefs, config, full, embed=bag_of_words, chunk=3)
    part = tmp_path / "part.jsonl"
    part.write_text("".join(full.read_text().splitlines(keepends=True)[:3]))  # as if killed after a chunk
    precompute_offline(adapter, prefs, config, part, embed=bag_of_words, chunk=3)
    assert part.read_text() == full.read_text()
    rows = [json.loads(line) for line in full.read_text().splitlines()]
    assert [r["id"] for r in rows] == [e.id for e in prefs]


def test_a_negative_does_not_depend_on_its_batch(setup, tmp_path):
    """Offline rows are reused by content across runs, so a smoke run's negatives must equal what a
    full precompute gives for the same rows, whatever else was in the batch."""
    adapter, prefs, _ = setup
    config = BDHSConfig(max_tries=2, sentence_tokens=6, rho_th=0.5)
    full = precompute_offline(adapter, prefs, config, tmp_path / "full.jsonl", embed=bag_of_words, chunk=8)
    some = precompute_offline(adapter, [prefs[5], prefs[2]], config, tmp_path / "some.jsonl", embed=bag_of_words,
                              chunk=1)
    assert some[prefs[2].id] == full[prefs[2].id] and some[prefs[5].id] == full[prefs[5].id]
    # a changed row (same id, other chosen answer) misses and gets its own negative
    changed = type(prefs[2])(id=prefs[2].id, prompt=prefs[2].prompt, image=prefs[2].image,
                             chosen=prefs[2].chosen + " it is big .", rejected=prefs[2].rejected)
    again = precompute_offline(adapter, [changed], config, tmp_path / "some.jsonl", embed=bag_of_words)
    assert len((tmp_path / "some.jsonl").read_text().splitlines()) == 3
    assert again[changed.id].ids != some[prefs[2].id].ids or again[changed.id].text != some[prefs[2].id].text
