"""lmms-eval task folders that run mmbench's benchmarks inside lmms-eval (`mmbench export-lmms-tasks`).

Each exported folder holds `<task>.yaml` and a small `utils.py` whose functions call back into this
module, so the task uses mmbench's own loaders (`record_from_row` on the local data file), prompts,
judge (the data's suite's own judge, e.g. the world's scene judge; the OpenAI-compatible judge client
otherwise) and scorers:

    lmms_eval --model llava_hf --include_path DIR --tasks mmhal_v ...

Task names: `mmhal`, `mmhal_v` (lmms-eval has neither) and `mmbench_<id>` for the other six, which
lmms-eval has in its own versions.  Data comes from local files only (`dataset_path: json`), never
the hub.  Every per-sample metric entry carries the mmbench sample (id, prompt, response, reference,
judge outputs), so `mmbench import-lmms` turns the run back into exact mmbench run files.

The functions below are also what the `--engine lmms-eval` overlay tasks call (`image_docs`,
`generated_only`).  Nothing here imports lmms-eval: the functions run inside its process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from mmbench.errors import MmbenchError


def metrics_of(bench) -> tuple[str, ...]:
    """Metrics an exported task declares to lmms-eval, headline first; every one comes from the
    benchmark's own aggregate()."""
    return bench.lmms.metrics or (bench.headline,)


def task_name(benchmark: str) -> str:
    """`mmbench_<id>` beside lmms-eval's own task of a benchmark; a benchmark lmms-eval lacks
    (no `lmms.tasks`: MMHal, MMHal-V) keeps its own name."""
    from mmbench.benchmarks import get_benchmark

    return f"mmbench_{benchmark}" if get_benchmark(benchmark).lmms.tasks else benchmark


def benchmark_of_task(task: str) -> str | None:
    """The mmbench benchmark id behind an exported task name, or None."""
    from mmbench.benchmarks import benchmark_names

    names = benchmark_names()
    for name in dict.fromkeys((task, task.removeprefix("mmbench_"))):
        if name in names and task == task_name(name):
            return name
    return None


# ------------------------------------------------------------------------ runtime: overlay tasks
def image_docs(dataset):
    """process_docs for the engine's overlay tasks: image paths (absolute) -> images on access."""
    import datasets

    return dataset.cast_column("image", datasets.Image()) if "image" in dataset.column_names else dataset


def generated_only(doc, results):
    """process_results for overlay tasks whose lmms-eval scoring needs the hub or a GPT key: keep
    the answer only; mmbench judges and scores it from the converted samples."""
    return {"mmbench_generated": 1.0}


# ------------------------------------------------------------------------ runtime: exported tasks
def process_docs(dataset, benchmark: str, data_file: str):
    """Rows of the local data file -> mmbench records (mmbench's own loader), as flat docs."""
    from mmbench.benchmarks import get_benchmark

    bench = get_benchmark(benchmark)
    folder = Path(data_file).parent

    def to_doc(row):
        try:
            record = bench.record_from_row(dict(row), folder)
        except KeyError as exc:
            raise MmbenchError(f"{benchmark}: data row is missing the field {exc.args[0]!r}") from None
        image = record.image
        if image is not None and not isinstance(image, (str, Path)):
            raise MmbenchError(f"{benchmark}: exported tasks need image files, not embedded images")
        return {"mmbench_id": record.id, "mmbench_prompt": record.prompt,
                "mmbench_reference": json.dumps(record.reference, ensure_ascii=False),
                "mmbench_image": str(Path(image).resolve()) if image is not None else ""}

    return dataset.map(to_doc, remove_columns=dataset.column_names)


def doc_to_visual(doc):
    from PIL import Image

    if not doc.get("mmbench_image"):
        return []
    with Image.open(doc["mmbench_image"]) as image:
        return [image.convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["mmbench_prompt"]


_JUDGES: dict = {}


def _judge(benchmark: str, local: str | None, judge_model: str | None, judge_base_url: str | None):
    """`local`: a data folder whose suite has a judge of its own (the world's scene judge)."""
    key = (benchmark, local, judge_model, judge_base_url)
    if key not in _JUDGES:
        own = _local_judge(benchmark, local) if local else None
        if own is not None:
            _JUDGES[key] = own
        else:
            from mmbench.harness.judge_client import JudgeConfig
            from mmbench.harness.judge_runner import make_judge

            _JUDGES[key] = make_judge(benchmark, JudgeConfig(model=judge_model, base_url=judge_base_url))
    return _JUDGES[key]


def _local_judge(benchmark: str, folder: str):
    """The suite's own judge for data under `folder` (None: it has none, or wants a remote one)."""
    from mmbench.benchmarks import get_benchmark
    from mmbench.harness.judge_client import JudgeConfig
    from mmbench.suites import claimed_suite

    suite = claimed_suite(folder)
    own = suite.judge(get_benchmark(benchmark)) if suite is not None else None
    return None if own is None or isinstance(own, JudgeConfig) else own


def _has_local_judges(root: Path, names) -> bool:
    from mmbench.benchmarks import get_benchmark

    judged = [n for n in names if get_benchmark(n).judged]
    return bool(judged) and _local_judge(judged[0], str(root)) is not None


def process_results(doc, results, benchmark: str, world: str | None = None, judge_model: str | None = None,
                    judge_base_url: str | None = None):
    """One sample: mmbench's judge (judged benchmarks) and scorer; the same entry for every metric."""
    from mmbench.benchmarks import get_benchmark

    bench = get_benchmark(benchmark)
    response = results[0] if results else ""
    response = response if isinstance(response, str) else str(response)
    sample = {"benchmark": benchmark, "id": doc["mmbench_id"], "prompt": doc["mmbench_prompt"],
              "response": response.strip(), "reference": json.loads(doc["mmbench_reference"])}
    if doc.get("mmbench_image") and bench.judge is not None and bench.judge.vision:
        sample["image"] = doc["mmbench_image"]
    if bench.judged:
        from mmbench.harness.judge_runner import judge_samples

        sample = judge_samples(bench, [sample], _judge(benchmark, world, judge_model, judge_base_url))[0]
    entry = {"sample": sample, "scored": bench.score_sample(sample)}  # the benchmark's default parse
    return {metric: entry for metric in metrics_of(bench)}


def aggregate(items: Sequence[dict], benchmark: str, metric: str) -> float:
    from mmbench.benchmarks import get_benchmark

    scored = [i["scored"] for i in items if not i["scored"].get("failed")]
    if not scored:
        return float("nan")
    return float(get_benchmark(benchmark).aggregate(scored).get(metric, float("nan")))


# ------------------------------------------------------------------------ writing the folders
_UTILS = '''"""Generated by `mmbench export-lmms-tasks`: {benchmark} through mmbench's loader, judge and scorer."""
from mmbench.harness import lmms_export as _mm

BENCHMARK = {benchmark!r}
DATA_FILE = {data_file!r}  # the local data file (dataset_path: json in the YAML)
WORLD = {world!r}  # a data folder whose suite judges locally (the world's scene judge); None: the OpenAI-compatible judge
JUDGE_MODEL = {judge_model!r}
JUDGE_BASE_URL = {judge_base_url!r}


def process_docs(dataset):
    return _mm.process_docs(dataset, BENCHMARK, DATA_FILE)


def doc_to_visual(doc):
    return _mm.doc_to_visual(doc)


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return _mm.doc_to_text(doc, lmms_eval_specific_kwargs)


def process_results(doc, results):
    return _mm.process_results(doc, results, BENCHMARK, WORLD, JUDGE_MODEL, JUDGE_BASE_URL)

'''
_AGG = '''
def aggregate_{safe}(items):
    return _mm.aggregate(items, BENCHMARK, {metric!r})
'''


def _yaml(benchmark, data_file: Path) -> dict:
    bench = benchmark
    return {
        "task": task_name(bench.name),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "output_type": "generate_until",
        "process_docs": Function("utils.process_docs"),
        "doc_to_visual": Function("utils.doc_to_visual"),
        "doc_to_text": Function("utils.doc_to_text"),
        "doc_to_target": "mmbench_id",
        "generation_kwargs": {"max_new_tokens": bench.generation.max_new_tokens, "temperature": 0,
                              "do_sample": False, "num_beams": 1, "until": []},
        "process_results": Function("utils.process_results"),
        "metric_list": [{"metric": m, "aggregation": Function(f"utils.aggregate_{_safe(m)}"),
                         "higher_is_better": bench.higher_is_better_for(m)} for m in metrics_of(bench)],
        "metadata": {"version": bench.version, "mmbench_benchmark": bench.name},
    }


def _safe(metric: str) -> str:
    return metric.replace("/", "_")


class Function(str):
    """A `!function module.name` reference in a task YAML."""


def dump_yaml(config: dict) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(Function, lambda dumper, value: dumper.represent_scalar("!function", str(value)))
    return yaml.dump(config, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=1000)


def local_data_file(folder: Path, name: str) -> Path:
    if (folder / name).is_dir():
        folder = folder / name
    files = sorted(p for p in folder.iterdir() if p.suffix in (".json", ".jsonl")) if folder.is_dir() else []
    if len(files) != 1:
        raise MmbenchError(f"{name}: export needs exactly one local JSON/JSONL data file in {folder} "
                           f"(found {len(files)}); hub data is not used by exported tasks")
    return files[0].resolve()


def export_tasks(out: Path, data: str | None = None, benchmarks: Sequence[str] | None = None,
                 judge_model: str | None = None, judge_base_url: str | None = None) -> list[Path]:
    """Write one lmms-eval task folder per benchmark under `out`; return the YAML paths.

    `data`: None or a suite name for that suite's data (the default suite: the world, built on
    demand), else a local folder holding one sub-folder per benchmark with its official
    JSON/JSONL file next to the images."""
    from mmbench.benchmarks import BENCHMARKS, get_benchmark
    from mmbench.suites import SUITES, get_suite

    if data is None or data in SUITES:
        suite = get_suite(data)
        data = suite.benchmark_data(get_benchmark(next(iter(benchmarks or BENCHMARKS))))
    root = Path(data).expanduser().resolve() if data else None
    if root is None or not root.is_dir():
        raise MmbenchError(f"data folder not found: {data} (exported tasks read local files only)")
    local = None if judge_model or judge_base_url else str(root)
    world = local if local and _has_local_judges(root, benchmarks or list(BENCHMARKS)) else None
    names = list(benchmarks) if benchmarks else list(BENCHMARKS)
    written = []
    for name in names:
        bench = get_benchmark(name)
        folder = Path(out) / task_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        data_file = local_data_file(root, name)
        config = _yaml(bench, data_file)
        (folder / f"{task_name(name)}.yaml").write_text(dump_yaml(config), encoding="utf-8")
        utils = _UTILS.format(benchmark=name, data_file=str(data_file), world=world, judge_model=judge_model, judge_base_url=judge_base_url)
        utils += "".join(_AGG.format(safe=_safe(m), metric=m) for m in metrics_of(bench))
        (folder / "utils.py").write_text(utils, encoding="utf-8")
        written.append(folder / f"{task_name(name)}.yaml")
    return written
