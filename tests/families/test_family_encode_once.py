"""Encode once per step, on every family: k completion columns built from ONE processor call equal
encoding the repeated requests, and one vision-tower pass per example scores them identically."""

import pytest
import torch
from builders import FAMILIES

from mmbench.harness.generation import GenerationRequest
from mmbench.harness.model import load_model
from mmbench.trainers.logps import completion_logps
from mmbench.trainers.losses import sequence_logps

# The whole family matrix is the slow tier (CI runs it; `-m 'not slow'` skips it).
pytestmark = pytest.mark.slow


def _requests(family_world, n=2):
    import json

    world = family_world["world"]
    rows = [json.loads(x) for x in (world / "prefs" / "train.jsonl").read_text().splitlines()]
    images = list(dict.fromkeys(r["image"] for r in rows))[:n]
    return [GenerationRequest(prompt="Is there a cross in the image?", image=str(world / i)) for i in images]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_one_encoding_scores_every_column_like_separate_rows(family, checkpoint, family_world):
    adapter = load_model(checkpoint(family))
    requests = _requests(family_world)
    columns = {"a": [adapter.completion_ids("yes"), adapter.completion_ids("no there is a red square")],
               "b": [adapter.completion_ids("a red square"), adapter.completion_ids("no")]}
    once = adapter.completion_rows(adapter.encode_prompts(requests, padding_side="right"), list(columns.values()))
    flat = adapter.encode_completions(requests * 2, [c for column in columns.values() for c in column])
    assert set(once) == set(flat)
    for key, value in flat.items():
        assert (torch.equal(once[key], value) if hasattr(value, "shape") else once[key] == value), key
    labels = flat.pop("labels")
    flat.pop("prompt_lengths")
    with torch.no_grad():
        expected = sequence_logps(adapter.model(**flat).logits, labels, labels != -100)
        got = completion_logps(adapter, adapter.model, requests, columns)
    torch.testing.assert_close(torch.cat([got["a"], got["b"]]), expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_shared_prefix_scores_like_separate_rows_or_is_not_used(family, checkpoint, family_world):
    """Families in SHARED_PREFIX: the prompt runs once and completions continue from its cache, to
    float rounding of separate rows.  Other families ignore the option: the very same numbers."""
    from mmbench.harness import families

    adapter = load_model(checkpoint(family))
    requests = _requests(family_world, n=3)
    columns = {"a": [adapter.completion_ids(t) for t in ("yes", "no there is a red square", "a cross")],
               "b": [adapter.completion_ids(t) for t in ("a red square", "no", "there is a blue star on the left")]}
    with torch.no_grad():
        rows = completion_logps(adapter, adapter.model, requests, columns)
        shared = completion_logps(adapter, adapter.model, requests, columns, share_prefix=True)
    for name in rows:
        if families.shares_prefix(adapter.model):
            torch.testing.assert_close(shared[name], rows[name], rtol=0, atol=1e-4)
        else:
            assert torch.equal(shared[name], rows[name])
