"""Trainers on a tiny LLaVA built from config: parameters move, invariants hold, runs resume."""

import json

import pytest
import torch
from safetensors.torch import load_file

from mmbench.errors import MmbenchError
from mmbench.trainers.config import TrainConfig
from mmbench.trainers.registry import get_trainer

from trainer_fixtures import ShorterIsBetter, make_model, make_prefs


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefworld")
    return {"prefs": make_prefs(root / "data"), "base": make_model(root / "models"), "root": root}


def train(world, name, out, **options):
    config = TrainConfig(trainer=name, base=str(world["base"]), data=str(world["prefs"]), out=str(out),
                         lr=options.pop("lr", 1e-3), max_steps=options.pop("max_steps", 2),
                         batch_size=options.pop("batch_size", 4),
                         cache_dir=str(world["root"] / "cache"), seed=0, **options)
    trainer = get_trainer(name)
    trainer.setup(config)
    trainer.train()
    return trainer.save()


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_dpo_changes_every_trainable_parameter(world, tmp_path):
    out = train(world, "dpo", tmp_path / "dpo", max_steps=3)
    before, after = weights(world["base"]), weights(out)
    trainable = [k for k in before if "vision_tower" not in k]
    unchanged = [k for k in trainable if torch.equal(before[k], after[k])]
    assert not unchanged, unchanged
    frozen = [k for k in before if "vision_tower" in k]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["trainer"] == "dpo" and saved["max_steps"] == 3
    assert (out / "metrics.json").exists() and len((out / "log.jsonl").read_text().splitlines()) == 3
    assert not (tmp_path / "dpo.partial").exists()


def test_gamma_one_is_plain_dpo(world, tmp_path):
    dpo = weights(train(world, "dpo", tmp_path / "dpo"))
    gamma1 = weights(train(world, "bdhs", tmp_path / "g1", gamma=1.0))
    for key in dpo:
        assert torch.allclose(dpo[key], gamma1[key], atol=1e-6), key


def test_gradient_accumulation_matches_one_big_batch(world, tmp_path):
    big = weights(train(world, "dpo", tmp_path / "big", batch_size=8, max_steps=2, optimizer="sgd"))
    accum = weights(train(world, "dpo", tmp_path / "acc", batch_size=8, grad_accum=4, max_steps=2, optimizer="sgd"))
    base = weights(world["base"])
    assert any(not torch.equal(base[k], big[k]) for k in base)
    for key in big:
        assert torch.allclose(big[key], accum[key], atol=1e-6), key


def test_resume_after_interruption_matches_uninterrupted(world, tmp_path, monkeypatch):
    full = weights(train(world, "dpo", tmp_path / "full", max_steps=4, save_every=2))
    from mmbench.trainers import steps

    real = steps.dpo_step
    calls = {"n": 0}

    def dying(ctx, examples, step):
        if step == 3:
            raise KeyboardInterrupt("simulated kill")
        calls["n"] += 1
        return real(ctx, examples, step)

    monkeypatch.setattr(steps, "dpo_step", dying)
    with pytest.raises(KeyboardInterrupt):
        train(world, "dpo", tmp_path / "resumed", max_steps=4, save_every=2)
    assert (tmp_path / "resumed.partial" / "step.json").exists() and not (tmp_path / "resumed").exists()
    monkeypatch.setattr(steps, "dpo_step", real)
    resumed = weights(train(world, "dpo", tmp_path / "resumed", max_steps=4, save_every=2))
    for key in full:
        assert torch.allclose(full[key], resumed[key], atol=1e-6), key


def test_mixed_dpo_p_endpoints(world, tmp_path, monkeypatch):
    annotator = ShorterIsBetter()
    monkeypatch.setattr("mmbench.trainers.setup.make_annotator", lambda config, data: annotator)
    offline = weights(train(world, "mixed-dpo", tmp_path / "p1", p=1.0))
    dpo = weights(train(world, "dpo", tmp_path / "dpo"))
    assert annotator.calls == 0
    for key in dpo:
        assert torch.allclose(dpo[key], offline[key], atol=1e-6), key
    out = train(world, "mixed-dpo", tmp_path / "p0", p=0.0, online_max_tokens=8)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert annotator.calls == 2 * 4 and all(entry["offline_share"] == 0.0 for entry in log)


def test_bad_options_fail_with_one_line(world, tmp_path):
    with pytest.raises(MmbenchError, match="gamma"):
        train(world, "bdhs", tmp_path / "x", gamma=1.5)
    with pytest.raises(MmbenchError, match="did you mean 'dpo'"):
        get_trainer("dpoo")
    bad = world["root"] / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "image": "nope.png", "prompt": "p", "chosen": "c", "rejected": "r"}) + "\n")
    config = TrainConfig(trainer="dpo", base=str(world["base"]), data=str(bad), out=str(tmp_path / "y"))
    with pytest.raises(MmbenchError, match="bad.jsonl:1: image not found"):
        get_trainer("dpo").setup(config)
    bad.write_text(json.dumps({"id": "a", "image": "nope.png", "prompt": "p", "chosen": "c"}) + "\n")
    with pytest.raises(MmbenchError, match="lacks rejected"):
        get_trainer("dpo").setup(config)


def test_bdhs_gamma_grid_shares_offline_negatives_and_reference_logps(world, tmp_path):
    cache = world["root"] / "cache"
    out = train(world, "bdhs", tmp_path / "g05", gamma=0.5)
    log = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert {"external/margin", "bdhs/margin", "bdhs/accuracy"} <= set(log)
    (negatives,) = cache.glob("bdhs-*.jsonl")
    stamp = negatives.stat().st_mtime_ns
    rows = [json.loads(line) for line in negatives.read_text().splitlines()]
    assert len(rows) == 8 and all(r["ids"] for r in rows)
    from mmbench.trainers.refcache import RefLogpCache

    before = RefLogpCache(cache / "reference-logps.sqlite")._db.execute("SELECT COUNT(*) FROM ref").fetchone()[0]
    out0 = train(world, "bdhs", tmp_path / "g0", gamma=0.0)
    after = RefLogpCache(cache / "reference-logps.sqlite")._db.execute("SELECT COUNT(*) FROM ref").fetchone()[0]
    assert negatives.stat().st_mtime_ns == stamp  # generated once, reused by the next γ
    assert after == before  # γ=0 needed only chosen and BDHS columns, both cached by γ=0.5
    assert "external/margin" not in json.loads((out0 / "log.jsonl").read_text().splitlines()[0])


@pytest.mark.slow
@pytest.mark.parametrize("share_prefix", [False, True])  # True: two policy forwards per backward under DDP
def test_two_processes_equal_one_with_the_same_global_batch(world, tmp_path, share_prefix):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    common = ["train", "dpo", "--base", str(world["base"]), "--data", str(world["prefs"]), "--batch-size", "4",
              "--max-steps", "3", "--lr", "0.01", "--optimizer", "sgd", "--share-prefix" if share_prefix else "--no-share-prefix"]
    one = subprocess.run([sys.executable, "-m", "mmbench", *common, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "-m", "mmbench", *common,
                          "--out", str(tmp_path / "two")], capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    log1 = [json.loads(x) for x in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    log2 = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [round(e["loss"], 5) for e in log1] == [round(e["loss"], 5) for e in log2]
    assert log1[-1]["loss"] != log1[0]["loss"]
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_lora_reference_is_the_base_with_adapters_off(world, tmp_path):
    pytest.importorskip("peft")
    out = train(world, "dpo", tmp_path / "lora", lora=True, lora_rank=4, lora_alpha=8, max_steps=3, lr=0.01)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["loss"] == pytest.approx(0.6931, abs=1e-4)  # policy == reference at step 0
    before, after = weights(world["base"]), weights(out)
    assert set(before) == set(after)  # adapters merged: a plain checkpoint that eval can read
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("language_model" in k for k in changed)


@pytest.mark.slow  # quick tier < 2 min on 2 cores; CI runs it
def test_online_bdhs_generates_negatives_from_the_policy(world, tmp_path, monkeypatch):
    from mmbench.trainers import bdhs

    calls = []
    real = bdhs.sample_negatives

    def spy(adapter, examples, config, embed, **kwargs):
        calls.append(len(examples))
        return real(adapter, examples, config, embed, **kwargs)

    monkeypatch.setattr(bdhs, "sample_negatives", spy)
    monkeypatch.setattr(bdhs, "load_embedder", lambda name: lambda texts: torch.nn.functional.normalize(
        torch.stack([torch.tensor([float(len(t)), float(t.count(" ")) + 1.0]) for t in texts]), dim=-1))
    out = train(world, "bdhs", tmp_path / "online", gamma=0.0, online_bdhs=True, max_steps=2)
    assert calls == [4, 4]  # one batch of negatives per step, none precomputed
    assert "bdhs/margin" in (out / "log.jsonl").read_text()


def _prompts_file(world, name="prompts.jsonl", question="describe the image ."):
    rows = [{"id": f"q{i}", "image": f"images/{i}.png", "prompt": question} for i in range(3)]  # prompt-only rows
    path = world["prefs"].parent / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_online_pairs_take_their_prompts_from_the_prompt_source(world, tmp_path, monkeypatch):
    from mmbench.harness.provenance import Conflict

    seen = []

    class Spy(ShorterIsBetter):
        def prefer(self, items):
            seen.extend((item.context["id"], item.prompt) for item in items)
            return super().prefer(items)

    monkeypatch.setattr("mmbench.trainers.setup.make_annotator", lambda config, data: Spy())
    prompts = _prompts_file(world)
    out = train(world, "mixed-dpo", tmp_path / "p0", p=0.0, online_max_tokens=8, prompts=str(prompts))
    assert len(seen) == 2 * 4 and {i for i, _ in seen} <= {"q0", "q1", "q2"}
    assert {q for _, q in seen} == {"describe the image ."}  # never the preference file's question
    key = json.loads((out / "provenance.json").read_text())["key"]["config"]
    assert key["mixed-dpo"]["p"] == 0.0 and "prompt_data" in key
    _prompts_file(world, question="what colour is the square ?")  # same path, other prompts: another run
    with pytest.raises(Conflict, match="prompt_data"):
        train(world, "mixed-dpo", tmp_path / "p0", p=0.0, online_max_tokens=8, prompts=str(prompts))


def test_a_bad_prompt_source_is_one_line_before_any_model_loads(world, tmp_path, monkeypatch, capsys):
    from mmbench.cli import main

    monkeypatch.setattr("mmbench.harness.model.load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    common = ["train", "mixed-dpo", "--base", str(world["base"]), "--data", str(world["prefs"]), "--p", "0.5",
              "--out", str(tmp_path / "ck")]
    bad = tmp_path / "prompts.jsonl"
    bad.write_text(json.dumps({"id": "a", "prompt": "describe", "image": "nope.png"}) + "\n")
    for path, message in ((tmp_path / "missing.jsonl", "not found"), (bad, "image not found")):
        with pytest.raises(SystemExit) as exit_:
            main([*common, "--prompts", str(path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "ck").exists()


def test_train_options_come_in_sections_from_file_flags_and_set(world, tmp_path, monkeypatch):
    from mmbench.cli import main
    from mmbench.trainers import bdhs

    monkeypatch.setattr(bdhs, "load_embedder", lambda name: lambda texts: torch.nn.functional.normalize(
        torch.stack([torch.tensor([float(len(t)), float(t.count(" ")) + 1.0]) for t in texts]), dim=-1))
    config = tmp_path / "train.toml"  # a flat old name (gamma) and sections: the section wins
    config.write_text("lr = 0.01\ngamma = 0.9\nbatch_size = 4\n\n[bdhs]\ngamma = 0.3\nrho_th = 0.5\n"
                      "sentence_tokens = 6\n\n[mixed-dpo]\np = 0.2\n")
    out = tmp_path / "ck"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "bdhs", "--base", str(world["base"]), "--data", str(world["prefs"]), "--config", str(config),
              "--max-steps", "1", "--rho-th", "0.7", "--out", str(out), "--seed", "0",
              "--set", "gamma=0.25", "--set", "bdhs.full_tokens=8", "--set", "bdhs.max_tries=2"])
    assert exit_.value.code == 0
    saved = json.loads((out / "train_config.json").read_text())
    assert (saved["lr"], saved["batch_size"], saved["trainer"]) == (0.01, 4, "bdhs")
    assert saved["bdhs"]["gamma"] == 0.25  # --set beat the file's section
    sampler = saved["bdhs"]["sampler"]
    assert (sampler["rho_th"], sampler["sentence_tokens"], sampler["full_tokens"], sampler["max_tries"]) == (0.7, 6, 8, 2)
    assert "mixed-dpo" not in saved and "gamma" not in saved and "p" not in saved  # only the trainer's own section
    assert "bdhs/loss" in (out / "log.jsonl").read_text()


def test_unknown_and_out_of_range_trainer_options_are_one_line(world, tmp_path, capsys):
    from mmbench.cli import main

    for args, message in ((["--set", "gama=0.3"], "unknown training option(s) gama"),
                          (["--set", "bdhs.rho_thh=1"], "unknown key(s) bdhs.rho_thh"),
                          (["--gamma", "1.5"], "--gamma must be within [0, 1]"),
                          (["--set", "bdhs.rho_th=high"], "bdhs.sampler.rho_th must be a number")):
        with pytest.raises(SystemExit) as exit_:
            main(["train", "bdhs", "--base", str(world["base"]), "--data", str(world["prefs"]),
                  "--out", str(tmp_path / "x"), *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 2 and len(err) == 1 and message in err[0], (args, err)


def test_accelerate_state_reset_refuses_an_accelerate_without_it(monkeypatch):
    import importlib.metadata

    from mmbench.trainers.loop import reset_accelerate_state

    reset_accelerate_state()  # the installed accelerate: fine
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.19.1")
    with pytest.raises(MmbenchError, match="accelerate 0.19.1 cannot reset its state between runs"):
        reset_accelerate_state()
