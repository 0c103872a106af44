"""`mmbench eval` as a function: resolve the model, the data and the judges, run the eval runner,
and describe the model in `model.json` for reports.  Ablations call the same function."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from mmbench.benchmarks import Benchmark
from mmbench.errors import MmbenchError
from mmbench.harness.evaluate import Distributed, EvalSettings, evaluate, plan_all
from mmbench.harness.runfiles import atomic_write_json, write_samples


@dataclass
class EvalRequest:
    model: str | None = None  # None: the shipped world base
    benchmarks: Sequence[Benchmark] = ()
    data: str | None = None  # "world", "hub", a hub id or a folder; None: world for world models
    out: Path = Path("runs")
    limit: int | None = None
    batch_size: int = 16
    max_new_tokens: int | None = None
    strict_pope: bool = False
    name: str | None = None  # run folder name (default: the model folder's name)
    meta: dict = field(default_factory=dict)  # knob/value/seed for model.json
    judge: object | None = None  # a JudgeConfig; None: scene judge on world data, else defaults
    judge_explicit: bool = False  # the user named a judge model or URL
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    show_progress: bool = True
    distributed: bool = True  # False: this process alone, even under a multi-process launcher
    engine: str = "mmbench"  # or "lmms-eval" (mmbench/harness/lmms.py)
    overwrite: bool = False  # replace stored work of another provenance instead of refusing
    why: bool = False  # only plan: say what would be reused or recomputed, and why


def is_world_model(path: Path) -> bool:
    """The shipped base, or a checkpoint trained from it on world data."""
    from mmbench.world.paths import BASE_MODEL_DIR

    if path.resolve() == BASE_MODEL_DIR.resolve():
        return True
    config = path / "train_config.json"
    if config.exists():
        from mmbench.errors import read_text

        try:
            stored = json.loads(read_text(config))
        except json.JSONDecodeError as exc:
            raise MmbenchError(f"{config}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(stored, dict):
            raise MmbenchError(f"{config}: expected a JSON object")
        data = stored.get("data")
        return data is None or (Path(data).exists() and any((p / "world.json").exists() for p in Path(data).parents))
    return (path / "world_model.json").exists()


def resolve_data(request: EvalRequest, model_path: Path | None) -> str | None:
    """A data folder path, "hub" or a hub id; world data is built on demand."""
    data = request.data
    if data is None:
        data = "world" if model_path is None or (model_path.exists() and is_world_model(model_path)) else "hub"
    if data == "world":
        from mmbench.world.build import ensure_world

        return str(ensure_world())
    return data


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
    from mmbench.harness.model import _HUB_ID, _check_local_files

    path = Path(spec).expanduser()
    if path.is_dir():  # its architecture is checked (transformers imported) after the data and judge checks
        _check_local_files(path, spec, require_weights=False)
    elif not _HUB_ID.match(spec) or spec.startswith((".", "~", "/")) or spec.count("/") > 1:
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


def make_judge_step(request: EvalRequest, data: str | None):
    """The eval runner's judge step: judge samples that have no verdict yet, then save them."""
    from mmbench.harness.judge_client import JudgeConfig
    from mmbench.harness.judge_runner import judge_samples, judge_summary, make_judge, read_template

    world_root = Path(data) if data and (Path(data) / "world.json").exists() else None
    config = request.judge or JudgeConfig()
    use_scene = world_root is not None and not request.judge_explicit
    template = None if use_scene else read_template(config)
    if template is not None:  # before any generation: a prompt that hides the answer grades nothing
        from mmbench.harness.judge_runner import check_template_slots

        check_template_slots(template, [b for b in request.benchmarks if b.judged], str(config.prompt_file))

    def step(benchmark: Benchmark, samples: list[dict], samples_path: Path):
        if use_scene:
            from mmbench.world.scene_judge import SceneJudge

            judge = SceneJudge(world_root)
        else:
            judge = make_judge(benchmark, config)
        todo = [i for i, s in enumerate(samples) if "judge" not in s]
        if todo:
            judged = judge_samples(benchmark, [samples[i] for i in todo], judge, template, config.runs,
                                   image_root=samples_path.parent)
            for i, sample in zip(todo, judged):
                samples[i] = sample
            write_samples(samples_path, samples)
        return samples, judge_summary(benchmark, judge, template, config.runs)

    def identity(benchmark: Benchmark) -> dict:
        """Who judges: stored verdicts are reused only from the same judge, prompt and runs."""
        from mmbench.harness.judge_runner import prompt_version

        if use_scene:
            from mmbench.world.scene_judge import SceneJudge

            model = SceneJudge.model
        else:
            model = config.model or benchmark.judge.default_model
        return {"model": model, "prompt_version": prompt_version(benchmark.judge, template),
                "runs": config.runs or benchmark.judge.runs}

    step.identity = identity
    return step, use_scene


def run_eval(request: EvalRequest) -> dict[str, dict]:
    from mmbench.harness.judge_client import JudgeConfig
    from mmbench.harness.judge_runner import check_judge_ready
    from mmbench.harness.model import _resolve_device, load_model
    from mmbench.harness.provenance import Conflict, checkpoint_fingerprint, mmbench_version

    if request.engine != "mmbench":
        from mmbench.harness.lmms import ENGINES, run_lmms_eval

        if request.engine not in ENGINES:
            raise MmbenchError(f"unknown engine {request.engine!r}; choose one of {', '.join(ENGINES)}")
        return run_lmms_eval(request)
    if request.model is None:
        from mmbench.world.paths import shipped_base_model

        model_path: Path | None = shipped_base_model()
        model_spec = str(model_path)
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
    data = resolve_data(request, model_path)
    judge_step, use_scene = make_judge_step(request, data)
    if not use_scene and not request.why:  # fail before any generation when a judged benchmark cannot be judged
        check_judge_ready(request.judge or JudgeConfig(), benchmarks)
    if model_path is not None and model_path.is_dir():  # an image-text-to-text model, before any data loads
        from mmbench.harness.model import _check_architecture, _check_local_files

        _check_architecture(_check_local_files(model_path, model_spec, require_weights=False), model_spec,
                            request.trust_remote_code)
        _check_local_files(model_path, model_spec)
    # Provenance first (cheap: file hashes are cached), so a mismatch costs no model load.
    fingerprint = checkpoint_fingerprint(model_spec)
    device = _resolve_device(request.device)
    settings = EvalSettings(data=data, limit=request.limit, batch_size=request.batch_size,
                            strict_pope=request.strict_pope, max_new_tokens=request.max_new_tokens,
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
