"""`mmbench world build`: write the whole embedded world into one folder, and `ensure_world`,
which the eval runner calls to get a built world from the cache.

Layout of a world folder (everything is a pure function of the seed; no timestamps):
    world.json                 seed, version, sizes, priors and the co-occurrence statistics
    images/<scene>.png         held-out (h…) and preference (p…) scenes, 64×64 RGB
    scenes/heldout.jsonl       scene graphs behind every benchmark record (the judge reads them)
    scenes/train.jsonl         training scene index; SFT images are rendered from it on demand
    scenes/prefs.jsonl         preference scenes
    <benchmark>/data.jsonl     the eight benchmarks in their hub row schemas (`--data DIR`)
    sft/train.jsonl            {"id","scene","image":"scene:<id>","task","prompt","response"}
    prefs/train.jsonl          {"id","image","prompt","chosen","rejected","task","corruption"}
    prefs/prompts.jsonl        {"id","image","prompt","reference","task"} for online sampling
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from mmbench.errors import MmbenchError
from mmbench.world import benchmarks_data as bd
from mmbench.world.pope_data import pope_rows, pope_statistics
from mmbench.world.scenes import (
    COLOURS, HELDOUT_PRIOR, KIND_WEIGHTS, KINDS, PAIRS, PREFERRED_COLOUR, TRAIN_PRIOR, WORDS,
    cooccurrence_stats, scene_ids, write_scenes,
)
from mmbench.world.training_sets import (pair_statistics, preference_rows, preference_scenes, sft_rows,
                                         train_scenes)

WORLD_VERSION = 3  # 2: MMHal annotations list only what an annotator sees; POVID-style rewritten pairs
# 3: POPE over 200 scenes (2,964 questions): at 120 the split intervals (±2 F1) hid the ordering


@dataclass(frozen=True)
class WorldSize:
    train_scenes: int = 30_000
    sft_per_scene: int = 3
    pref_scenes: int = 1_000
    prefs_per_scene: int = 3
    pope_scenes: int = 200
    mmhal_per_type: int = 12
    llava_scenes: int = 24
    textvqa_scenes: int = 160  # two questions each
    gqa_scenes: int = 160  # two questions each
    mmvet_scenes: int = 100  # two questions each
    coco_scenes: int = 200


FULL = WorldSize()
SMALL = WorldSize(
    train_scenes=300,
    pref_scenes=40,
    pope_scenes=30,
    mmhal_per_type=2,
    llava_scenes=6,
    textvqa_scenes=10,
    gqa_scenes=10,
    mmvet_scenes=12,
    coco_scenes=16,
)


def default_world_dir(seed: int = 0) -> Path:
    root = Path(os.environ.get("MMBENCH_CACHE") or Path.home() / ".cache" / "mmbench")
    return root / f"world-v{WORLD_VERSION}-s{seed}"


def _write_jsonl(path: Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


class _Steps:
    """A rich progress bar over the build's units of work (or nothing, for tests)."""

    def __init__(self, total: int, enabled: bool):
        self.progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description:<28}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self.task = self.progress.add_task("world", total=total)

    def __enter__(self):
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.__exit__(*exc)

    def step(self, description: str, amount: int = 0) -> None:
        if self.progress:
            self.progress.update(self.task, description=description, advance=amount)


def _render_all(folder: Path, scenes, steps: _Steps, label: str) -> None:
    from mmbench.world.render import render_scene, write_png

    for i, scene in enumerate(scenes):
        write_png(render_scene(scene), folder / "images" / f"{scene.id}.png")
        if i % 100 == 99:
            steps.step(label, 100)
    steps.step(label, len(scenes) % 100)


def _write_world(folder: Path, seed: int, size: WorldSize, progress: bool) -> dict:
    n_mmhal = 8 * size.mmhal_per_type
    plan = [
        ("pope", size.pope_scenes),
        ("mmhal", n_mmhal),
        ("llava_w", size.llava_scenes),
        ("textvqa", size.textvqa_scenes),
        ("gqa", size.gqa_scenes),
        ("mmvet", size.mmvet_scenes),
        ("coco_recall", size.coco_scenes),
    ]
    heldout_total = sum(n for _, n in plan)
    total = heldout_total * 2 + size.train_scenes + size.pref_scenes * 2
    files: dict[str, int] = {}
    with _Steps(total, progress) as steps:
        ids, start = {}, 0
        for name, n in plan:  # disjoint held-out id ranges, one per benchmark
            ids[name], start = scene_ids("h", start, n), start + n
        steps.step("held-out benchmarks")
        pope_sc = bd.pope_scenes(seed, ids["pope"])
        rows = {"pope": pope_rows(pope_sc, seed)}
        built = {"pope": pope_sc}
        builders = {
            "mmhal": bd.mmhal_rows,
            "llava_w": bd.llava_rows,
            "textvqa": bd.textvqa_rows,
            "gqa": bd.gqa_rows,
            "mmvet": bd.mmvet_rows,
            "coco_recall": bd.coco_rows,
        }
        for name, builder in builders.items():
            rows[name], built[name] = builder(seed, ids[name])
            steps.step("held-out benchmarks", len(ids[name]))
        steps.step("held-out benchmarks", len(ids["pope"]))
        rows["mmhal_v"] = rows["mmhal"]  # same data, judged with the image
        for name, bench_rows in rows.items():
            files[name] = _write_jsonl(folder / name / "data.jsonl", bench_rows)
        heldout = [s for name, _ in plan for s in built[name]]
        write_scenes(folder / "scenes" / "heldout.jsonl", heldout)
        _render_all(folder, heldout, steps, "held-out images")

        steps.step("training scenes + SFT")
        train = train_scenes(seed, scene_ids("t", 0, size.train_scenes))
        write_scenes(folder / "scenes" / "train.jsonl", train)
        files["sft"] = _write_jsonl(folder / "sft" / "train.jsonl", sft_rows(seed, train, size.sft_per_scene))
        steps.step("training scenes + SFT", size.train_scenes)

        steps.step("preference set")
        prefs = preference_scenes(seed, scene_ids("p", 0, size.pref_scenes))
        write_scenes(folder / "scenes" / "prefs.jsonl", prefs)
        pref_train, pref_prompts = preference_rows(seed, prefs, size.prefs_per_scene)
        files["prefs"] = _write_jsonl(folder / "prefs" / "train.jsonl", pref_train)
        files["prefs_prompts"] = _write_jsonl(folder / "prefs" / "prompts.jsonl", pref_prompts)
        steps.step("preference set", size.pref_scenes)
        _render_all(folder, prefs, steps, "preference images")

    info = {
        "name": "mmbench-world",
        "version": WORLD_VERSION,
        "seed": seed,
        "size": asdict(size),
        "image": {
            "size": 64,
            "grid": "2x2 cells of 32 px",
            "patch": 16,
            "noise_sigma": "0.08*255",
            "font": "Pillow default bitmap font",
        },
        "kinds": list(KINDS),
        "colours": list(COLOURS),
        "pairs": [list(p) for p in PAIRS],
        "preferred_colour": PREFERRED_COLOUR,
        "kind_weights": KIND_WEIGHTS,
        "words": list(WORDS),
        "priors": {"train": asdict(TRAIN_PRIOR), "heldout": asdict(HELDOUT_PRIOR)},
        "cooccurrence": {
            "train": cooccurrence_stats(train).to_dict(),
            "prefs": cooccurrence_stats(prefs).to_dict(),
            "heldout": cooccurrence_stats(heldout).to_dict(),
            "pope": pope_statistics(pope_sc),
        },
        "files": files,
        "preference_pairs": pair_statistics(pref_train),
        "images": {
            "heldout_and_prefs": "images/<scene>.png",
            "sft": "scene:<id> — render with "
            "mmbench.world.training_sets.load_world_image or iter_sft_examples",
        },
    }
    (folder / "world.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def _is_world(folder: Path, seed: int | None = None) -> bool:
    try:
        info = json.loads((folder / "world.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return info.get("version") == WORLD_VERSION and (seed is None or info.get("seed") == seed)


def build_world(out: str | Path, seed: int = 0, size: WorldSize = FULL, *, progress: bool = True) -> Path:
    """Build into a temporary sibling folder, then swap it in: a killed build leaves no half world.
    An existing `out` is replaced only if it is a world folder (or empty)."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and (_is_world(out) or not any(out.iterdir()))):
        raise MmbenchError(f"{out} exists and is not a world folder; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    try:
        _write_world(tmp, seed, size, progress)
        tmp.chmod(0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "world")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def ensure_world(
    dir: str | Path | None = None, seed: int = 0, *, size: WorldSize = FULL, progress: bool = False
) -> Path:
    """A built world at `dir` (default: MMBENCH_CACHE or ~/.cache/mmbench, then
    world-v<version>-s<seed>), building it first if absent; concurrent callers wait on a lock."""
    from filelock import FileLock

    target = Path(dir) if dir is not None else default_world_dir(seed)
    if _is_world(target, seed):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if not _is_world(target, seed):
            build_world(target, seed, size, progress=progress)
    return target


def build_command(seed: int = 0, out: str | Path | None = None, small: bool = False) -> Path:
    """What `mmbench world build` runs: build with a progress bar, then a one-line summary."""
    import time

    from rich.console import Console

    target = Path(out) if out is not None else default_world_dir(seed)
    start = time.perf_counter()
    build_world(target, seed, SMALL if small else FULL, progress=True)
    files = json.loads((target / "world.json").read_text(encoding="utf-8"))["files"]
    counts = ", ".join(f"{name} {n}" for name, n in files.items())
    Console(soft_wrap=True).print(
        f"world v{WORLD_VERSION} seed {seed} -> {target} in {time.perf_counter() - start:.1f} s ({counts})"
    )
    pairs = json.loads((target / "world.json").read_text(encoding="utf-8"))["preference_pairs"]
    Console(soft_wrap=True).print(
        f"preference pairs: words chosen {pairs['words']['chosen']} vs rejected {pairs['words']['rejected']}, "
        f"objects named {pairs['objects']['chosen']} vs {pairs['objects']['rejected']}, rejected longer "
        f"{pairs['rejected_longer']:.0%} / shorter {pairs['rejected_shorter']:.0%}, short answers "
        f"{pairs['short_answers']:.0%}; corruptions {pairs['corruptions']}"
    )
    return target
