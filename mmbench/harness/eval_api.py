"""`mmbench eval` as a function: resolve the model, the data and the judges, run the eval runner,
and describe the model in `model.json` for reports.  Ablations call the same function."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from mmbench.benchmarks import Benchmark
from mmbench.errors import MmbenchError
from mmbench.harness.evaluate import Distributed, EvalSettings, evaluate, plan_all
from mmbench.harness.runfiles import atomic_write_json, write_samples
from mmbench.registry import Registry

# How answers are generated: mmbench's own engine, or lmms-eval's (its own venv, mmbench scoring).
ENGINES: Registry = Registry("engine", builtins={
    "mmbench": "mmbench.harness.eval_api:run_eval",
    "lmms-eval": "mmbench.harness.lmms:run_lmms_eval",
})


@dataclass
class EvalRequest:
    model: str | None = None  # None: the suite's base (the shipped world base by default)
    benchmarks: Sequence[Benchmark] = ()
    data: str | None = None  # a suite name ("world", "hub"), a hub id or a folder; None: the suite's
    out: Path = Path("runs")
    limit: int | None = None
    batch_size: int = 16
    max_new_tokens: int | None = None
    strict: bool = False
    name: str | None = None  # run folder name (default: the model folder's name)
    meta: dict = field(default_factory=dict)  # knob/value/seed for model.json
    judge: object | None = None  # a JudgeConfig; None: the suite's judges, else the defaults
    judge_explicit: bool = False  # the user named a judge model or URL
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    show_progress: bool = True
    distributed: bool = True  # False: this process alone, even under a multi-process launcher
    engine: str = "mmbench"  # a name in ENGINES: "mmbench" or "lmms-eval" (mmbench/harness/lmms.py)
    suite: object | None = None  # a suite name, file or object (mmbench/suites); None: detected
    overwrite: bool = False  # replace stored work of another provenance instead of refusing
    why: bool = False  # only plan: say what would be reused or recomputed, and why


def resolve_suite(request: EvalRequest, model_path: Path | None):
    """The suite that supplies data and judges: --suite; else the one `--data` names or claims;
    else the one that claims the model; else the default suite (no model) or the hub."""
    from mmbench.suites import SUITES, claimed_suite, get_suite

    if request.suite is not None:
        return request.suite if not isinstance(request.suite, (str, Path)) else get_suite(request.suite)
    if request.data is not None and request.data in SUITES:
        return SUITES.get(request.data)
    if model_path is None:
        return claimed_suite(request.data) or get_suite(None)
    return claimed_suite(request.data, model_path if model_path.exists() else None) or SUITES.get("hub")


def resolve_data(request: EvalRequest, suite) -> str | dict | None:
    """One source for every benchmark (`--data` a folder or hub id) or the suite's per benchmark;
    a single string when all benchmarks share it (how model.json and results record it)."""
    from mmbench.suites import SUITES

    if request.data is not None and request.data not in SUITES:
        return request.data
    sources = {b.name: suite.benchmark_data(b) for b in request.benchmarks}
    values = set(sources.values())
    return values.pop() if len(values) == 1 else sources


@contextmanager
def _gc_paused():
    """Python's cyclic GC off while torch and transformers are imported and the model is loaded,
    and what they created frozen afterwards (`gc.freeze`: later collections skip it).

    The imports create ~400k objects that live as long as the process; meanwhile the GC makes ~6
    full passes over that growing heap, and afterwards rescans it when it promotes it, finding
    nearly nothing (~0.9 s of a 19 s world POPE eval on 2 CPU cores; tensors are freed by
    reference counting either way).  `run_eval` unfreezes when it returns, so nothing stays
    uncollectable in a process that evaluates several checkpoints."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


_EXIT_FREEZE = False


class _Named:
    """A generator under another run-folder name (None: not loaded yet, for planning)."""

    def __init__(self, generator, name: str):
        self._generator, self.name = generator, name

    def generate(self, *args, **kwargs):
        return self._generator.generate(*args, **kwargs)

    def render_prompt(self, request):
        return self._generator.render_prompt(request)


def check_run_name(name: str) -> str:
    """A run name is one folder inside --out: no separators, no '..', nothing hidden."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise MmbenchError(f"--name {name!r} must be a plain folder name (no '/', '\\', or leading '.')")
    return name


def check_request(request: EvalRequest) -> None:
    """Option ranges and the output folder, before anything is loaded or written."""
    from mmbench.harness.runfiles import check_writable

    for option, value in (("--limit", request.limit), ("--max-new-tokens", request.max_new_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise MmbenchError(f"{option} must be a whole number of at least 1, got {value!r}")
    if isinstance(request.batch_size, bool) or not isinstance(request.batch_size, int) or request.batch_size < 1:
        raise MmbenchError(f"--batch-size must be a whole number of at least 1, got {request.batch_size!r}")
    check_writable(Path(request.out))


def check_local_model(spec: str, trust_remote_code: bool = False) -> None:
    """A local checkpoint folder is read (config.json, architecture, weights present); a path
    that exists nowhere and is no hub id is refused — all before a judge or the hub is asked."""
    from mmbench.harness.checkpoint import HUB_ID, check_local_files

    path = Path(spec).expanduser()
    if path.is_dir():  # its architecture is checked (transformers imported) after the data and judge checks
        check_local_files(path, spec, require_weights=False)
    elif not HUB_ID.match(spec) or spec.startswith((".", "~", "/")) or spec.count("/") > 1:
        raise MmbenchError(f"model folder not found: {spec}")
    elif "/" in spec and path.parent.is_dir():  # `checkpoints/run1` beside a real `checkpoints/`
        import difflib

        close = difflib.get_close_matches(path.name, [p.name for p in path.parent.iterdir() if p.is_dir()], n=1)
        hint = f" — did you mean {str(path.parent / close[0])!r}?" if close else ""
        raise MmbenchError(f"model folder not found: {spec} ({path.parent} has no {path.name!r}){hint}")


def default_run_name(spec: str) -> str:
    path = Path(spec).expanduser()
    return path.resolve().name if path.exists() else spec.replace("/", "__")


def check_model_json(folder: Path, fingerprint: str) -> dict:
    """The run folder must hold this checkpoint's answers (or nothing); returns its model.json."""
    from mmbench.harness.provenance import Conflict, read_json

    meta = read_json(folder / "model.json")
    stored = [*folder.glob("*/samples.jsonl"), *folder.glob("*/results.json")] if folder.exists() else []
    old = (meta or {}).get("checkpoint_fingerprint")
    if old == fingerprint or not stored:
        return meta if old == fingerprint else {}
    why = "weights differ" if old else "its checkpoint is not recorded"
    raise Conflict(f"{folder} holds answers from another checkpoint ({why}); use --out, --name, or --overwrite")


def make_judge_step(request: EvalRequest, suite):
    """The eval runner's judge step (judge samples with no verdict yet, then save them) and its
    `JudgePlan`: the suite's judges, unless the user named one."""
    from mmbench.harness.judge_runner import JudgePlan

    plan = JudgePlan(request.judge, suite_judge=suite.judge, explicit=request.judge_explicit)
    plan.check(request.benchmarks, reach=False)  # a prompt that hides the answer grades nothing

    def step(benchmark: Benchmark, samples: list[dict], samples_path: Path):
        before = sum("judge" in s for s in samples)
        samples, summary = plan.run(benchmark, samples, image_root=samples_path.parent)
        if sum("judge" in s for s in samples) != before:
            write_samples(samples_path, samples)
        return samples, summary

    step.identity = plan.identity
    return step, plan


def run_eval(request: EvalRequest) -> dict[str, dict]:
    import atexit
    import gc

    if request.engine != "mmbench":
        return ENGINES.get(request.engine)(request)
    global _EXIT_FREEZE
    # At exit the interpreter's last collections walk every object torch and transformers made
    # (1.1 s measured on world POPE); frozen at exit they are skipped.  Only an exiting process
    # is affected, after its files are written and closed.
    if not _EXIT_FREEZE:
        atexit.register(gc.freeze)
        _EXIT_FREEZE = True
    try:
        return _run_mmbench_engine(request)
    finally:
        gc.unfreeze()  # undo _gc_paused's freeze: the model may be collected once dropped


def _run_mmbench_engine(request: EvalRequest) -> dict[str, dict]:
    from mmbench.harness.checkpoint import resolve_device
    from mmbench.harness.model import load_model
    from mmbench.harness.provenance import Conflict, checkpoint_fingerprint, mmbench_version

    if request.model is None:
        suite = resolve_suite(request, None)
        model_spec = suite.base_model()
        model_path: Path | None = Path(model_spec).expanduser()
    else:
        model_spec = request.model
        model_path = Path(request.model).expanduser()
    benchmarks = list(request.benchmarks)
    if not benchmarks:
        raise MmbenchError("no benchmark selected")
    name = check_run_name(request.name or ("base" if request.model is None else default_run_name(model_spec)))
    check_request(request)
    if model_path is not None and model_path.exists() and not model_path.is_dir():
        raise MmbenchError(f"{model_spec} is a file; give the model folder")
    check_local_model(model_spec, request.trust_remote_code)  # cheap local checks before any network
    suite = resolve_suite(request, None if request.model is None else model_path)
    data = resolve_data(request, suite)
    judge_step, judges = make_judge_step(request, suite)
    if not request.why:  # fail before any generation when a judged benchmark cannot be judged
        judges.check(benchmarks)
    if model_path is not None and model_path.is_dir():  # an image-text-to-text model, before any data loads
        from mmbench.harness.checkpoint import check_architecture, check_local_files

        with _gc_paused():  # imports transformers
            check_architecture(check_local_files(model_path, model_spec, require_weights=False), model_spec,
                               request.trust_remote_code)
        check_local_files(model_path, model_spec)
    # Provenance first (cheap: file hashes are cached), so a mismatch costs no model load.
    fingerprint = checkpoint_fingerprint(model_spec)
    device = resolve_device(request.device)
    settings = EvalSettings(data=data, limit=request.limit, batch_size=request.batch_size,
                            strict=request.strict, max_new_tokens=request.max_new_tokens,
                            model_key={"checkpoint": fingerprint, "dtype": request.dtype,
                                       "device": device.split(":")[0]},
                            overwrite=request.overwrite)
    dist = Distributed.detect() if request.distributed else Distributed()
    folder = Path(request.out) / name
    if request.why:
        return {"plans": _why(folder, fingerprint, _Named(None, name), benchmarks, settings, judge_step)}
    try:
        old_meta = check_model_json(folder, fingerprint)
    except Conflict:
        if not request.overwrite:
            raise
        if dist.main:
            shutil.rmtree(folder)
        old_meta = {}
    if dist.main:  # a writer killed mid-write leaves `.<file>.*.tmp` behind; nothing writes yet
        from mmbench.harness.runfiles import sweep_stale_tmp

        sweep_stale_tmp(folder)
    dist.barrier()
    plans = plan_all(_Named(None, name), benchmarks, Path(request.out), settings, judge_step, dist)
    with _gc_paused():
        model = load_model(model_spec, dtype=request.dtype, device=request.device,
                           trust_remote_code=request.trust_remote_code)
    generator = _Named(model, name)
    if dist.main:
        data_keys = {**old_meta.get("data_fingerprints", {}),
                     **{p.benchmark.name: p.results_key["inputs"] for p in plans}}
        meta = {"model": name, "checkpoint": model_spec, "checkpoint_fingerprint": fingerprint,
                "engine": "mmbench", "mmbench_version": mmbench_version(), "data": data,
                "data_fingerprints": data_keys, "knob": "base" if request.model is None else "", **request.meta}
        atomic_write_json(folder / "model.json", meta)
    return evaluate(generator, benchmarks, Path(request.out), settings, judge_step, dist,
                    show_progress=request.show_progress, plans=plans)


def _why(folder: Path, fingerprint: str, generator, benchmarks, settings: EvalSettings, judge_step) -> list[dict]:
    """`--why`: the plan of every benchmark, touching nothing."""
    from mmbench.harness.evaluate import plan_benchmark
    from mmbench.harness.provenance import Conflict

    rows = []
    try:
        check_model_json(folder, fingerprint)
    except Conflict as exc:
        if not settings.overwrite:
            return [{"benchmark": "(all)", "action": "refuse", "todo": None, "reason": str(exc)}]
        return [{"benchmark": b.name, "action": "recompute", "todo": None, "reason": f"--overwrite: {exc}"}
                for b in benchmarks]
    for benchmark in benchmarks:
        identity = judge_step.identity(benchmark) if benchmark.judged else None
        plan = plan_benchmark(generator, benchmark, Path(folder.parent), settings, identity)
        action = "refuse" if plan.conflict else plan.action
        reason = plan.conflict or plan.reason
        if plan.conflict and settings.overwrite:
            action, reason = "recompute", f"--overwrite: {plan.conflict}"
        rows.append({"benchmark": benchmark.name, "action": action, "todo": plan.todo, "reason": reason})
    return rows
