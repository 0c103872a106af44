"""The calibration behind `mmbench ablate … --dry-run` (mmbench/trainers/cost.py): a few pieces of a
grid's real work timed on the loaded base model with the grid's own settings — answers of every
benchmark, BDHS negatives, reference log-probs, optimizer steps — and what the grid's caches still
lack.  Nothing is written outside the temporary folder it is given; the grid's caches are only read
(the reference log-prob database through a copy, since opening it would write to it)."""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
import time
from pathlib import Path

from mmbench.trainers.config import TrainConfig

EVAL_SAMPLES_CAP = 64  # at most this many records per benchmark are generated
BDHS_ROWS = 8  # rows whose BDHS negatives are generated
STEPS = 3  # optimizer steps per measured point; the first one is a warm-up


def clock() -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def _spread(items: list, k: int) -> list:
    """k items evenly spread over the list (short and long prompts alike)."""
    return list(items) if len(items) <= k else [items[round(i * (len(items) - 1) / max(k - 1, 1))] for i in range(k)]


def measure_eval(adapter, benchmarks, options: dict) -> tuple[dict, dict]:
    """Per benchmark: (records, measured, seconds per generated answer), and records-load seconds."""
    from mmbench.benchmarks import load_records
    from mmbench.harness.eval_api import EvalRequest, resolve_data, resolve_suite
    from mmbench.harness.evaluate import EvalSettings
    from mmbench.harness.generation import GenerationRequest

    model = options.get("model")
    request = EvalRequest(model=model, benchmarks=benchmarks, data=options.get("data"), suite=options.get("suite"))
    suite = resolve_suite(request, None if model is None else Path(model).expanduser())
    settings = EvalSettings(data=resolve_data(request, suite), limit=options.get("limit"),
                            batch_size=options["batch_size"], max_new_tokens=options.get("max_new_tokens"))
    rates, loads, warmed = {}, {}, False
    for benchmark in benchmarks:
        start = time.perf_counter()
        records = load_records(benchmark, settings.data_for(benchmark), limit=settings.limit)
        loads[benchmark.name] = time.perf_counter() - start
        picked = _spread(records, min(settings.batch_size, EVAL_SAMPLES_CAP))
        requests = [GenerationRequest(prompt=r.prompt, image=r.image) for r in picked]
        generation = settings.generation(benchmark)
        if not warmed and requests:  # first-call overhead (allocator, kernels) is not a per-sample cost
            from dataclasses import replace

            adapter.generate(requests[:1], replace(generation, max_new_tokens=2), batch_size=1)
            warmed = True
        start = clock()
        adapter.generate(requests, generation, batch_size=settings.batch_size)
        rates[benchmark.name] = (len(records), len(picked), (clock() - start) / max(len(picked), 1))
    return rates, loads


def used_rows(trainer, config: TrainConfig) -> tuple[list, dict]:
    """The rows the grid's steps reach (as the shared precompute computes them), and the resolved run."""
    from mmbench.trainers.setup import training_provenance

    resolved = training_provenance(trainer, config)
    return [e for e in resolved["examples"] if e.id in resolved["used"]], resolved


def pending_precompute(adapter, config: TrainConfig, used: list, fingerprint: str, bdhs: bool,
                       scratch: Path) -> tuple[int, int, dict]:
    """(BDHS negatives to generate, rows whose reference log-probs are missing, stored negatives),
    read from the grid's caches without writing to them."""
    from mmbench.harness.provenance import sha
    from mmbench.trainers.bdhs import BDHSNegative
    from mmbench.trainers.refcache import RefLogpCache, example_key
    from mmbench.trainers.setup import default_cache_dir, reference_fingerprint

    cache = default_cache_dir(config)
    stored: dict[str, BDHSNegative] = {}
    offline = bdhs and not getattr(config.options, "online_bdhs", False)
    if offline:
        import json

        path = cache / f"bdhs-{fingerprint[:16]}-{config.options.sampler.key()}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        rows = {row["key"]: row for row in (json.loads(line) for line in lines if line.strip()) if row.get("key")}
        fields = set(BDHSNegative.__dataclass_fields__) - {"id"}
        for e in used:
            row = rows.get(sha(e.id, example_key(e), e.chosen))
            if row is not None:
                stored[e.id] = BDHSNegative(id=e.id, **{k: v for k, v in row.items() if k in fields})
    todo_bdhs = sum(e.id not in stored for e in used) if offline else 0
    database = cache / "reference-logps.sqlite"
    if not database.exists():
        return todo_bdhs, len(used), stored
    copy_dir = scratch / "refcopy"
    copy_dir.mkdir()
    for suffix in ("", "-wal"):  # a copy: opening the grid's database would write to it
        if Path(str(database) + suffix).exists():
            shutil.copy(str(database) + suffix, copy_dir / ("reference-logps.sqlite" + suffix))
    ref = RefLogpCache(copy_dir / "reference-logps.sqlite")
    with_rejected = all(e.rejected for e in used)
    missing = 0
    for e in used:
        keys = [adapter.completion_ids(e.chosen)] + ([adapter.completion_ids(e.rejected)] if with_rejected else [])
        if offline:
            if e.id not in stored:
                missing += 1
                continue
            keys.append(stored[e.id].ids)
        found = ref.get_many(reference_fingerprint(config, fingerprint), [(example_key(e), ids) for ids in keys])
        missing += any(v is None for v in found)
    ref.close()
    return todo_bdhs, missing, stored


def measure_bdhs(adapter, rows: list, config: TrainConfig) -> tuple[float, float, list]:
    """(embedder load seconds, seconds per negative, negatives) on a handful of rows."""
    from mmbench.trainers.bdhs import load_embedder, sample_negatives

    start = time.perf_counter()
    embed = load_embedder(config.options.sampler.embedder)
    loaded = time.perf_counter() - start
    picked = rows[:BDHS_ROWS]
    start = clock()
    negatives = sample_negatives(adapter, picked, config.options.sampler, embed)
    return loaded, (clock() - start) / max(len(picked), 1), negatives


def measure_reference(adapter, config: TrainConfig, rows: list, negatives: dict, fingerprint: str,
                      cache: Path) -> float:
    """Seconds per row of the shared reference log-prob precompute (its chunks of 16, its columns)."""
    from mmbench.trainers.loop import TrainContext
    from mmbench.trainers.refcache import RefLogpCache
    from mmbench.trainers.steps import reference_logps

    adapter.model.eval()
    context = TrainContext(config, None, adapter, adapter.model, lambda: contextlib.nullcontext(adapter.model),
                           fingerprint, rows, ref_cache=RefLogpCache(cache / "reference-logps.sqlite"),
                           offline_bdhs=negatives)
    names = ["chosen", *(["rejected"] if all(e.rejected for e in rows) else []), *(["bdhs"] if negatives else [])]
    start = clock()
    for first in range(0, len(rows), 16):
        chunk = rows[first:first + 16]
        columns = {name: [negatives[e.id].ids for e in chunk] if name == "bdhs"
                   else [adapter.completion_ids(getattr(e, name)) for e in chunk] for name in names}
        reference_logps(context, chunk, columns, cached=set(names))
    seconds = clock() - start
    context.ref_cache.close()
    return seconds / max(len(rows), 1)


def measure_steps(adapter, config: TrainConfig, rows: list, negatives: dict, fingerprint: str, scratch: Path,
                  prompts=None, annotator=None) -> tuple[float, float, bool]:
    """(seconds per step, set-up seconds, reference built) of `STEPS` steps on `rows` in a throw-away run."""
    from mmbench.trainers.bdhs import load_embedder
    from mmbench.trainers.loop import run_training
    from mmbench.trainers.refcache import RefLogpCache
    from mmbench.trainers.registry import get_trainer

    run = copy.deepcopy(config)
    run.out, run.cache_dir = str(scratch / "run" / "checkpoint"), str(scratch / "cache")
    run.max_steps, run.save_every = STEPS, 10**9
    step_fn = get_trainer(run.trainer).step
    starts: list[float] = []
    built = {}

    def timed(context, batch, step):
        if len(starts) <= step:
            starts.append(clock())
            built.setdefault("reference", getattr(context.reference, "constructed", True))
        return step_fn(context, batch, step)

    if hasattr(step_fn, "reference_columns"):
        timed.reference_columns = step_fn.reference_columns

    def prepare(context) -> None:
        context.ref_cache = RefLogpCache(scratch / "cache" / "reference-logps.sqlite")
        context.offline_bdhs = dict(negatives)
        context.prompts, context.annotator = prompts, annotator
        if getattr(run.options, "online_bdhs", False):
            context.embed = load_embedder(run.options.sampler.embedder)

    begin = clock()
    with contextlib.redirect_stderr(io.StringIO()):  # the loop's notes are about the throw-away run
        result = run_training(run, adapter, timed, rows, fingerprint, prepare=prepare, progress=False)
    end = clock()
    if run.lora:  # the next measurement starts from the base again
        adapter.model = result.accelerator.unwrap_model(result.policy).unload()
    del result
    free_memory()
    per_step = (end - starts[1]) / (STEPS - 1) if len(starts) > 1 else end - starts[0]
    return per_step, starts[0] - begin, built.get("reference", True)


def free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class FirstWins:
    """Stands in for an API annotator during calibration: prefers the first answer of each pair."""

    def prefer(self, items) -> list[int]:
        return [0] * len(items)


