"""The eval runner: records -> model responses -> judge verdicts -> scores -> run files.

Resumable at two levels: a benchmark whose `results.json` matches the current settings is
skipped, and a partly generated benchmark continues from its `samples.jsonl`, which is
rewritten atomically after every chunk of generations.  Under `accelerate launch` each process
generates a shard of the records into its own part file; the main process merges them in
record order, so the result equals a single-process run.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from mmbench.benchmarks import Benchmark, Record, load_records
from mmbench.errors import MmbenchError
from mmbench.harness.generation import GenerationRequest, Generator
from mmbench.harness.runfiles import atomic_write_json, read_samples, run_dir, write_samples
from mmbench.harness.scoring import build_results, score_samples


@dataclass
class EvalSettings:
    data: str | None = None  # "world", "hub", a hub id, or a folder
    limit: int | None = None
    batch_size: int = 8
    strict_pope: bool = False
    chunk: int = 64  # generations between two samples-file rewrites
    max_new_tokens: int | None = None  # cap on every benchmark's answer length (small models, smoke runs)
    extra: dict = field(default_factory=dict)  # recorded in results.config (judge, engine, ...)

    def fingerprint(self, benchmark: Benchmark) -> dict:
        """What must match for a finished benchmark to be reused on a rerun."""
        return {"data": self.data, "limit": self.limit, "version": benchmark.version,
                "parse": "strict" if self.strict_pope else "official", "max_new_tokens": self.max_new_tokens}

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


def _make_sample(benchmark: Benchmark, record: Record, response: str, folder: Path) -> dict:
    sample = {"benchmark": benchmark.name, "id": record.id, "prompt": record.prompt, "response": response,
              "reference": record.reference}
    if benchmark.judge is not None and benchmark.judge.vision:
        sample["image"] = _sample_image_field(record, folder)
    return sample


def generate_samples(generator: Generator, benchmark: Benchmark, records: Sequence[Record], path: Path,
                     settings: EvalSettings, progress=None) -> list[dict]:
    """Generate what `path` does not hold yet, rewriting it after every chunk; return all samples."""
    done = {s["id"]: s for s in read_samples(path)} if path.exists() else {}
    for s in done.values():
        s.pop("_line", None)
    todo = [r for r in records if r.id not in done]
    task = progress.add_task(f"{benchmark.name}", total=len(records), completed=len(records) - len(todo)) \
        if progress is not None else None
    for start in range(0, len(todo), settings.chunk):
        chunk = todo[start:start + settings.chunk]
        requests = [GenerationRequest(prompt=r.prompt, image=r.image) for r in chunk]
        responses = generator.generate(requests, settings.generation(benchmark), batch_size=settings.batch_size)
        for record, response in zip(chunk, responses):
            done[record.id] = _make_sample(benchmark, record, response, path.parent)
        write_samples(path, [done[r.id] for r in records if r.id in done])
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


def evaluate_benchmark(generator: Generator, benchmark: Benchmark, out: Path, settings: EvalSettings,
                       judge_step: JudgeStep | None = None, dist: Distributed | None = None,
                       progress=None) -> dict | None:
    """Run one benchmark end to end and return its results (None on non-main processes)."""
    dist = dist or Distributed()
    folder = run_dir(out, generator.name, benchmark.name)
    results_path, samples_path = folder / "results.json", folder / "samples.jsonl"
    fingerprint = settings.fingerprint(benchmark)
    if results_path.exists():
        previous = json.loads(results_path.read_text())
        if previous.get("config", {}).get("fingerprint") == fingerprint:
            return previous if dist.main else None
    records = load_records(benchmark, settings.data, limit=settings.limit)
    if dist.size == 1:
        samples = generate_samples(generator, benchmark, records, samples_path, settings, progress)
    else:
        shard = records[dist.rank::dist.size]
        part = folder / f"samples.part{dist.rank}-of-{dist.size}.jsonl"
        generate_samples(generator, benchmark, shard, part, settings, progress if dist.main else None)
        dist.barrier()
        if not dist.main:
            dist.barrier()
            return None
        parts = [folder / f"samples.part{r}-of-{dist.size}.jsonl" for r in range(dist.size)]
        samples = _merge_parts(parts, records, samples_path)
        for p in parts:
            p.unlink(missing_ok=True)
    config = {"fingerprint": fingerprint, "model": generator.name, "batch_size": settings.batch_size,
              **settings.extra}
    if benchmark.judged:
        if judge_step is None:
            raise MmbenchError(f"{benchmark.name} needs a judge but none is configured")
        samples, judge_info = judge_step(benchmark, samples, samples_path)
        config["judge"] = judge_info
    per_sample, metrics = score_samples(benchmark, samples, strict=settings.strict_pope)
    results = build_results(benchmark, per_sample, metrics, config)
    atomic_write_json(results_path, results)
    if dist.size > 1:
        dist.barrier()
    return results


def evaluate(generator: Generator, benchmarks: Sequence[Benchmark], out: Path, settings: EvalSettings,
             judge_step: JudgeStep | None = None, dist: Distributed | None = None,
             show_progress: bool = True) -> dict[str, dict]:
    """All benchmarks for one model; returns {benchmark: results} on the main process."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    dist = dist or Distributed()
    if dist.size > 1 and dist.main:
        print(f"mmbench eval: records sharded over {dist.size} processes", flush=True)
    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    all_results: dict[str, dict] = {}
    with Progress(*columns, disable=not (show_progress and dist.main), transient=False) as progress:
        for benchmark in benchmarks:
            results = evaluate_benchmark(generator, benchmark, out, settings, judge_step, dist, progress)
            if results is not None:
                all_results[benchmark.name] = results
    return all_results

