"""What an ablation grid will cost (`mmbench ablate … --dry-run`), from a short calibration.

The base model is loaded once on the device the grid would use, and a few pieces of the real
work are timed with the grid's own settings: generation of a batch of records of every selected
benchmark (their prompts and answer lengths, the eval batch size), BDHS negatives for a handful
of rows, reference log-probs and a few optimizer steps of the grid's trainer at its batch size
(one representative point per reference mode: live, or not loaded because everything is cached).
Everything measured is then extrapolated to the work the plan says is left; reused work counts
as zero.  Nothing is saved: calibration files live in a temporary folder that is removed, and the
shared caches of the grid are only read (the reference log-prob database through a copy).

Start-up and planning are measured on this very process (the real run does the same).  Not
timed: report writing, checkpoint writing, judges and an annotator's API (an API's speed is not the
model's; a dry run calls none), and intermediate training-state saves.  The calibration itself is
in mmbench/trainers/calibrate.py."""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmbench.trainers.calibrate import (
    STEPS,
    FirstWins,
    clock,
    free_memory,
    measure_bdhs,
    measure_eval,
    measure_reference,
    measure_steps,
    pending_precompute,
    used_rows,
)
from mmbench.trainers.config import TrainConfig


@dataclass
class PointWork:
    """One grid point as the plan sees it."""

    name: str
    config: TrainConfig
    steps: int  # optimizer steps still to run (0: the checkpoint is reused)
    eval_todo: dict[str, int | None]  # benchmark -> answers still to generate (None: all)
    live: bool  # the reference model is live (something is sampled during training)


@dataclass
class GridWork:
    precompute: TrainConfig  # the configuration the shared precompute runs with
    bdhs: bool  # the grid needs offline BDHS negatives
    base_eval: dict[str, int | None]
    points: list[PointWork]
    eval_options: dict  # model, data, suite, limit, batch_size, max_new_tokens (as EvalRequest)


@dataclass
class Line:
    phase: str
    count: float
    unit: str
    per_unit: float  # measured seconds per unit
    note: str = ""

    @property
    def seconds(self) -> float:
        return self.count * self.per_unit


@dataclass
class Estimate:
    lines: list[Line]
    benchmarks: list[tuple[str, int, int, float, bool]]  # name, records, measured, s/sample, judged
    device: str
    measured: str  # what the calibration measured, in words
    calibration_s: float


def _representatives(points: list[PointWork]) -> dict[bool, PointWork]:
    """One point per reference mode among those that train: the middle one of the grid."""
    out = {}
    for live in (False, True):
        group = [p for p in points if p.steps and p.live == live]
        if group:
            out[live] = group[(len(group) - 1) // 2]
    return out


def estimate_grid(work: GridWork, benchmarks) -> Estimate:
    """Calibrate on the base and the device, then extrapolate to the work the plan leaves."""
    from mmbench.harness.judge_pairwise import OpenAIPairwiseAnnotator
    from mmbench.harness.model import load_model
    from mmbench.trainers.registry import get_trainer
    from mmbench.trainers.setup import make_annotator, needs

    began, startup_s = time.perf_counter(), _since_start()
    pre = copy.deepcopy(work.precompute)
    trainer = get_trainer(pre.trainer)
    start = time.perf_counter()
    used, resolved = used_rows(trainer, pre)
    data_s = time.perf_counter() - start
    fingerprint = resolved["base_fingerprint"]
    for _ in (1, 2):
        start = clock()
        adapter = load_model(pre.base)
        load_s = clock() - start
        if load_s >= 10:  # a quick first load is mostly one-time imports: time a second one
            break
    evals = [("base", work.base_eval)] + [(p.name, p.eval_todo) for p in work.points]

    def todo(plan: dict, name: str, records: int) -> int:
        value = plan.get(name, plan.get("(all)"))
        return records if value is None else value

    representatives, untimed = _representatives(work.points), ""
    offline = work.bdhs and not getattr(pre.options, "online_bdhs", False)
    scratch = Path(tempfile.mkdtemp(prefix="mmbench-dry-run-"))
    (scratch / "cache").mkdir()
    try:
        rates, record_loads = measure_eval(adapter, [b for b in benchmarks if any(todo(plan, b.name, 1)
                                                                                  for _, plan in evals)], work.eval_options)
        rates.update({b.name: (0, 0, 0.0) for b in benchmarks if b.name not in rates})
        todo_bdhs, todo_ref, stored = pending_precompute(adapter, pre, used, fingerprint, work.bdhs, scratch)
        rows = used[:pre.batch_size]  # the rows of the measured steps (each step takes all of them)
        embed_s, bdhs_s, made = 0.0, 0.0, []
        if offline and todo_bdhs:
            embed_s, bdhs_s, made = measure_bdhs(adapter, [e for e in used if e.id not in stored], pre)
        # A row without a negative of its own borrows a measured one (same shape; timing only).
        pool, own = made or list(stored.values()), {n.id: n for n in [*stored.values(), *made]}
        negatives = {e.id: own.get(e.id) or pool[i % len(pool)] for i, e in enumerate(rows)} if offline else {}
        ref_s = measure_reference(adapter, pre, rows, negatives, fingerprint, scratch / "cache") \
            if todo_ref or representatives else 0.0
        steps: dict[bool, tuple[float, float, bool]] = {}
        for live, point in representatives.items():
            config = copy.deepcopy(point.config)
            resolved = used_rows(trainer, copy.deepcopy(config))[1] if live else resolved
            annotator = make_annotator(config, resolved["data"]) if needs(trainer, "annotator", config) else None
            if isinstance(annotator, OpenAIPairwiseAnnotator):  # a dry run calls no paid service
                annotator, untimed = FirstWins(), "the annotator's API is not called or timed"
            steps[live] = measure_steps(adapter, config, rows, negatives, fingerprint, scratch,
                                        prompts=resolved["prompts"], annotator=annotator)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        del adapter
        free_memory()
    lines = [Line("start-up and plan", 1, "run", startup_s, "measured on this process")] if startup_s else []
    lines += [Line("precompute: set-up (data, model" + (", embedder" if todo_bdhs else "") + ")", 1, "run",
                  data_s + load_s + (embed_s if todo_bdhs else 0.0))]
    if work.bdhs:
        lines.append(Line("precompute: offline BDHS negatives", todo_bdhs, "row", bdhs_s,
                          f"{len(made)} rows measured" if todo_bdhs else "all stored" if offline
                          else "online BDHS: sampled in the training steps"))
    lines.append(Line("precompute: reference log-probs", todo_ref, "row", ref_s,
                      f"{len(rows)} rows measured" if todo_ref else "all cached"))
    for point in work.points:
        measured = steps.get(point.live)
        note = "checkpoint reused" if not point.steps else \
            ("reference live" if measured[2] else "reference not loaded") + \
            f"; measured at {representatives[point.live].name}" + (f"; {untimed}" if point.live and untimed else "") + \
            (f"; {point.steps} of {point.config.max_steps} steps left" if point.steps < point.config.max_steps else "")
        lines.append(Line(f"train {point.name}", point.steps, "step", measured[0] if measured else 0.0, note))
    trained = [p for p in work.points if p.steps]
    if trained:
        setup = sum(steps[p.live][1] for p in trained) / len(trained)
        lines.append(Line("train: set-up (data, model, run start)", len(trained), "run", data_s + load_s + setup,
                          "checkpoint writing not timed"))
    for name, plan in evals:
        count = sum(todo(plan, b.name, rates[b.name][0]) for b in benchmarks)
        seconds = sum(todo(plan, b.name, rates[b.name][0]) * rates[b.name][2] for b in benchmarks)
        judged = [b.name for b in benchmarks if b.judged and todo(plan, b.name, rates[b.name][0])]
        note = f"judge not timed ({', '.join(judged)})" if judged else "" if count else "all answers stored"
        lines.append(Line(f"eval {name}", count, "answer", seconds / count if count else 0.0, note))
    lines.append(Line("eval: set-up (model, records)", len(evals), "run", load_s + sum(record_loads.values())))
    table = [(b.name, rates[b.name][0], rates[b.name][1], rates[b.name][2], b.judged) for b in benchmarks]
    batch = work.eval_options["batch_size"]
    parts = [f"up to {max(r[2] for r in table)} answers per benchmark at eval batch {batch}"] \
        if any(r[2] for r in table) else []
    parts += [f"{len(made)} BDHS negatives"] if made else []
    parts += [f"reference log-probs of {len(rows)} rows"] if ref_s else []
    parts += [f"{STEPS - 1} optimizer steps (after 1 warm-up) of {p.name} at batch {p.config.batch_size}"
              for p in representatives.values()]
    return Estimate(lines, table, _device_name(), "; ".join(parts) or "nothing left to measure (all work is stored)",
                    time.perf_counter() - began)


def _since_start() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere)."""
    import os

    try:
        started = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return float(Path("/proc/uptime").read_text().split()[0]) - started / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _device_name() -> str:
    import os

    import torch

    return f"{torch.cuda.get_device_name(0)} (cuda)" if torch.cuda.is_available() else \
        f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def _duration(seconds: float) -> str:
    return ("0" if not seconds else f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s" if seconds < 120
            else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h")


def print_estimate(estimate: Estimate, console) -> None:
    from rich.table import Table

    table = Table(title="cost estimate (extrapolated from the calibration below, not measured end to end)")
    for column, justify in (("phase", "left"), ("count", "right"), ("measured per unit", "right"),
                            ("estimate", "right"), ("", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    for line in estimate.lines:
        count = f"{line.count:g} {line.unit}{'s' if line.count != 1 else ''}"
        per = _duration(line.per_unit) if line.per_unit else "—"
        table.add_row(line.phase, count, per, _duration(line.seconds), line.note)
    table.add_section()
    table.add_row("total", "", "", _duration(sum(line.seconds for line in estimate.lines)), "")
    console.print(table)
    rates = Table(title="measured generation per benchmark")
    for column in ("benchmark", "records", "measured", "per answer", "answers/s", "judge"):
        rates.add_column(column, justify="left" if column in ("benchmark", "judge") else "right")
    for name, records, measured, per, judged in estimate.benchmarks:
        rates.add_row(name, str(records) if measured else "—", str(measured) if measured else "— (nothing to generate)",
                      _duration(per) if measured else "—", f"{1 / per:.1f}" if per else "—",
                      "not timed" if judged else "—")
    console.print(rates)
    console.print(f"calibration on {estimate.device}, {estimate.calibration_s:.0f} s: {estimate.measured}. "
                  "Every estimate is an extrapolation from these few measured answers, rows and steps "
                  "(expect ±2×; on a shared machine more); stored and reused work counts as zero; "
                  "checkpoint writing, judges and reports are not timed.")
