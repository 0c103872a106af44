"""Building the world: determinism, layout, disjoint splits, the cache, the CLI and the SFT API."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmbench.benchmarks.base import SINGLE_WORD
from mmbench.cli import app
from mmbench.errors import MmbenchError
from mmbench.world.build import SMALL, WORLD_VERSION, build_world, default_world_dir, ensure_world
from mmbench.world.language import PROMPT_DETAIL
from mmbench.world.scenes import read_scenes
from mmbench.world.training_sets import SftExamples, iter_sft_examples, load_world_image, read_jsonl


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("w") / "world", seed=7, size=SMALL, progress=False)


def test_same_seed_gives_byte_identical_files(world, tmp_path):
    again = build_world(tmp_path / "again", seed=7, size=SMALL, progress=False)
    assert digest(again) == digest(world)
    other = build_world(tmp_path / "other", seed=8, size=SMALL, progress=False)
    assert digest(other) != digest(world)


def test_builds_do_not_depend_on_string_hashing(world, tmp_path):
    """A fresh interpreter with another PYTHONHASHSEED writes the same bytes (no set-order leaks)."""
    code = (
        "from mmbench.world.build import build_world, SMALL; import sys; "
        "build_world(sys.argv[1], seed=7, size=SMALL, progress=False)"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "fresh")], check=True, env=env)
    assert digest(tmp_path / "fresh") == digest(world)


def test_layout_and_world_json(world):
    info = json.loads((world / "world.json").read_text())
    assert info["seed"] == 7 and info["version"] == WORLD_VERSION
    train = info["cooccurrence"]["train"]
    assert set(train["partner_present"]) == set(info["kinds"]) and 0 < train["overall_partner_present"] < 1
    assert info["cooccurrence"]["heldout"]["overall_partner_present"] < train["overall_partner_present"]
    assert set(info["cooccurrence"]["pope"]) == {"frequency", "cooccurrence"}
    for name in ("pope", "mmhal", "mmhal_v", "llava_w", "textvqa", "gqa", "mmvet", "coco_recall"):
        assert (world / name / "data.jsonl").exists() and info["files"][name] > 0
    assert not list(world.parent.glob(".world.*"))  # no temporary folders left behind


def test_heldout_scenes_never_reach_the_training_sets(world):
    heldout = read_scenes(world / "scenes" / "heldout.jsonl")
    train = read_scenes(world / "scenes" / "train.jsonl")
    prefs = read_scenes(world / "scenes" / "prefs.jsonl")
    assert all(s.startswith("h") for s in heldout) and all(s.startswith("t") for s in train)
    assert all(s.startswith("p") for s in prefs)
    seeds = [{s.noise_seed for s in group.values()} for group in (heldout, train, prefs)]
    assert not (seeds[0] & seeds[1]) and not (seeds[0] & seeds[2]) and not (seeds[1] & seeds[2])
    sft_scenes = {row["scene"] for row in read_jsonl(world / "sft" / "train.jsonl")}
    assert sft_scenes <= set(train)
    pref_ids = {row["id"].split("-")[0] for row in read_jsonl(world / "prefs" / "train.jsonl")}
    assert pref_ids <= set(prefs)
    images = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (world / "images").glob("h*.png")}
    assert not images & {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (world / "images").glob("p*.png")
    }


def test_sft_set_uses_the_benchmark_prompt_formats(world):
    rows = list(read_jsonl(world / "sft" / "train.jsonl"))
    assert len(rows) == SMALL.train_scenes * SMALL.sft_per_scene
    assert any(r["prompt"].endswith("\n" + SINGLE_WORD) and r["response"] in ("Yes", "No") for r in rows)
    assert any(r["prompt"] == PROMPT_DETAIL for r in rows)
    assert sum(r["task"] == "exist" for r in rows) > 0.3 * len(rows)
    examples = list(iter_sft_examples(world, limit=5))
    assert len(examples) == 5
    image, prompt, response = examples[0]
    assert image.size == (64, 64) and prompt == rows[0]["prompt"] and response == rows[0]["response"]
    only = list(iter_sft_examples(world, tasks={"detail"}, limit=3))
    assert all(p == PROMPT_DETAIL or p.startswith(("Please", "Give", "What do you see")) for _, p, _ in only)
    lazy = SftExamples(world)
    assert len(lazy) == len(rows) and lazy[0][1:] == (prompt, response)
    assert lazy[0][0].tobytes() == image.tobytes() and lazy.scene(0).id == rows[0]["scene"]
    assert len(SftExamples(world, tasks={"exist"})) == sum(r["task"] == "exist" for r in rows)
    rendered = load_world_image(world, rows[0]["image"])
    assert rendered.tobytes() == image.tobytes()
    stored = load_world_image(world, "images/h00000.png")
    assert stored.size == (64, 64)


def test_ensure_world_builds_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    target = default_world_dir(2)
    assert target == tmp_path / "cache" / f"world-v{WORLD_VERSION}-s2"
    built = ensure_world(seed=2, size=SMALL)
    assert built == target and (target / "world.json").exists()
    stamp = (target / "world.json").stat().st_mtime_ns
    assert ensure_world(seed=2, size=SMALL) == target
    assert (target / "world.json").stat().st_mtime_ns == stamp  # found, not rebuilt
    explicit = ensure_world(tmp_path / "mine", seed=2, size=SMALL)
    assert digest(explicit) == digest(target)


def test_build_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(MmbenchError):
        build_world(tmp_path / "notes", seed=0, size=SMALL, progress=False)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_cli_world_build(tmp_path):
    result = CliRunner().invoke(
        app, ["world", "build", "--small", "--seed", "7", "--out", str(tmp_path / "w")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "w" / "world.json").read_text())["seed"] == 7
    # Rebuilding over an existing world replaces it in place.
    result = CliRunner().invoke(
        app, ["world", "build", "--small", "--seed", "7", "--out", str(tmp_path / "w")]
    )
    assert result.exit_code == 0, result.output


def test_preference_pairs_are_rewrites_of_the_same_length(world):
    """POVID-style: the rejected answer is the chosen one rewritten (objects swapped for partners or
    other kinds, colour/size/count/position changed, yes/no flipped) — same length, same number of
    objects named — so DPO cannot learn 'say less'."""
    info = json.loads((world / "world.json").read_text())
    stats = info["preference_pairs"]
    assert stats["pairs"] > 50
    assert stats["words"]["chosen"] == stats["words"]["rejected"]
    assert stats["objects"]["chosen"] == stats["objects"]["rejected"]
    assert stats["rejected_longer"] == stats["rejected_shorter"] == 0
    assert {"partner", "colour", "object", "deny"} <= set(stats["corruptions"])
    assert stats["corruptions"]["partner"] == max(stats["corruptions"].values())  # the prior's own error first
    rows = [json.loads(line) for line in (world / "prefs" / "train.jsonl").read_text().splitlines()]
    assert all(r["chosen"] != r["rejected"] for r in rows)
    # MMHal's image-content annotation leaves out the small, faint objects an annotator misses
    scenes = {s: sc for s, sc in read_scenes(world / "scenes" / "heldout.jsonl").items()}
    for line in (world / "mmhal" / "data.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert row["image_content"] == scenes[row["image_id"]].annotated_kinds()
