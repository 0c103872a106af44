"""`mmbench ablate <knob>`: train a checkpoint per grid point, evaluate each and the base on the
same benchmarks, and write the leaderboard and plot.  A knob is an option a trainer declares
ablatable (bdhs: gamma, mixed-dpo: p, or a plug-in's own; mmbench/trainers/registry.py).

Layout of the output folder:
  ablation.json                 the resolved configuration
  checkpoints/<knob>=<v>-seed<s>/   one checkpoint per point (`.partial` while training)
  runs/<model>/<benchmark>/     run files for the base and every point
  cache/                        shared precompute: offline BDHS negatives, reference log-probs
  leaderboard.md|csv, ablation_<knob>.png

Everything is resumable: finished points are skipped, a partly trained point resumes from its
last saved state, a partly done evaluation from its samples.  `--point K` runs one grid value so
that a scheduler (Slurm array) can spread the grid; shared precompute is done once under a lock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmbench.errors import MmbenchError

DATA_OPTIONS = ("data_format", "image_root", "subset", "subset_seed", "skip_bad_rows", "pairs")



@dataclass
class AblationConfig:
    knob: str = "gamma"
    values: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    seeds: list[int] = field(default_factory=lambda: [1])
    suite: str | None = None  # where defaults come from (mmbench/suites); None: detected, else world
    base: str | None = None  # None: the suite's base (the shipped world base)
    data: str | None = None  # preference JSONL; None: the world's set
    # Preference-source options (mmbench/trainers/sources), passed to every point's training when set.
    data_format: str | None = None
    image_root: str | None = None
    subset: int | None = None
    subset_seed: int | None = None
    skip_bad_rows: bool | None = None
    pairs: str | None = None
    eval_data: str | None = None  # None: the suite's data for every benchmark
    benchmarks: str = "all"
    max_steps: int = 60
    limit: int | None = None  # records per benchmark (per POPE split) in every evaluation
    batch_size: int = 32  # generation batch size
    max_new_tokens: int | None = None  # cap on answer length in every evaluation
    out: str = ""
    point: int | None = None
    train: dict = field(default_factory=dict)  # TrainConfig options (lr, beta, ...) and sections ({"bdhs": {...}})

    def validate(self) -> "AblationConfig":
        from mmbench.trainers.registry import get_knob

        get_knob(self.knob)  # unknown: one line with the closest knob
        if not self.values:
            raise MmbenchError("--values needs at least one value")
        if not self.seeds:
            raise MmbenchError("--seeds needs at least one seed")
        if len(set(self.values)) != len(self.values) or len(set(self.seeds)) != len(self.seeds):
            raise MmbenchError(f"--values and --seeds must not repeat, got {self.values} and {self.seeds}")
        if self.point is not None and not 0 <= self.point < len(self.values):
            raise MmbenchError(f"--point {self.point} is outside the grid (0..{len(self.values) - 1})")
        if self.max_steps < 1:
            raise MmbenchError("--max-steps must be at least 1")
        import math

        if any(not math.isfinite(v) for v in self.values):
            raise MmbenchError(f"--values must be finite numbers, got {self.values}")
        for option, value in (("--limit", self.limit), ("batch_size", self.batch_size),
                              ("max_new_tokens", self.max_new_tokens), ("--subset", self.subset)):
            if value is not None and value < 1:
                raise MmbenchError(f"{option} must be at least 1, got {value}")
        from mmbench.harness.runfiles import check_writable

        check_writable(self.folder)
        # Every point's training options, fully checked (types, ranges, the knob's value — its
        # trainer's own range check) now, not after the base evaluation and the shared precompute.
        for value in self.values:
            train_config(self, value, self.seeds[0])
        return self

    @property
    def folder(self) -> Path:
        return Path(self.out or f"ablations/{self.knob}")


def load_config_file(path: Path, knob: str | None = None) -> dict:
    """A TOML or YAML file whose keys are AblationConfig fields (`train` a table of TrainConfig
    options, with a section per trainer: `[train.bdhs]`), checked against their types here, so
    that a wrong value fails before any work."""
    from mmbench.errors import check_fields, read_table_file

    data = read_table_file(path)
    check_fields(AblationConfig, data, str(path))
    if "train" in data:  # (imports torch: only when the file has a [train] table)
        from mmbench.trainers.config import TrainConfig
        from mmbench.trainers.registry import get_knob

        trainer = get_knob(knob or data.get("knob", "gamma")).trainer
        TrainConfig.from_dict({**data["train"], "trainer": trainer}, str(path), "train.")
    return data


def resolve_config(knob: str, file: Path | None, overrides: dict) -> AblationConfig:
    """Defaults, then the config file, then the options given on the command line."""
    from mmbench.errors import check_fields

    data: dict = {"knob": knob}
    if file is not None:
        data.update(load_config_file(file, knob))
        data["knob"] = knob
    train = overrides.get("train")
    data.update({k: v for k, v in overrides.items() if v is not None and k != "train"})
    if train:  # training options from the command line (--set) win over the file's, key by key
        from mmbench.trainers.config import merge, sectioned
        from mmbench.trainers.registry import get_knob

        trainer = get_knob(knob).trainer
        layers = [sectioned({**layer, "trainer": trainer}, "ablate options", "train.")
                  for layer in (data.get("train") or {}, train)]
        data["train"] = {k: v for k, v in merge(*layers).items() if k != "trainer"}
    check_fields(AblationConfig, data, "ablate options")
    return AblationConfig(**data).validate()


def public_config(config: AblationConfig) -> dict:
    """The configuration as saved in ablation.json: credentials stripped from every URL."""
    from mmbench.harness.judge_client import public_url

    data = asdict(config)
    if data["train"].get("annotator_base_url"):
        data["train"] = {**data["train"], "annotator_base_url": public_url(data["train"]["annotator_base_url"])}
    return data


def point_name(knob: str, value: float, seed: int) -> str:
    return f"{knob}={value:g}-seed{seed}"


def grid(config: AblationConfig) -> list[tuple[float, int]]:
    values = config.values if config.point is None else [config.values[config.point]]
    return [(v, s) for v in values for s in config.seeds]


def point_options(config: AblationConfig, value: float, seed: int):
    """One point's training options (types checked, not yet validated): the knob's value goes
    into its trainer's section, e.g. {"bdhs": {"gamma": 0.25}}."""
    from mmbench.trainers.config import TrainConfig
    from mmbench.trainers.registry import get_knob

    knob = get_knob(config.knob)
    # A suite's own base may need training defaults of its own (the tiny world base moves at
    # learning rates a 7B LoRA run would never use); the user's values win.
    defaults = getattr(ablation_suite(config), "train_defaults", {}) if config.base is None else {}
    options = {**defaults, **config.train}
    options.update(trainer=knob.trainer, suite=config.suite, base=config.base, data=config.data, seed=seed,
                   max_steps=config.max_steps, out=str(config.folder / "checkpoints" / point_name(config.knob, value, seed)),
                   cache_dir=str(config.folder / "cache"))
    options.update({k: getattr(config, k) for k in DATA_OPTIONS if getattr(config, k) is not None})
    options[knob.trainer] = {**(options.get(knob.trainer) or {}), knob.option: value}
    # Every point trains on the same first rows — the ones max_steps × batch can reach — so the
    # shared precompute (BDHS negatives, reference log-probs) covers exactly what is used.
    options.setdefault("limit", config.max_steps * options.get("batch_size", TrainConfig.batch_size))
    return TrainConfig.from_dict(options)


def ablation_suite(config: AblationConfig):
    """The suite the grid's defaults come from: --suite, else the one that claims --data, else the default."""
    from mmbench.suites import claimed_suite, get_suite

    return get_suite(config.suite) if config.suite else (claimed_suite(config.data) or get_suite(None))


def train_config(config: AblationConfig, value: float, seed: int):
    return point_options(config, value, seed).validate()


def plan_grid(config: AblationConfig, benchmarks, overwrite: bool = False) -> list[dict]:
    """Per grid point (and the base): what would be reused, resumed or recomputed, and any stored
    work of another provenance — all before a model loads."""
    from mmbench.harness.eval_api import EvalRequest, run_eval
    from mmbench.trainers.registry import get_trainer
    from mmbench.trainers.setup import checkpoint_status, training_provenance

    def eval_rows(model: str | None, name: str) -> list[dict]:
        request = EvalRequest(model=model, benchmarks=benchmarks, data=config.eval_data, out=config.folder / "runs",
                              suite=config.suite, limit=config.limit, max_new_tokens=config.max_new_tokens, name=name,
                              overwrite=overwrite, why=True, distributed=False)
        return run_eval(request)["plans"]

    def summary(rows: list[dict]) -> tuple[str, str | None, dict]:
        """(status, conflict, answers to generate per benchmark: None for all)"""
        refused = [r for r in rows if r["action"] == "refuse"]
        reused = sum(r["action"] == "reuse" for r in rows)
        return (f"{reused}/{len(rows)} evaluated", (refused[0]["reason"] if refused else None),
                {r["benchmark"]: r["todo"] for r in rows})

    status, conflict, todo = summary(eval_rows(config.base, "base"))
    plans = [{"point": "base", "value": None, "seed": None, "train": "—", "eval": status, "conflict": conflict,
              "eval_todo": todo}]
    for index, value in enumerate(config.values):
        if config.point is not None and index != config.point:
            continue
        for seed in config.seeds:
            cfg = train_config(config, value, seed)
            key = training_provenance(get_trainer(cfg.trainer), cfg)["key"]
            train, conflict = checkpoint_status(Path(cfg.out), key)
            row = {"point": str(index), "value": value, "seed": seed, "train": train, "conflict": conflict,
                   "eval": "after training", "steps": cfg.max_steps, "eval_todo": {}}
            if train == "resume":
                from mmbench.trainers.loop import partial_dir

                step = json.loads((partial_dir(Path(cfg.out)) / "step.json").read_text())["step"]
                row["train"], row["steps"] = f"resume from step {step}", cfg.max_steps - step
            if train == "reuse":
                row["eval"], row["conflict"], row["eval_todo"] = summary(
                    eval_rows(cfg.out, point_name(config.knob, value, seed)))
                row["steps"] = 0
            elif conflict and overwrite:
                row["train"] = "retrain (--overwrite)"
            elif train == "train":
                row["train"] = "to run"
            plans.append(row)
    return plans


def print_plan(config: AblationConfig, benchmarks, plans: list[dict]) -> None:
    from rich.table import Table

    from mmbench.reports.console import console

    table = Table(title=f"ablation over {config.knob} — {config.folder}")
    for column in ("point", config.knob, "seed", "training", "evaluation", "stored work of another provenance"):
        table.add_column(column, overflow="fold")
    for row in plans:
        value = "—" if row["value"] is None else f"{row['value']:g}"
        table.add_row(row["point"], value, "—" if row["seed"] is None else str(row["seed"]), row["train"],
                      row["eval"], row["conflict"] or "")
    console.print(table)
    cache = config.folder / "cache"
    negatives = sorted(cache.glob("bdhs-*.jsonl")) if cache.exists() else []
    bdhs = ("BDHS negatives stored" if negatives else "BDHS negatives to compute") if _needs_bdhs(config) \
        else "no BDHS negatives needed"
    console.print(f"shared cache: {bdhs}; reference log-probs in {cache / 'reference-logps.sqlite'}; "
                  f"benchmarks: {', '.join(b.name for b in benchmarks)}")
    console.print(reference_plan(config))


def reference_plan(config: AblationConfig) -> str:
    """One line: which points train without a reference model (all their reference log-probs come
    from the shared precompute, so it is never built: no frozen copy, no adapters switched off)."""
    from mmbench.trainers.registry import get_knob, get_trainer

    trainer = get_trainer(get_knob(config.knob).trainer)
    samples = getattr(trainer, "samples_online", None)
    if samples is None:  # a plug-in that does not say: its step may sample, so assume a live reference
        return f"reference model: live at every point (trainer {trainer.name} does not declare `samples_online`)"
    reasons = {v: samples(point_options(config, v, config.seeds[0])) for v in config.values}
    online = [v for v, reason in reasons.items() if reason]
    if not online:
        return ("reference model: not loaded at any point — every reference log-prob comes from the shared "
                "precompute")
    free = [v for v in config.values if v not in online]
    why = reasons[online[0]]
    listed = ", ".join(f"{config.knob}={v:g}" for v in free) or "none"
    return (f"reference model: live where {why} are sampled during training "
            f"({', '.join(f'{config.knob}={v:g}' for v in online)}); not loaded at {listed}")


def _eval(config: AblationConfig, benchmarks, model: str | None, name: str, meta: dict,
          distributed: bool = True, overwrite: bool = False) -> None:
    from mmbench.harness.eval_api import EvalRequest, run_eval

    run_eval(EvalRequest(model=model, benchmarks=benchmarks, data=config.eval_data, out=config.folder / "runs",
                         suite=config.suite, limit=config.limit, batch_size=config.batch_size, max_new_tokens=config.max_new_tokens,
                         name=name, meta=meta, show_progress=True, distributed=distributed, overwrite=overwrite))


def precompute(config: AblationConfig, benchmarks, overwrite: bool = False) -> None:
    """Work every point shares, done once even when several workers start together: the first
    worker to take the lock does it (in its main process alone); the others then find it done."""
    from filelock import FileLock

    from mmbench.harness.evaluate import Distributed
    from mmbench.trainers.setup import precompute_shared

    dist = Distributed.detect()
    config.folder.mkdir(parents=True, exist_ok=True)
    if dist.main:
        with FileLock(str(config.folder / ".precompute.lock")):
            _eval(config, benchmarks, config.base, "base", {"knob": "base"}, distributed=False, overwrite=overwrite)
            # BDHS negatives only for a grid with a point that uses them (γ < 1); reference log-probs
            # for every point.  Both caches are keyed by content (base, options, rows), so a changed
            # grid misses them.
            precompute_shared(train_config(config, min(config.values), config.seeds[0]), bdhs=_needs_bdhs(config))
    dist.barrier()


def _needs_bdhs(config: AblationConfig) -> bool:
    from mmbench.trainers.registry import get_knob, get_trainer

    from mmbench.trainers.setup import needs

    trainer = get_trainer(get_knob(config.knob).trainer)
    return any(needs(trainer, "bdhs", point_options(config, v, config.seeds[0])) for v in config.values)


def grid_work(config: AblationConfig, plans: list[dict]):
    """The plan in the units a cost estimate prices (mmbench/trainers/cost.py)."""
    from mmbench.trainers.cost import GridWork, PointWork
    from mmbench.trainers.registry import get_knob, get_trainer

    samples = getattr(get_trainer(get_knob(config.knob).trainer), "samples_online", None)
    points = []
    for row in plans[1:]:
        cfg = train_config(config, row["value"], row["seed"])
        live = samples is None or bool(samples(cfg)) or cfg.live_reference
        points.append(PointWork(point_name(config.knob, row["value"], row["seed"]), cfg, row["steps"],
                                row["eval_todo"], live))
    return GridWork(train_config(config, min(config.values), config.seeds[0]), _needs_bdhs(config),
                    plans[0]["eval_todo"], points,
                    {"model": config.base, "data": config.eval_data, "suite": config.suite, "limit": config.limit,
                     "batch_size": config.batch_size, "max_new_tokens": config.max_new_tokens})


def run_ablation(config: AblationConfig, overwrite: bool = False, why: bool = False, dry_run: bool = False) -> dict:
    """Plan (refusing stored work of another provenance unless `overwrite`), precompute, train and
    evaluate every point, then report.  `why`: print the plan only.  `dry_run`: the plan and a cost
    estimate from a short calibration on the base and this device; nothing is written."""
    from mmbench.benchmarks import resolve_benchmarks
    from mmbench.harness.evaluate import Distributed
    from mmbench.harness.provenance import Conflict
    from mmbench.harness.runfiles import atomic_write_json
    from mmbench.reports.console import console
    from mmbench.trainers.registry import get_trainer

    benchmarks = resolve_benchmarks(config.benchmarks)
    main = Distributed.detect().main  # under accelerate launch: one plan, one report
    plans = plan_grid(config, benchmarks, overwrite)
    if main:
        print_plan(config, benchmarks, plans)
    if why and not dry_run:
        return {}
    conflicts = [p for p in plans if p["conflict"]]
    if conflicts and not overwrite:
        first = conflicts[0]
        where = "base" if first["point"] == "base" else point_name(config.knob, first["value"], first["seed"])
        raise Conflict(f"{where}: {first['conflict'].split('; use ')[0]}; use --overwrite or another --out")
    if dry_run:
        from mmbench.trainers.cost import estimate_grid, print_estimate

        if main:
            console.print("calibrating (the base model, on this device; nothing is written)...")
            print_estimate(estimate_grid(grid_work(config, plans), benchmarks), console)
        return {}
    config.folder.mkdir(parents=True, exist_ok=True)
    if main:
        name = "ablation.json" if config.point is None else f"ablation.point{config.point}.json"
        atomic_write_json(config.folder / name, public_config(config))
    precompute(config, benchmarks, overwrite)
    for value, seed in grid(config):
        name = point_name(config.knob, value, seed)
        cfg = train_config(config, value, seed)
        cfg.overwrite = overwrite
        trainer = get_trainer(cfg.trainer)
        trainer.setup(cfg)  # an identical finished checkpoint is reused, a partial one resumed
        if not getattr(trainer, "reused", False):
            console.print(f"[bold]training {name}[/bold]")
        trainer.train()
        checkpoint = trainer.save()
        _eval(config, benchmarks, str(checkpoint), name, {"knob": config.knob, "value": value, "seed": seed},
              overwrite=overwrite)
    if not main:
        return {}
    if config.point is not None:
        console.print(f"point {config.point} done; merge with `mmbench report {config.folder / 'runs'} "
                      f"--out {config.folder}` when every point has finished")
        return {}
    from mmbench.reports.leaderboard import write_report

    written = write_report([config.folder / "runs"], config.folder)
    console.print(written["markdown"].read_text().split("\n## ")[0])
    for kind, path in written.items():
        console.print(f"{kind}: {path}")
    return written
