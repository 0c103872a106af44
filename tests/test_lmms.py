"""lmms-eval interop that needs no lmms-eval: task mapping, import of a saved lmms-eval output
(tests/fixtures/lmms_output, made once with lmms-eval 0.7.3, see its README), overlay and exported
task files, and the engine's errors.  Runs lmms-eval's task functions with `datasets` only."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from mmbench.benchmarks import IDS, get_benchmark
from mmbench.errors import MmbenchError
from mmbench.harness import lmms, lmms_export
from mmbench.harness.lmms_import import import_lmms
from mmbench.harness.scoring import score_file

FIXTURE = Path(__file__).parent / "fixtures" / "lmms_output"


def _load_task_yaml(path: Path) -> dict:
    """Read a task YAML as lmms-eval does, with `!function` kept as the referenced name."""
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))
    return yaml.load(path.read_text(), Loader=Loader)


def test_task_mapping_covers_the_builtin_overlay_and_exported_names():
    assert lmms.task_benchmark("pope_adv") == ("pope", "adversarial")
    assert lmms.task_benchmark("mmbench_data_pope_pop") == ("pope", "popular")
    assert lmms.task_benchmark("textvqa_val") == ("textvqa", None)
    assert lmms.task_benchmark("llava_in_the_wild") == ("llava_w", None)
    assert lmms.task_benchmark("coco_cap_chair") == ("coco_recall", None)
    assert lmms.task_benchmark("mmhal_v") == ("mmhal_v", None)
    assert lmms.task_benchmark("mmbench_gqa") == ("gqa", None)
    assert lmms.task_benchmark("mme") is None
    # Every benchmark either has lmms-eval tasks or is one the export adds (MMHal and MMHal-V).
    assert {n for n in IDS if get_benchmark(n).lmms.tasks} | {"mmhal", "mmhal_v"} == set(IDS)


def test_import_saved_lmms_output_gives_scoreable_run_files(tmp_path):
    results = import_lmms(FIXTURE, tmp_path, name="imported", strict=True)
    assert set(results) == {"pope", "mmhal_v"}
    pope = results["pope"]
    assert pope["n"] == 6 and pope["config"]["engine"] == "lmms-eval" and pope["config"]["parse"] == "strict"
    own = pope["config"]["lmms_eval"]["metrics"]
    assert set(own) == {"mmbench_data_pope_random", "mmbench_data_pope_pop", "mmbench_data_pope_adv"}
    # mmbench's strict parse and lmms-eval's own POPE numbers agree per split (lmms-eval: fractions)
    for task, split in (("mmbench_data_pope_random", "random"), ("mmbench_data_pope_adv", "adversarial")):
        for ours, theirs in (("accuracy", "pope_accuracy"), ("precision", "pope_precision"),
                             ("recall", "pope_recall"), ("f1", "pope_f1_score")):
            assert pope["metrics"][f"{split}/{ours}"] == pytest.approx(100 * own[task][theirs])
    samples = tmp_path / "imported" / "pope" / "samples.jsonl"
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert {r["reference"]["split"] for r in rows} == {"random", "popular", "adversarial"}
    assert all(r["id"].startswith(r["reference"]["split"] + "/") for r in rows)
    rescored = score_file(get_benchmark("pope"), samples, strict=True)
    assert rescored["metrics"] == pope["metrics"]
    # the exported mmhal_v task logged whole mmbench samples, scene-judge verdicts included
    mmhal_v = results["mmhal_v"]
    assert mmhal_v["n"] == 2 and mmhal_v["n_failed"] == 0
    mmhal_rows = [json.loads(line) for line in (tmp_path / "imported" / "mmhal_v" / "samples.jsonl").open()]
    assert all(r["judge"]["outputs"] for r in mmhal_rows)
    assert score_file(get_benchmark("mmhal_v"), tmp_path / "imported" / "mmhal_v" / "samples.jsonl")["metrics"] \
        == mmhal_v["metrics"]
    model = json.loads((tmp_path / "imported" / "model.json").read_text())
    assert model["engine"] == "lmms-eval" and model["lmms_eval_version"]  # as lmms-eval records it


def test_report_shows_the_engine_of_imported_rows(tmp_path):
    from mmbench.reports.leaderboard import write_report

    import_lmms(FIXTURE, tmp_path, name="imported")
    written = write_report([tmp_path], tmp_path, replicates=0)
    table = written["markdown"].read_text()
    header = table.split("\n## ")[0]
    assert "engine" in header and "lmms-eval" in header


def test_a_task_without_results_is_a_failure(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    results_file = next(broken.rglob("*_results.json"))
    data = json.loads(results_file.read_text())
    del data["results"]["mmhal_v"]
    results_file.write_text(json.dumps(data))
    with pytest.raises(MmbenchError, match="mmhal_v"):
        import_lmms(broken, tmp_path / "runs")
    assert (tmp_path / "runs" / "broken" / "pope" / "results.json").exists()  # the rest still converted


def test_import_of_a_folder_without_lmms_output_fails(tmp_path):
    with pytest.raises(MmbenchError, match="no lmms-eval"):
        import_lmms(tmp_path, tmp_path / "runs")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from eval_fixtures import small_world

    return small_world(tmp_path_factory.mktemp("lmms_world"))


def test_overlays_include_lmms_tasks_and_hold_the_records(world, tmp_path):
    plans = lmms.write_overlays([get_benchmark("pope"), get_benchmark("mmvet")], str(world), 3, tmp_path,
                                "/lmms_eval/tasks")
    assert [p.task for p in plans] == ["mmbench_data_pope_random", "mmbench_data_pope_pop",
                                       "mmbench_data_pope_adv", "mmbench_data_mmvet"]
    pope = _load_task_yaml(tmp_path / "tasks" / "mmbench_data_pope_adv.yaml")
    assert pope["include"] == "/lmms_eval/tasks/pope/pope_adv.yaml" and "process_results" not in pope
    assert pope["process_docs"] == ("function", "mmbench.harness.lmms_export.image_docs")
    docs = [json.loads(line) for line in Path(pope["dataset_kwargs"]["data_files"]["test"]).open()]
    assert len(docs) == 3 and all(d["category"] == "adversarial" and Path(d["image"]).exists() for d in docs)
    assert [f"adversarial/{d['question_id']}" for d in docs] == [r.id for r in plans[2].records]
    mmvet = _load_task_yaml(tmp_path / "tasks" / "mmbench_data_mmvet.yaml")
    assert mmvet["process_results"] == ("function", "mmbench.harness.lmms_export.generated_only")


def test_exported_task_functions_use_mmbench_loader_judge_and_scorer(world, tmp_path):
    import importlib.util

    import datasets

    [path] = lmms_export.export_tasks(tmp_path, data=str(world), benchmarks=["mmhal_v"])
    config = _load_task_yaml(path)
    assert config["task"] == "mmhal_v" and config["dataset_path"] == "json"
    data_file = config["dataset_kwargs"]["data_files"]["test"]
    assert Path(data_file).is_file()
    spec = importlib.util.spec_from_file_location("utils", path.parent / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    dataset = datasets.load_dataset("json", data_files={"test": data_file}, split="test")
    docs = utils.process_docs(dataset)
    doc = docs[0]
    assert utils.doc_to_text(doc).startswith(dataset[0]["question"])
    assert utils.doc_to_visual(doc)[0].mode == "RGB"
    entries = [utils.process_results(d, ["There is nothing in the image."]) for d in docs]
    entry = entries[0]["score"]
    assert entry["sample"]["judge"]["outputs"] and "rating" in entry["scored"]
    score = utils.aggregate_score([e["score"] for e in entries])
    assert 0 <= score <= 6
    assert set(m["metric"] for m in config["metric_list"]) == {"score", "hallucination_rate"}


def test_engine_names_a_missing_lmms_install(monkeypatch, tmp_path):
    monkeypatch.setenv("MMBENCH_LMMS_PYTHON", sys.executable)
    if __import__("importlib").util.find_spec("lmms_eval") is not None:
        pytest.skip("lmms-eval is installed here")
    with pytest.raises(MmbenchError, match="lmms-eval does not import"):
        lmms.preflight(sys.executable)


def test_unknown_engine_is_refused():
    from mmbench.harness.eval_api import EvalRequest, run_eval

    with pytest.raises(MmbenchError, match="unknown engine"):
        run_eval(EvalRequest(benchmarks=[get_benchmark("pope")], engine="vllm"))
