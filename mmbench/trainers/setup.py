"""Resolve what a training run needs before the loop starts: base model, preference data,
reference-model fingerprint, the shared precompute cache, BDHS negatives and the annotator.

All user-input problems surface here as one-line `MmbenchError`s, before any training."""

from __future__ import annotations

from pathlib import Path

from mmbench.errors import MmbenchError
from mmbench.trainers.config import TrainConfig


def default_cache_dir(config: TrainConfig) -> Path:
    return Path(config.cache_dir) if config.cache_dir else Path(config.out).parent / ".mmbench-cache"


def training_suite(config: TrainConfig):
    """Where a run's defaults come from: --suite; else the suite that claims --data or --base
    (world data, the shipped base); else the default suite (mmbench/suites)."""
    from mmbench.suites import claimed_suite, get_suite

    if config.suite:
        return get_suite(config.suite)
    return claimed_suite(config.data, config.base) or get_suite(None)


def resolve_base(config: TrainConfig) -> str:
    return config.base or training_suite(config).base_model()


def resolve_data(config: TrainConfig) -> tuple[Path, Path | None]:
    """(preference source, prompt-only source); the suite's when --data is not given."""
    if config.data:
        return Path(config.data), Path(config.prompts) if config.prompts else None
    suite = training_suite(config)
    prompts = config.prompts or suite.prompt_data()
    return Path(suite.preference_data()), Path(prompts) if prompts else None


def make_annotator(config: TrainConfig, data: Path):
    """Who ranks online pairs: the suite's own annotator for its data (the world's scene
    annotator) unless --annotator names a model; else an OpenAI-compatible model."""
    from mmbench.harness.judge_client import JudgeConfig
    from mmbench.suites import claimed_suite, get_suite

    own = None
    if config.annotator in (None, "scene", "suite"):
        suite = get_suite(config.suite) if config.suite else claimed_suite(data)
        own = suite.annotator() if suite is not None else None
        if own is None and config.annotator is not None:
            raise MmbenchError(f"--annotator {config.annotator} needs a suite with an annotator of its own "
                               f"(world data); {data} belongs to none")
    if own is not None and not isinstance(own, JudgeConfig):
        return own
    from mmbench.harness.judge_pairwise import OpenAIPairwiseAnnotator
    from mmbench.harness.judge_runner import check_judge_ready

    judge = own or JudgeConfig(model=config.annotator, base_url=config.annotator_base_url)
    check_judge_ready(judge)
    return OpenAIPairwiseAnnotator(judge)


def needs(trainer, what: str, config: TrainConfig) -> bool:
    """`trainer.needs_<what>(config)`; a plug-in that implements only the protocol needs rejected
    answers and nothing else (no BDHS negatives, annotator or prompt source)."""
    check = getattr(trainer, f"needs_{what}", None)
    return bool(check(config)) if check is not None else what == "rejected"


def training_provenance(trainer, config: TrainConfig) -> dict:
    """Validate, resolve base and data, and key the run: everything before any model loads."""
    from mmbench.harness.provenance import checkpoint_fingerprint, combine, image_sha, sha, training_key
    from mmbench.trainers.data import load_preference_source
    from mmbench.trainers.loop import used_examples

    config.validate()
    config.base = resolve_base(config)
    data, prompts = resolve_data(config)
    examples = load_preference_source(
        str(data), need_rejected=needs(trainer, "rejected", config), limit=config.limit,
        data_format=config.data_format if config.data else None, image_root=config.image_root,
        subset=config.subset, subset_seed=config.subset_seed, skip_bad_rows=config.skip_bad_rows,
        pairs=config.pairs, image_cache=default_cache_dir(config) / "pref-images", quiet=True)
    base_fingerprint = checkpoint_fingerprint(config.base)
    # Text of every row (order and count set the batches), image bytes of the rows the steps use.
    used = {e.id for e in used_examples(examples, config.batch_size, config.max_steps, config.seed)}
    data_fingerprint = combine(sha(e.id, e.prompt, e.chosen, e.rejected,
                                   image_sha(e.image) if e.id in used else str(e.image)) for e in examples)
    options = config.to_dict()
    rows = _prompt_rows(trainer, config, prompts)
    if rows is not None:  # any row may be drawn: text and image bytes of all of them
        options["prompt_data"] = combine(sha(e.id, e.prompt, image_sha(e.image)) for e in rows)
    key = training_key(options, base_fingerprint, data_fingerprint)
    return {"data": data, "examples": examples, "base_fingerprint": base_fingerprint, "key": key,
            "used": used, "prompts": rows}


def _prompt_rows(trainer, config: TrainConfig, prompts):
    """The prompt source's rows when the trainer samples online pairs from it (any format the
    preference loader reads; chosen/rejected not needed), else None."""
    import sys

    from mmbench.trainers.data import load_preference_source

    if prompts is None:
        return None
    if not needs(trainer, "prompts", config):
        if config.prompts:
            print(f"note: --prompts is not used by trainer {config.trainer} with these options", file=sys.stderr)
        return None
    return load_preference_source(str(prompts), need_chosen=False, need_rejected=False, image_root=config.image_root,
                                  image_cache=default_cache_dir(config) / "pref-images", quiet=True)


def _announce_data(config: TrainConfig, data, examples) -> None:
    """Say what trains (stderr), and keep a subset's ids beside the checkpoint for audit."""
    import json
    import sys

    from mmbench.harness.runfiles import atomic_write_text

    subset = f", subset {config.subset} seed {config.subset_seed}" if config.subset else ""
    print(f"data: {data} ({len(examples)} examples{subset})", file=sys.stderr)
    if config.subset:
        out = Path(config.out)
        atomic_write_text(out.with_name(out.name + ".subset-ids.json"), json.dumps(
            {"source": str(data), "subset": config.subset, "subset_seed": config.subset_seed,
             "ids": [e.id for e in examples]}, indent=1))


def checkpoint_status(out: Path, key: dict) -> tuple[str, str | None]:
    """("reuse" | "resume" | "train", conflict): what `out` and its `.partial` hold against `key`."""
    from mmbench.harness.provenance import describe, differences, read_json
    from mmbench.trainers.loop import partial_dir

    out = Path(out)
    if out.exists():
        if not (out / "config.json").exists():
            raise MmbenchError(f"{out} exists and is not a checkpoint folder; choose another --out")
        stored = read_json(out / "provenance.json")
        if stored is None:
            return "train", f"{out} holds a checkpoint of unknown provenance"
        if stored.get("key") == key:
            return "reuse", None
        return "train", f"{out} was trained otherwise ({describe(differences(stored.get('key'), key))})"
    partial = partial_dir(out)
    if (partial / "step.json").exists():
        stored = read_json(partial / "provenance.json")
        if stored is None:
            return "train", f"{partial} is a partial run of unknown provenance"
        if stored.get("key") != key:
            return "train", f"{partial} is a partial run trained otherwise " \
                            f"({describe(differences(stored.get('key'), key))})"
        return "resume", None
    return "train", None


def prepare_run(trainer, config: TrainConfig, check: bool = True) -> dict:
    """Resolve the run; with `check`, reuse an identical checkpoint, resume an identical partial
    run, and refuse (or, with `config.overwrite`, replace) one trained otherwise."""
    import shutil

    from filelock import FileLock

    from mmbench.harness.model import load_model
    from mmbench.harness.provenance import Conflict, mmbench_version
    from mmbench.trainers.bdhs import load_embedder, precompute_offline
    from mmbench.trainers.loop import partial_dir
    from mmbench.trainers.refcache import RefLogpCache

    resolved = training_provenance(trainer, config)
    key, examples, data = resolved["key"], resolved["examples"], resolved["data"]
    if check:
        status, conflict = checkpoint_status(Path(config.out), key)
        if conflict and not config.overwrite:
            raise Conflict(f"{conflict}; use --overwrite or another --out")
        if conflict:  # the old checkpoint stays until the new one replaces it atomically
            shutil.rmtree(partial_dir(Path(config.out)), ignore_errors=True)
        if status == "reuse":
            return {"reuse": Path(config.out)}
    _announce_data(config, data, examples)
    adapter = load_model(config.base)
    fingerprint = resolved["base_fingerprint"]
    cache = default_cache_dir(config)
    cache.mkdir(parents=True, exist_ok=True)
    annotator = make_annotator(config, data) if needs(trainer, "annotator", config) else None
    used = [e for e in examples if e.id in resolved["used"]]

    def prepare(ctx) -> None:
        ctx.ref_cache = RefLogpCache(cache / "reference-logps.sqlite")
        ctx.annotator = annotator
        ctx.prompts = resolved["prompts"]
        if not needs(trainer, "bdhs", config):
            return
        sampler = config.options.sampler
        if config.options.online_bdhs:
            ctx.embed = load_embedder(sampler.embedder)
            return
        # Offline BDHS from the base, shared by every γ and every run on the same base: rows are
        # keyed by their content, and only the rows this run's steps use are generated.
        path = cache / f"bdhs-{fingerprint[:16]}-{sampler.key()}.jsonl"
        from rich.progress import Progress

        with FileLock(str(path) + ".lock"), Progress(transient=True) as bar:
            task = bar.add_task("BDHS negatives (offline, from the base)", total=len(used))
            # The embedder (seconds to load) is loaded only if some negative is still missing.
            ctx.offline_bdhs = precompute_offline(ctx.adapter, used, sampler, path,
                                                  progress=lambda n: bar.update(task, advance=n))

    provenance = {"key": key, "mmbench_version": mmbench_version()}
    return {"loop": dict(config=config, adapter=adapter, step_fn=getattr(trainer, "step", None), examples=examples,
                         reference_fingerprint=reference_fingerprint(config, fingerprint), prepare=prepare,
                         provenance=provenance),
            "used": used}


def reference_fingerprint(config: TrainConfig, base_fingerprint: str) -> str:
    """The reference log-prob cache's key for a base.  Shared-prefix log-probs equal separate rows
    only to float rounding, so they are cached under their own key."""
    return base_fingerprint + ("+shared-prefix" if config.share_prefix else "")


def precompute_shared(config: TrainConfig, bdhs: bool) -> None:
    """What every point of a grid shares, computed from the base before any training: offline
    BDHS negatives (when `bdhs`) and reference log-probs of every offline completion."""
    from contextlib import nullcontext

    from mmbench.trainers.loop import TrainContext
    from mmbench.trainers.registry import get_trainer
    from mmbench.trainers.steps import reference_logps

    trainer = get_trainer(config.trainer)
    run = prepare_run(trainer, config, check=False)
    loop, examples = run["loop"], run["used"]
    adapter = loop["adapter"]
    adapter.model.eval()
    context = TrainContext(config, None, adapter, adapter.model, lambda: nullcontext(adapter.model),
                           loop["reference_fingerprint"], examples)
    if bdhs or not needs(trainer, "bdhs", config):
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
