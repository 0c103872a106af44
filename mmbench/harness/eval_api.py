"""`mmbench eval` as a function: resolve the model, the data and the judges, run the eval runner,
and describe the model in `model.json` for reports.  Ablations call the same function."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from mmbench.benchmarks import Benchmark
from mmbench.errors import MmbenchError
from mmbench.harness.evaluate import Distributed, EvalSettings, evaluate
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


def is_world_model(path: Path) -> bool:
    """The shipped base, or a checkpoint trained from it on world data."""
    from mmbench.world.paths import BASE_MODEL_DIR

    if path.resolve() == BASE_MODEL_DIR.resolve():
        return True
    config = path / "train_config.json"
    if config.exists():
        data = json.loads(config.read_text()).get("data")
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
    """A generator under another run-folder name."""

    def __init__(self, generator, name: str):
        self._generator, self.name = generator, name

    def generate(self, *args, **kwargs):
        return self._generator.generate(*args, **kwargs)


def make_judge_step(request: EvalRequest, data: str | None):
    """The eval runner's judge step: judge samples that have no verdict yet, then save them."""
    from mmbench.harness.judge_client import JudgeConfig
    from mmbench.harness.judge_runner import judge_samples, judge_summary, make_judge, read_template

    world_root = Path(data) if data and (Path(data) / "world.json").exists() else None
    config = request.judge or JudgeConfig()
    use_scene = world_root is not None and not request.judge_explicit
    template = None if use_scene else read_template(config)

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

    return step, use_scene


def run_eval(request: EvalRequest) -> dict[str, dict]:
    from mmbench.harness.judge_client import JudgeConfig
    from mmbench.harness.judge_runner import check_judge_ready
    from mmbench.harness.model import load_model

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
    data = resolve_data(request, model_path)
    judge_step, use_scene = make_judge_step(request, data)
    if not use_scene:  # fail before any generation when a judged benchmark cannot be judged
        check_judge_ready(request.judge or JudgeConfig(), benchmarks)
    model = load_model(model_spec, dtype=request.dtype, device=request.device,
                       trust_remote_code=request.trust_remote_code)
    name = request.name or ("base" if request.model is None else model.name)
    generator = _Named(model, name)
    dist = Distributed.detect() if request.distributed else Distributed()
    if dist.main:
        meta = {"model": name, "checkpoint": model_spec, "engine": "mmbench",
                "knob": "base" if request.model is None else "", **request.meta}
        atomic_write_json(Path(request.out) / name / "model.json", meta)
    settings = EvalSettings(data=data, limit=request.limit, batch_size=request.batch_size,
                            strict_pope=request.strict_pope, max_new_tokens=request.max_new_tokens)
    if not benchmarks:
        raise MmbenchError("no benchmark selected")
    return evaluate(generator, benchmarks, Path(request.out), settings, judge_step, dist,
                    show_progress=request.show_progress)
