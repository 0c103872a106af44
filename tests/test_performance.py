"""Performance paths keep the maths: one encoding per step, one vision pass per example, chunked
log-probs, reference-free training from cached log-probs, memory options, bench/scale.py --tiny."""

import copy
import json
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from mmbench.harness.generation import GenerationRequest
from mmbench.harness.model import HFVisionLanguageModel, load_model
from mmbench.trainers.config import TrainConfig
from mmbench.trainers.registry import get_trainer

from trainer_fixtures import make_model, make_prefs


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("perfworld")
    return {"prefs": make_prefs(root / "data"), "base": make_model(root / "models"), "root": root}


def _inputs(world, adapter, n=4):
    rows = [json.loads(line) for line in world["prefs"].read_text().splitlines()][:n]
    requests = [GenerationRequest(r["prompt"], world["prefs"].parent / r["image"]) for r in rows]
    columns = {"chosen": [adapter.completion_ids(r["chosen"]) for r in rows],
               "rejected": [adapter.completion_ids(r["rejected"]) for r in rows],
               "short": [adapter.completion_ids("yes") for _ in rows]}
    return requests, columns


def test_completion_rows_equal_encoding_the_repeated_requests(world):
    adapter = load_model(world["base"])
    requests, columns = _inputs(world, adapter)
    names = list(columns)
    once = adapter.completion_rows(adapter.encode_prompts(requests, padding_side="right"),
                                   [columns[n] for n in names])
    flat = adapter.encode_completions(requests * len(names), [c for n in names for c in columns[n]])
    assert set(once) == set(flat)
    for key, value in flat.items():
        if hasattr(value, "shape"):
            assert torch.equal(once[key], value), key
        else:
            assert once[key] == value, key


def _count_calls(monkeypatch, cls, name):
    calls = []
    original = getattr(cls, name)

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, counted)
    return calls


def test_one_encoding_and_one_vision_pass_per_example_for_policy_and_reference(world, monkeypatch):
    from mmbench.harness import families
    from mmbench.trainers.logps import completion_logps
    from mmbench.trainers.steps import scored_logps

    adapter = load_model(world["base"])
    requests, columns = _inputs(world, adapter)
    examples = [SimpleNamespace(request=r, id=f"ex{i}") for i, r in enumerate(requests)]
    ctx = SimpleNamespace(adapter=adapter, policy=adapter.model, reference=lambda: nullcontext(adapter.model),
                          ref_cache=None, config=TrainConfig(), reference_fingerprint="x")
    tower = adapter.model.get_submodule(families.model_parts(adapter.model).vision_tower)
    tower.requires_grad_(False)  # as training freezes it (freeze_vision)
    seen = []
    forward = tower.forward
    tower.forward = lambda *args, **kwargs: seen.append(  # what the tower computes, after any hook
        next(v for v in (*args, *kwargs.values()) if torch.is_tensor(v)).shape[0]) or forward(*args, **kwargs)
    encodes = _count_calls(monkeypatch, HFVisionLanguageModel, "encode_prompts")
    with torch.no_grad():
        policy, reference = scored_logps(ctx, examples, columns, cached=set())
    assert len(encodes) == 1  # the processor ran once for three columns, policy and reference
    # One tower pass per step: one image per example, and the frozen tower's output is shared by
    # the reference and the policy forwards.
    assert seen == [len(requests)]
    # ... and the numbers are those of scoring every (request, completion) row separately.
    names = list(columns)
    flat = adapter.encode_completions(requests * 3, [c for n in names for c in columns[n]])
    labels = flat.pop("labels")
    flat.pop("prompt_lengths")
    from mmbench.trainers.losses import sequence_logps

    with torch.no_grad():
        expected = sequence_logps(adapter.model(**flat).logits, labels, labels != -100)
    torch.testing.assert_close(torch.cat([policy[n] for n in names]), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.cat([reference[n] for n in names]), expected, rtol=0, atol=1e-5)
    with torch.no_grad():
        separate = completion_logps(adapter, adapter.model, requests, {"chosen": columns["chosen"]})
    torch.testing.assert_close(separate["chosen"], policy["chosen"], rtol=0, atol=1e-5)


def test_chunked_logps_equal_full_logits_in_value_and_gradient(world):
    from mmbench.trainers.logps import completion_logps

    adapter = load_model(world["base"])
    adapter.model.train()
    requests, columns = _inputs(world, adapter)
    results = []
    for chunk in (0, 5):
        adapter.model.zero_grad()
        out = completion_logps(adapter, adapter.model, requests, columns, chunk_size=chunk)
        (out["chosen"] - 0.5 * out["rejected"] + out["short"]).sum().backward()
        grads = {n: p.grad.clone() for n, p in adapter.model.named_parameters() if p.grad is not None}
        results.append(({k: v.detach() for k, v in out.items()}, grads))
    (full, full_grads), (chunked, chunked_grads) = results
    for name in full:
        torch.testing.assert_close(chunked[name], full[name], rtol=0, atol=1e-4)
    assert set(full_grads) == set(chunked_grads)
    for name in full_grads:
        torch.testing.assert_close(chunked_grads[name], full_grads[name], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("chunk", [0, 5])
def test_shared_prefix_logps_equal_separate_rows_in_value_and_gradient(world, chunk):
    from mmbench.trainers.logps import completion_logps

    adapter = load_model(world["base"])
    adapter.model.train()
    requests, columns = _inputs(world, adapter)
    seen: list = []  # (rows, tokens) of every language-model pass
    embed = adapter.model.get_input_embeddings()
    hook = embed.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    results = []
    for share in (False, True):
        seen.clear()
        adapter.model.zero_grad()
        out = completion_logps(adapter, adapter.model, requests, columns, chunk_size=chunk, share_prefix=share)
        (out["chosen"] - 0.5 * out["rejected"] + out["short"]).sum().backward()
        grads = {n: p.grad.clone() for n, p in adapter.model.named_parameters() if p.grad is not None}
        results.append(({k: v.detach() for k, v in out.items()}, grads, list(seen)))
    hook.remove()
    (rows, row_grads, row_passes), (shared, shared_grads, shared_passes) = results
    prompt = adapter.encode_prompts(requests, padding_side="right")["input_ids"].shape
    widest = max(len(c) for column in columns.values() for c in column)
    assert row_passes == [(3 * 4, row_passes[0][1])]  # 3 columns x 4 examples, prompt + completion each
    assert shared_passes == [tuple(prompt), (3 * 4, widest)]  # the prompt once, then completions only
    for name in rows:
        torch.testing.assert_close(shared[name], rows[name], rtol=0, atol=1e-4)
    assert set(row_grads) == set(shared_grads)
    for name in row_grads:
        torch.testing.assert_close(shared_grads[name], row_grads[name], rtol=1e-3, atol=1e-6)


@pytest.mark.slow  # quick tier < 2 min on 2 cores; CI runs it
def test_shared_prefix_training_keeps_the_maths_and_refuses_checkpointing(world, tmp_path):
    from mmbench.errors import MmbenchError

    plain, plain_log = _train(world, "bdhs", tmp_path / "plain", tmp_path / "c1", gamma=0.5, live_reference=True,
                              share_prefix=False)
    fast, fast_log = _train(world, "bdhs", tmp_path / "fast", tmp_path / "c2", gamma=0.5, live_reference=True,
                            share_prefix=True)
    for a, b in zip(plain_log, fast_log, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    for key in plain:
        torch.testing.assert_close(fast[key], plain[key], rtol=1e-4, atol=1e-5)
    config = TrainConfig(trainer="dpo", share_prefix=True, gradient_checkpointing=True)
    with pytest.raises(MmbenchError, match="--share-prefix cannot be combined with --gradient-checkpointing"):
        config.validate()
    # The default: on, and off (not refused) under checkpointing.
    assert TrainConfig(trainer="dpo", out=str(tmp_path / "d")).validate().share_prefix is True
    checkpointed = TrainConfig(trainer="dpo", out=str(tmp_path / "d"), gradient_checkpointing=True).validate()
    assert checkpointed.share_prefix is False


def _train(world, name, out, cache, **options):
    config = TrainConfig(trainer=name, base=str(world["base"]), data=str(world["prefs"]), out=str(out), lr=1e-3,
                         max_steps=options.pop("max_steps", 3), batch_size=4, cache_dir=str(cache), seed=0,
                         optimizer="sgd", **options)
    trainer = get_trainer(name)
    trainer.setup(config)
    trainer.train()
    out = trainer.save()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return load_file(str(out / "model.safetensors")), log


@pytest.mark.parametrize("name,options", [("dpo", {}), ("bdhs", {"gamma": 0.5}),
                                          ("dpo", {"lora": True, "lora_rank": 4, "lora_alpha": 8})])
def test_reference_free_training_equals_the_live_reference_run(world, tmp_path, monkeypatch, capfd, name, options):
    if options.get("lora"):
        pytest.importorskip("peft")
    from mmbench.trainers.setup import precompute_shared

    # Live: an empty cache, the reference model scores every step.
    live, live_log = _train(world, name, tmp_path / "live", tmp_path / "cache-live", **dict(options))
    # Reference-free: the ablation's shared precompute fills the cache, then nothing builds a reference.
    cache = tmp_path / "cache-shared"
    config = TrainConfig(trainer=name, base=str(world["base"]), data=str(world["prefs"]), out=str(tmp_path / "pre"),
                         max_steps=3, batch_size=4, cache_dir=str(cache), seed=0, optimizer="sgd", lr=1e-3,
                         **dict(options))
    cache.mkdir()
    for negatives in (tmp_path / "cache-live").glob("bdhs-*.jsonl"):  # BDHS negatives: generated once
        (cache / negatives.name).write_text(negatives.read_text())
    precompute_shared(config, bdhs=name == "bdhs")
    copies, disabled = [], []
    original = copy.deepcopy
    monkeypatch.setattr(copy, "deepcopy", lambda obj, *a, **k: (
        copies.append(type(obj).__name__) if isinstance(obj, torch.nn.Module) else None) or original(obj, *a, **k))
    if options.get("lora"):
        import peft

        original_disable = peft.PeftModel.disable_adapter
        monkeypatch.setattr(peft.PeftModel, "disable_adapter",
                            lambda self: disabled.append(1) or original_disable(self))
    capfd.readouterr()
    free, free_log = _train(world, name, tmp_path / "free", cache, **dict(options))
    assert copies == [] and disabled == []  # the reference model was never constructed nor switched to
    assert "reference: not loaded" in capfd.readouterr().err
    assert [e["step"] for e in free_log] == [e["step"] for e in live_log]
    for a, b in zip(free_log, live_log):
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
    for key in live:
        torch.testing.assert_close(free[key], live[key], rtol=0, atol=1e-6)
    # Forcing a live reference on the same cache builds it again (full fine-tuning: one copy).
    _train(world, name, tmp_path / "forced", cache, live_reference=True, **dict(options))
    assert copies == ([] if options.get("lora") else ["LlavaForConditionalGeneration"])


def test_reference_is_built_when_some_completion_is_sampled_or_missing(world, tmp_path, monkeypatch):
    copies = []
    original = copy.deepcopy
    monkeypatch.setattr(copy, "deepcopy", lambda obj, *a, **k: (
        copies.append(1) if isinstance(obj, torch.nn.Module) else None) or original(obj, *a, **k))
    _train(world, "dpo", tmp_path / "a", tmp_path / "cache", max_steps=1)  # empty cache: live
    assert copies == [1]
    # Only the first step's examples are cached now: a longer run still needs the reference.
    _train(world, "dpo", tmp_path / "b", tmp_path / "cache", max_steps=2)
    assert copies == [1, 1]
    _train(world, "dpo", tmp_path / "c", tmp_path / "cache", max_steps=2)  # now all cached
    assert copies == [1, 1]


def test_memory_options_keep_the_maths(world, tmp_path):
    plain, plain_log = _train(world, "dpo", tmp_path / "plain", tmp_path / "c1", max_steps=2, live_reference=True)
    fast, fast_log = _train(world, "dpo", tmp_path / "fast", tmp_path / "c2", max_steps=2, live_reference=True,
                            gradient_checkpointing=True, attn_implementation="sdpa", logp_chunk_size=8)
    for a, b in zip(plain_log, fast_log):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    for key in plain:
        torch.testing.assert_close(fast[key], plain[key], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_scale_bench_tiny_runs_every_measurement(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, str(root / "bench" / "scale.py"), "--tiny", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    kinds = {row["what"][:3] for row in rows}
    assert kinds == {"(a)", "(b)", "(c)", "(d)"}
    assert all(row["rate"] and row["rate"] > 0 for row in rows if not row["note"])
    assert "GPU-hours" in done.stdout and "| measurement |" in done.stdout


def test_ablation_plan_says_when_the_reference_is_not_loaded():
    from mmbench.ablate import AblationConfig, reference_plan

    assert "not loaded at any point" in reference_plan(AblationConfig(knob="gamma", values=[0.0, 0.5, 1.0]))
    line = reference_plan(AblationConfig(knob="p", values=[0.5, 1.0]))
    assert "live where online pairs" in line and "p=0.5" in line and "not loaded at p=1" in line
    line = reference_plan(AblationConfig(knob="gamma", values=[0.5, 1.0], train={"online_bdhs": True}))
    assert "online BDHS" in line and "not loaded at gamma=1" in line
