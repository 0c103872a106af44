"""What a benchmark knows lives on its `Benchmark`: parses, detail tables, metric directions,
per-sample scoring and its lmms-eval tasks; callers use them without naming a benchmark."""

import ast
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mmbench.benchmarks import IDS, REGISTRY, DetailGroup, get_benchmark
from mmbench.benchmarks.base import LmmsEvalTasks, mean
from mmbench.errors import MmbenchError
from mmbench.harness import lmms, lmms_export
from mmbench.harness.runfiles import atomic_write_json, write_samples
from mmbench.harness.scoring import build_results, score_file, score_samples
from mmbench.reports.collect import collect_runs
from mmbench.reports.leaderboard import write_report

ROOT = Path(__file__).resolve().parents[1]
POPE_SAMPLES = [
    {"benchmark": "pope", "id": f"random/{i}", "prompt": "Is there a dog?", "response": response,
     "reference": {"answer": answer, "split": "random"}}
    for i, (answer, response) in enumerate([("yes", "Yes."), ("yes", "yes"), ("no", "no"), ("no", "Yes")])
]


def toy_score(reference, response, judge_outputs=None):  # no **options: it has one parse only
    return {"errors": float(response.strip() != reference["answer"]), "kind": reference["kind"]}


def toy_aggregate(samples):
    metrics = {"errors": 100 * mean([s["errors"] for s in samples])}
    for kind in sorted({s["kind"] for s in samples}):
        metrics[f"kind/{kind}"] = 100 * mean([s["errors"] for s in samples if s["kind"] == kind])
    return metrics


# A headline where lower is better, its own detail table and an lmms-eval task of its own.
TOY = replace(get_benchmark("gqa"), name="toy_errors", headline="errors", score=toy_score,
              aggregate=toy_aggregate,
              reference_keys=("answer", "kind"), image_join=None, higher_is_better={"errors": False},
              details=(DetailGroup("Toy kinds", ("kind/a", "kind/b")),),
              lmms=LmmsEvalTasks(tasks=(("toy_task", "toy/toy.yaml", "a"),)))


@pytest.fixture
def toy():
    REGISTRY.register(TOY.name, TOY)
    yield TOY
    REGISTRY.unregister(TOY.name)


def test_parse_options_are_declared_by_the_benchmark():
    pope, gqa = get_benchmark("pope"), get_benchmark("gqa")
    assert pope.parses == ("official", "strict") and gqa.parses == ("official",)
    # "Yes." is yes for POPE's own parse and unparsed for lmms-eval's exact match
    assert pope.score_sample(POPE_SAMPLES[0])["pred"] == "yes"
    assert pope.score_sample(POPE_SAMPLES[0], "strict")["pred"] is None
    assert pope.parse_config("strict") == {"parse": "strict"}
    assert pope.parse_config(None) == {"parse": "official"}
    # a benchmark without that parse keeps its default, names none, and its scorer gets no option
    assert gqa.parse_for("strict") == "official" and gqa.parse_config("strict") == {}
    sample = {"response": "red", "reference": {"answer": "red", "kind": "a"}}
    assert TOY.score_sample(sample, "strict") == {"errors": 0.0, "kind": "a"}
    _, strict = score_samples(pope, POPE_SAMPLES, parse="strict")
    _, official = score_samples(pope, POPE_SAMPLES)
    assert strict["accuracy"] == pytest.approx(50.0) and official["accuracy"] == pytest.approx(75.0)
    with pytest.raises(ValueError, match="unknown POPE parse"):
        pope.score(POPE_SAMPLES[0]["reference"], "yes", parse="fuzzy")


@pytest.mark.parametrize("where", ["config", "fingerprint"])
def test_reports_score_samples_as_the_results_were_scored(tmp_path, where):
    folder = tmp_path / "runs" / "m"
    atomic_write_json(folder / "model.json", {"model": "m", "knob": ""})
    write_samples(folder / "pope" / "samples.jsonl", POPE_SAMPLES)
    results = score_file(get_benchmark("pope"), folder / "pope" / "samples.jsonl", strict=True)
    if where == "fingerprint":  # how `mmbench eval --strict` records it
        results["config"] = {"fingerprint": {"parse": results["config"].pop("parse")}}
    atomic_write_json(folder / "pope" / "results.json", results)
    (run,) = collect_runs([tmp_path / "runs"])
    per_sample, _ = score_samples(get_benchmark("pope"), POPE_SAMPLES, parse="strict")
    assert run.sample_scores("pope") == {s["id"]: score for s, score in zip(POPE_SAMPLES, per_sample)}
    assert run.sample_scores("pope")["random/0"]["pred"] is None  # strict, not the default parse


def test_metric_direction_decides_the_best():
    coco = get_benchmark("coco_recall")
    assert coco.best([12.0, 30.0], "chair_i") == 12.0 and coco.best([12.0, 30.0], "recall") == 30.0
    assert get_benchmark("mmhal").best([4.0, 9.0], "hallucination_rate") == 4.0
    assert coco.best([], "recall") is None


def _run(root, model, meta, answers):
    folder = root / model
    atomic_write_json(folder / "model.json", {"model": model, **meta})
    samples = [{"benchmark": TOY.name, "id": str(i), "prompt": "p", "response": resp,
                "reference": {"answer": "red", "kind": "ab"[i % 2]}} for i, resp in enumerate(answers)]
    write_samples(folder / TOY.name / "samples.jsonl", samples)
    per_sample, metrics = score_samples(TOY, samples)
    atomic_write_json(folder / TOY.name / "results.json", build_results(TOY, per_sample, metrics, {}))


def test_leaderboard_bolds_the_lowest_of_a_lower_is_better_headline(tmp_path, toy):
    _run(tmp_path / "runs", "base", {"knob": "base"}, ["red"] * 6 + ["blue"] * 4)  # 40% errors
    _run(tmp_path / "runs", "trained", {"knob": ""}, ["red"] * 9 + ["blue"])  # 10% errors
    md = write_report([tmp_path / "runs"], tmp_path / "report", replicates=0)["markdown"].read_text()
    leaderboard = md.split("\n## ")[0]
    lines = {line.split("|")[1].strip(): line for line in leaderboard.splitlines() if line.startswith("| ")}
    assert "toy_errors (errors)" in lines["model"]
    assert "**10.00**" in lines["trained"] and "**" not in lines["base"].split("|")[-2]
    # the detail table is the benchmark's own: errors per kind (a: even ids, b: odd ids)
    assert "## Toy kinds" in md and "| kind/a   | kind/b   |" in md
    assert "| trained | 0.00     | 20.00    |" in md


def test_lmms_eval_tables_are_read_from_benchmarks(toy):
    assert lmms.task_benchmark("toy_task") == ("toy_errors", "a")
    assert lmms.task_benchmark("mmbench_data_toy_task") == ("toy_errors", "a")
    assert lmms_export.task_name("toy_errors") == "mmbench_toy_errors"  # lmms-eval has a task of its own
    assert lmms_export.benchmark_of_task("mmbench_toy_errors") == "toy_errors"
    assert lmms_export.metrics_of(TOY) == ("errors",)  # default: the headline alone
    # MMHal has no lmms-eval task: exported under its own name, with its declared metrics
    assert lmms_export.task_name("mmhal") == "mmhal" and lmms_export.benchmark_of_task("mmhal") == "mmhal"
    assert lmms_export.metrics_of(get_benchmark("mmhal")) == ("score", "hallucination_rate")
    assert {n for n in IDS if get_benchmark(n).lmms.tasks} == set(IDS) - {"mmhal", "mmhal_v"}


def test_registry_is_lazy_and_checks_plugins():
    code = ("import sys, mmbench.benchmarks as b\n"
            "print(sorted(m for m in sys.modules if m.startswith('mmbench.benchmarks.')))\n"
            "b.get_benchmark('gqa')\n"
            "print('mmbench.benchmarks.mmhal' in sys.modules, 'mmbench.benchmarks.gqa' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["['mmbench.benchmarks.base']", "False True"]
    with pytest.raises(MmbenchError, match=r"unknown benchmark 'mmhal-v' — did you mean 'mmhal_v'\?"):
        get_benchmark("mmhal-v")
    REGISTRY.register("renamed", TOY)  # a plug-in whose Benchmark carries another name
    try:
        with pytest.raises(MmbenchError, match="not a Benchmark named 'renamed'"):
            get_benchmark("renamed")
    finally:
        REGISTRY.unregister("renamed")


def _name_special_cases(path: Path) -> list[str]:
    """Comparisons with, and table keys of, a built-in benchmark id in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Compare):
            values = [node.left, *node.comparators]
            values += [e for v in values if isinstance(v, (ast.Tuple, ast.List, ast.Set)) for e in v.elts]
        elif isinstance(node, ast.Dict):
            values = [k for k in node.keys if k is not None]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{v.lineno} {v.value!r}" for v in values
                  if isinstance(v, ast.Constant) and v.value in IDS]
    return found


def test_no_benchmark_is_special_cased_by_name_outside_its_module():
    package = ROOT / "mmbench"
    files = [p for p in package.rglob("*.py")
             if package / "world" not in p.parents and p.parent != package / "benchmarks"]
    assert [hit for path in files for hit in _name_special_cases(path)] == []


def test_benchmark_and_report_modules_import_without_cycles():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_graph.py"), "--modules"],
                         capture_output=True, text=True, check=True).stdout
    cycles = [line for line in out.splitlines() if "<->" in line]
    assert not [c for c in cycles if "mmbench.benchmarks" in c or "mmbench.reports" in c], cycles
