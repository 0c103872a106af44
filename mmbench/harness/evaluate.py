"""The eval runner: records -> model responses -> judge verdicts -> scores -> run files.

Resumable, and keyed by provenance (harness/provenance.py): before anything runs, every
benchmark is planned.  A `results.json` is reused only when its key (checkpoint, generation
settings, every record's prompt + image + reference, scoring, judge) equals the request's; a
stored answer only when its own key matches its record and the folder's `provenance.json`
(checkpoint, dtype, generation settings, benchmark version) matches.  Anything stored that
was produced otherwise stops the run with one line naming the difference, before any work
(`--overwrite` clears it instead).  Batch size is not in any key: generation is batch-invariant.

A partly generated benchmark continues from its `samples.jsonl`, rewritten atomically after
every chunk.  Under `accelerate launch` each process generates a shard of the records into its
own part file; the main process merges them in record order, so the result equals a
single-process run.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from mmbench.benchmarks import Benchmark, Record, load_records
from mmbench.errors import MmbenchError
from mmbench.harness.generation import GenerationRequest, Generator
from mmbench.harness.provenance import (SCORER_VERSION, Conflict, combine, describe, differences, input_key,
                                        input_keys, read_json, sha)
from mmbench.harness.runfiles import (atomic_write_json, atomic_write_text, read_samples, run_dir,
                                      sample_line, write_samples)
from mmbench.harness.scoring import build_results, requested_parse, score_samples


@dataclass
class EvalSettings:
    data: str | dict | None = None  # "hub", a hub id or a folder; or one of those per benchmark name
    limit: int | None = None
    batch_size: int = 8
    strict: bool = False  # `--strict`: the strict parse, for benchmarks that have one (POPE)
    chunk: int = 64  # generations between two samples-file rewrites
    max_new_tokens: int | None = None  # cap on every benchmark's answer length (small models, smoke runs)
    extra: dict = field(default_factory=dict)  # recorded in results.config (judge, engine, ...)
    # what generates the answers: checkpoint fingerprint, dtype, device (set by run_eval)
    model_key: dict = field(default_factory=dict)
    overwrite: bool = False  # replace stored work of another provenance instead of refusing

    @property
    def parse(self) -> str | None:
        return requested_parse(self.strict)

    def data_for(self, benchmark: Benchmark) -> str | None:
        return self.data.get(benchmark.name) if isinstance(self.data, dict) else self.data

    def fingerprint(self, benchmark: Benchmark) -> dict:
        """The settings in words, for people and reports (the provenance key is in `plan`)."""
        return {"data": self.data_for(benchmark), "limit": self.limit, "version": benchmark.version,
                "parse": benchmark.parse_for(self.parse), "max_new_tokens": self.max_new_tokens}

    def generation_key(self, generator: Generator, benchmark: Benchmark) -> dict:
        """Everything common to a benchmark's answers; stored as the folder's provenance.json."""
        return {"model": self.model_key or {"name": generator.name}, "benchmark": benchmark.name,
                "version": benchmark.version, "generation": asdict(self.generation(benchmark)),
                "engine": "mmbench"}

    def generation(self, benchmark: Benchmark):
        from dataclasses import replace

        cap = self.max_new_tokens
        settings = benchmark.generation
        return replace(settings, max_new_tokens=min(settings.max_new_tokens, cap)) if cap else settings


@dataclass
class Distributed:
    """Rank and size of the process group (1 process unless run under `accelerate launch`)."""

    rank: int = 0
    size: int = 1
    barrier: Callable[[], None] = lambda: None

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def detect(cls) -> "Distributed":
        import os

        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        import torch
        from accelerate import PartialState

        # Without cpu=True accelerate does not set up a CPU process group (gloo) from torchrun's env.
        state = PartialState(cpu=not torch.cuda.is_available())
        return cls(rank=state.process_index, size=state.num_processes, barrier=state.wait_for_everyone)


def _sample_image_field(record: Record, folder: Path) -> str | None:
    """Where a vision judge can find the image again: a path relative to the samples file."""
    image = record.image
    if image is None:
        return None
    if hasattr(image, "save"):
        name = hashlib.sha1(record.id.encode()).hexdigest()[:16] + ".png"
        target = folder / "images" / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG")
            target.write_bytes(buffer.getvalue())
        return f"images/{name}"
    return str(Path(image).resolve())


def sample_key(record: Record, inputs: str | None = None) -> str:
    """An answer's inputs: prompt, image bytes (`inputs`: their `input_key`, when known) and the
    reference it is scored against."""
    return sha(inputs or input_key(record.prompt, record.image), record.reference)


def _render(generator: Generator, record: Record) -> str:
    render = getattr(generator, "render_prompt", None)
    return render(GenerationRequest(prompt=record.prompt, image=record.image)) if callable(render) else record.prompt


def _make_sample(benchmark: Benchmark, record: Record, response: str, folder: Path, key: str,
                 rendered: str) -> dict:
    sample = {"benchmark": benchmark.name, "id": record.id, "prompt": record.prompt, "prompt_rendered": rendered,
              "response": response, "reference": record.reference, "key": key}
    if benchmark.judge is not None and benchmark.judge.vision:
        sample["image"] = _sample_image_field(record, folder)
    return sample


def _judge_of(sample: dict) -> dict:
    judge = sample.get("judge") or {}
    return {k: judge.get(k) for k in ("model", "prompt_version", "runs")}


@dataclass
class Plan:
    """What evaluating one benchmark will reuse and compute, and why."""

    benchmark: Benchmark
    folder: Path
    records: list[Record]
    keys: dict[str, str]  # record id -> sample key
    generation: dict  # the folder's provenance.json
    results_key: dict  # results.json config.provenance
    action: str = "generate"  # reuse | score | generate
    todo: int = 0  # answers to generate
    reason: str = ""
    conflict: str | None = None  # stored work of another provenance
    inputs: dict[str, str] = field(default_factory=dict)  # record id -> input_key (prompt + image bytes)


def plan_benchmark(generator: Generator, benchmark: Benchmark, out: Path, settings: EvalSettings,
                   judge_identity: dict | None = None) -> Plan:
    """Compare what `out` holds for this benchmark with what the request would produce."""
    folder = run_dir(out, generator.name, benchmark.name)
    records = load_records(benchmark, settings.data_for(benchmark), limit=settings.limit)
    if not records:
        raise MmbenchError(f"{benchmark.name}: no records to evaluate (data {settings.data_for(benchmark)}, "
                           f"limit {settings.limit})")
    inputs = dict(zip((r.id for r in records), input_keys((r.prompt, r.image) for r in records)))
    keys = {r.id: sample_key(r, inputs[r.id]) for r in records}
    generation = settings.generation_key(generator, benchmark)
    results_key = {"generation": sha(generation), "inputs": combine(keys[r.id] for r in records),
                   "n": len(records), "scorer": SCORER_VERSION,
                   "parse": benchmark.parse_for(settings.parse),
                   "judge": judge_identity if benchmark.judged else None}
    plan = Plan(benchmark, folder, records, keys, generation, results_key, todo=len(records), inputs=inputs)
    results = read_json(folder / "results.json")
    if results is not None and (results.get("config") or {}).get("provenance") == results_key:
        plan.action, plan.todo, plan.reason = "reuse", 0, "results match the request"
        return plan
    stored = [p for p in [folder / "samples.jsonl", *sorted(folder.glob("samples.part*.jsonl"))] if p.exists()]
    if not stored and results is None:
        plan.reason = "nothing stored"
        return plan
    sidecar = read_json(folder / "provenance.json")
    if sidecar is None:
        plan.conflict = f"{folder} holds answers of unknown provenance (no provenance.json)"
        return plan
    if sidecar != generation:
        what = "another checkpoint" if sidecar.get("model") != generation["model"] else "other settings"
        plan.conflict = f"{folder} holds answers from {what} ({describe(differences(sidecar, generation))})"
        return plan
    samples = {s["id"]: s for p in stored for s in read_samples(p)}
    other_inputs = [i for i, s in samples.items() if i in keys and s.get("key") != keys[i]]
    if other_inputs:
        plan.conflict = (f"{folder} holds {len(other_inputs)} answers to other inputs (the data changed, "
                         f"e.g. record {other_inputs[0]!r})")
        return plan
    other_judge = [i for i, s in samples.items() if i in keys and "judge" in s and _judge_of(s) != judge_identity]
    if other_judge:
        old = _judge_of(samples[other_judge[0]])
        plan.conflict = (f"{folder} holds verdicts from another judge "
                         f"({describe(differences(old, judge_identity or {}))})")
        return plan
    plan.todo = sum(1 for r in records if r.id not in samples)
    plan.action = "generate" if plan.todo else "score"
    old_key = (results or {}).get("config", {}).get("provenance")
    changed = describe(differences(old_key, results_key)) if old_key else "no results yet"
    plan.reason = (f"{len(records) - plan.todo} answers reused, {plan.todo} to generate" if plan.todo
                   else f"all answers reused; rescoring ({changed})")
    return plan


def generate_samples(generator: Generator, plan: Plan, records: Sequence[Record], path: Path,
                     settings: EvalSettings, progress=None) -> list[dict]:
    """Generate what `path` does not hold yet, rewriting it after every chunk; return all samples.

    Records with the same input (prompt + image bytes, `input_key`) are generated once per run and
    share the answer and rendered prompt: greedy answers depend on nothing else (the `Generator`
    contract: identical whatever the batch), so the copy is byte for byte what generating again
    would give.  World POPE asks many questions in more than one split about the same image
    (2,964 records, 1,319 distinct inputs)."""
    benchmark = plan.benchmark
    done = {}
    if path.exists():  # the plan checked every stored key; answers to records not asked for are dropped
        done = {s["id"]: s for s in read_samples(path) if plan.keys.get(s["id"]) == s.get("key")}
    for s in done.values():
        s.pop("_line", None)
    # Each sample is serialised once; the per-chunk rewrite only joins the lines (same bytes as
    # write_samples, without re-encoding every earlier sample after every chunk).
    lines = {i: sample_line(s) for i, s in done.items()}
    todo = [r for r in records if r.id not in done]
    task = progress.add_task(f"{benchmark.name}", total=len(records), completed=len(records) - len(todo)) \
        if progress is not None else None
    if todo:
        atomic_write_json(plan.folder / "provenance.json", plan.generation)
    inputs = {r.id: plan.inputs.get(r.id) or input_key(r.prompt, r.image) for r in todo}
    answered: dict[str, tuple[str, str]] = {}  # input key -> (response, prompt_rendered), this run
    for start in range(0, len(todo), settings.chunk):
        chunk = todo[start:start + settings.chunk]
        new: dict[str, Record] = {}  # first record of each input not answered yet, in record order
        for record in chunk:
            if inputs[record.id] not in answered:
                new.setdefault(inputs[record.id], record)
        if new:
            requests = [GenerationRequest(prompt=r.prompt, image=r.image) for r in new.values()]
            responses = generator.generate(requests, settings.generation(benchmark), batch_size=settings.batch_size)
            for (key, record), response in zip(new.items(), responses):
                answered[key] = (response, _render(generator, record))
        for record in chunk:
            if inputs[record.id] not in answered:  # the generator returned fewer answers than asked
                continue
            response, rendered = answered[inputs[record.id]]
            done[record.id] = _make_sample(benchmark, record, response, path.parent, plan.keys[record.id], rendered)
            lines[record.id] = sample_line(done[record.id])
        atomic_write_text(path, "".join(lines[r.id] for r in records if r.id in lines))
        if task is not None:
            progress.update(task, advance=len(chunk))
    return [done[r.id] for r in records]


def _merge_parts(parts: list[Path], records: Sequence[Record], path: Path) -> list[dict]:
    by_id = {}
    for part in parts:
        for sample in read_samples(part):
            sample.pop("_line", None)
            by_id[sample["id"]] = sample
    missing = [r.id for r in records if r.id not in by_id]
    if missing:
        raise MmbenchError(f"{path.parent.name}: {len(missing)} samples missing after gathering the shards")
    samples = [by_id[r.id] for r in records]
    write_samples(path, samples)
    return samples


JudgeStep = Callable[[Benchmark, list[dict], Path], tuple[list[dict], dict]]


def _identity(judge_step: JudgeStep | None, benchmark: Benchmark) -> dict | None:
    identity = getattr(judge_step, "identity", None)
    return identity(benchmark) if callable(identity) and benchmark.judged else None


def plan_all(generator: Generator, benchmarks: Sequence[Benchmark], out: Path, settings: EvalSettings,
             judge_step: JudgeStep | None = None, dist: Distributed | None = None) -> list[Plan]:
    """Plan every benchmark; stored work of another provenance stops here, before anything runs
    — or, with `settings.overwrite`, is removed (by the main process) and planned again."""
    dist = dist or Distributed()
    plans = [plan_benchmark(generator, b, out, settings, _identity(judge_step, b)) for b in benchmarks]
    conflicts = [p for p in plans if p.conflict]
    if conflicts and not settings.overwrite:
        raise Conflict(f"{conflicts[0].conflict}; use --overwrite, --name or another --out"
                       + (f" ({len(conflicts) - 1} more benchmarks differ)" if len(conflicts) > 1 else ""))
    if conflicts:
        if dist.main:
            for plan in conflicts:
                shutil.rmtree(plan.folder, ignore_errors=True)
        dist.barrier()
        plans = [plan_benchmark(generator, p.benchmark, out, settings, _identity(judge_step, p.benchmark))
                 if p.conflict else p for p in plans]
    return plans


def run_plan(generator: Generator, plan: Plan, settings: EvalSettings, judge_step: JudgeStep | None = None,
             dist: Distributed | None = None, progress=None) -> dict | None:
    """Carry out one benchmark's plan and return its results (None on non-main processes)."""
    dist = dist or Distributed()
    benchmark, folder, records = plan.benchmark, plan.folder, plan.records
    results_path, samples_path = folder / "results.json", folder / "samples.jsonl"
    if plan.action == "reuse":
        return read_json(results_path) if dist.main else None
    if dist.size == 1:
        samples = generate_samples(generator, plan, records, samples_path, settings, progress)
    else:
        shard = records[dist.rank::dist.size]
        part = folder / f"samples.part{dist.rank}-of-{dist.size}.jsonl"
        generate_samples(generator, plan, shard, part, settings, progress if dist.main else None)
        dist.barrier()
        if not dist.main:
            dist.barrier()
            return None
        parts = [folder / f"samples.part{r}-of-{dist.size}.jsonl" for r in range(dist.size)]
        samples = _merge_parts(parts, records, samples_path)
        for p in parts:
            p.unlink(missing_ok=True)
    config = {"fingerprint": settings.fingerprint(benchmark), "provenance": plan.results_key,
              "model": generator.name, "batch_size": settings.batch_size, **settings.extra}
    if benchmark.judged:
        if judge_step is None:
            raise MmbenchError(f"{benchmark.name} needs a judge but none is configured")
        samples, judge_info = judge_step(benchmark, samples, samples_path)
        config["judge"] = judge_info
    per_sample, metrics = score_samples(benchmark, samples, parse=settings.parse)
    results = build_results(benchmark, per_sample, metrics, config)
    atomic_write_json(results_path, results)
    if dist.size > 1:
        dist.barrier()
    return results


def evaluate_benchmark(generator: Generator, benchmark: Benchmark, out: Path, settings: EvalSettings,
                       judge_step: JudgeStep | None = None, dist: Distributed | None = None,
                       progress=None) -> dict | None:
    """Plan and run one benchmark end to end (None on non-main processes)."""
    plan = plan_all(generator, [benchmark], out, settings, judge_step, dist)[0]
    return run_plan(generator, plan, settings, judge_step, dist, progress)


def evaluate(generator: Generator, benchmarks: Sequence[Benchmark], out: Path, settings: EvalSettings,
             judge_step: JudgeStep | None = None, dist: Distributed | None = None,
             show_progress: bool = True, plans: list[Plan] | None = None) -> dict[str, dict]:
    """All benchmarks for one model; returns {benchmark: results} on the main process."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    dist = dist or Distributed()
    plans = plans if plans is not None else plan_all(generator, benchmarks, out, settings, judge_step, dist)
    if dist.size > 1 and dist.main:
        print(f"mmbench eval: records sharded over {dist.size} processes", flush=True)
    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    all_results: dict[str, dict] = {}
    with Progress(*columns, disable=not (show_progress and dist.main), transient=False) as progress:
        for plan in plans:
            results = run_plan(generator, plan, settings, judge_step, dist, progress)
            if results is not None:
                all_results[plan.benchmark.name] = results
    return all_results
