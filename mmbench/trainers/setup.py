"""Resolve what a training run needs before the loop starts: base model, preference data,
reference-model fingerprint, the shared precompute cache, BDHS negatives and the annotator.

All user-input problems surface here as one-line `MmbenchError`s, before any training."""

from __future__ import annotations

from pathlib import Path

from mmbench.errors import MmbenchError
from mmbench.trainers.config import TrainConfig


def default_cache_dir(config: TrainConfig) -> Path:
    return Path(config.cache_dir) if config.cache_dir else Path(config.out).parent / ".mmbench-cache"


def resolve_base(base: str | None) -> str:
    if base:
        return base
    from mmbench.world.paths import shipped_base_model

    return str(shipped_base_model())


def resolve_data(config: TrainConfig) -> tuple[Path, Path | None]:
    """(preference file, prompt-only file); the world's set is built on demand when none is given."""
    if config.data:
        return Path(config.data), Path(config.prompts) if config.prompts else None
    from mmbench.world.build import ensure_world

    world = ensure_world()
    prompts = world / "prefs" / "prompts.jsonl"
    return world / "prefs" / "train.jsonl", prompts if prompts.exists() else None


def world_root(path: Path) -> Path | None:
    """The world folder a file belongs to (it holds world.json), if any."""
    for folder in [path.parent, *path.parents]:
        if (folder / "world.json").exists():
            return folder
    return None


def make_annotator(config: TrainConfig, data: Path):
    """The scene judge on world data (or when asked for "scene"); else an OpenAI-compatible model."""
    root = world_root(data)
    if config.annotator in (None, "scene") and root is not None:
        from mmbench.world.scene_judge import ScenePairwiseAnnotator

        return ScenePairwiseAnnotator(root)
    if config.annotator == "scene":
        raise MmbenchError(f"--annotator scene needs world data; {data} is not inside a world folder")
    from mmbench.harness.judge_client import JudgeConfig
    from mmbench.harness.judge_pairwise import OpenAIPairwiseAnnotator
    from mmbench.harness.judge_runner import check_judge_ready

    judge = JudgeConfig(model=config.annotator, base_url=config.annotator_base_url)
    check_judge_ready(judge)
    return OpenAIPairwiseAnnotator(judge)


def prepare_run(trainer, config: TrainConfig) -> dict:
    from filelock import FileLock

    from mmbench.harness.model import load_model
    from mmbench.trainers.bdhs import load_embedder, precompute_offline
    from mmbench.trainers.data import load_preferences
    from mmbench.trainers.refcache import RefLogpCache, model_fingerprint

    config.validate()
    config.base = resolve_base(config.base)
    data, prompts = resolve_data(config)
    examples = load_preferences(data, need_rejected=trainer.needs_rejected(config), limit=config.limit)
    adapter = load_model(config.base)
    base_path = Path(config.base)
    fingerprint = model_fingerprint(base_path) if base_path.is_dir() else f"hub:{config.base}"
    cache = default_cache_dir(config)
    cache.mkdir(parents=True, exist_ok=True)
    annotator = make_annotator(config, data) if trainer.needs_annotator(config) else None
    import hashlib

    data_key = hashlib.sha256("\n".join(f"{e.id}\t{e.chosen}" for e in examples).encode()).hexdigest()[:12]

    def prepare(ctx) -> None:
        ctx.ref_cache = RefLogpCache(cache / "reference-logps.sqlite")
        ctx.annotator = annotator
        if not trainer.needs_bdhs(config):
            return
        if config.online_bdhs:
            ctx.embed = load_embedder(config.bdhs.embedder)
            return
        # Offline BDHS from the base, shared by every γ; the lock makes concurrent workers wait.
        path = cache / f"bdhs-{fingerprint[:16]}-{config.bdhs.key()}-{data_key}.jsonl"
        from rich.progress import Progress

        with FileLock(str(path) + ".lock"), Progress(transient=True) as bar:
            task = bar.add_task("BDHS negatives (offline, from the base)", total=len(examples))
            # The embedder (seconds to load) is loaded only if some negative is still missing.
            ctx.offline_bdhs = precompute_offline(ctx.adapter, examples, config.bdhs, path,
                                                  progress=lambda n: bar.update(task, advance=n))

    return {"loop": dict(config=config, adapter=adapter, step_fn=trainer.step, examples=examples,
                         reference_fingerprint=fingerprint, prepare=prepare)}


def precompute_shared(config: TrainConfig, bdhs: bool) -> None:
    """What every point of a grid shares, computed from the base before any training: offline
    BDHS negatives (when `bdhs`) and reference log-probs of every offline completion."""
    from contextlib import nullcontext

    from mmbench.trainers.loop import TrainContext
    from mmbench.trainers.registry import get_trainer
    from mmbench.trainers.steps import reference_logps

    trainer = get_trainer(config.trainer)
    loop = prepare_run(trainer, config)["loop"]
    adapter, examples = loop["adapter"], loop["examples"]
    adapter.model.eval()
    context = TrainContext(config, None, adapter, adapter.model, lambda: nullcontext(adapter.model),
                           loop["reference_fingerprint"], examples)
    if bdhs or not trainer.needs_bdhs(config):
        loop["prepare"](context)
    names = ["chosen", *(["rejected"] if all(e.rejected for e in examples) else []),
             *(["bdhs"] if context.offline_bdhs else [])]
    from rich.progress import Progress

    with Progress(disable=False, transient=True) as bar:
        task = bar.add_task("reference log-probs", total=len(examples))
        for start in range(0, len(examples), 16):
            chunk = examples[start:start + 16]
            columns = {}
            for name in names:
                if name == "bdhs":
                    columns[name] = [context.offline_bdhs[e.id].ids for e in chunk]
                else:
                    columns[name] = [adapter.completion_ids(getattr(e, name)) for e in chunk]
            reference_logps(context, chunk, columns, cached=set(names))
            bar.update(task, advance=len(chunk))
