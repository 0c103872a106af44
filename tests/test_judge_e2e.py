"""All four judged benchmarks end to end through the real openai client and a local server:
hand-written samples -> judge_samples -> score_samples -> results.json, with hand-computed metrics."""

from __future__ import annotations

import base64
import json

import pytest
from fake_openai_server import FakeOpenAIServer, Faults
from PIL import Image

from mmbench.benchmarks import get_benchmark
from mmbench.harness.judge_client import JudgeConfig
from mmbench.harness.judge_runner import judge_samples, judge_summary, make_judge
from mmbench.harness.runfiles import atomic_write_json, write_samples
from mmbench.harness.scoring import build_results, score_samples

KEY_ENV = "MMBENCH_TEST_JUDGE_KEY"
KEY = "sk-test-4f1a-DISTINCTIVE-9c2e"
MMVET_RUNS = 3


def _mmhal(markers_types):
    return [{"id": f"h{i}", "prompt": "Q?", "response": f"An answer. [[{marker}]]",
             "image": f"images/{i}.png",
             "reference": {"question": f"Question {i}?", "question_type": qtype,
                           "image_content": ["Dog", "Ball"], "gt_answer": "A dog plays with a ball."}}
            for i, (marker, qtype) in enumerate(markers_types)]


MMHAL_ROWS = [("5", "attribute"), ("1", "attribute"), ("flaky:4", "counting"), ("2", "counting"),
              ("6", "relation")]
# ratings 5, 1, 4, 2, 6: mean 3.6; two of five below 3; per type 3.0, 3.0, 6.0
MMHAL_METRICS = {"score": 3.6, "hallucination_rate": 40.0, "type/attribute": 3.0, "type/counting": 3.0,
                 "type/relation": 6.0}

LLAVA_W = [{"id": f"w{i}", "prompt": "Q?", "response": f"Answer {i}. [[{score}]]",
            "reference": {"question": f"Question {i}?", "category": cat, "caption": "A dog on grass.",
                          "gpt_answer": "A detailed reference answer."}}
           for i, (score, cat) in enumerate([("6", "conv"), ("8", "detail"), ("4", "complex"),
                                             ("10", "conv")])]
# model 6, 8, 4, 10 against a reference of 8 every time
LLAVA_W_METRICS = {"relative_score": 87.5, "model_score": 7.0, "reference_score": 8.0,
                   "conv/relative_score": 100.0, "detail/relative_score": 100.0,
                   "complex/relative_score": 50.0}

MMVET = [{"id": f"v{i}", "prompt": "Q?", "response": f"Prediction {i} [[{score}]]",
          "reference": {"question": f"Question {i}?", "answer": "red <OR> crimson", "capability": caps}}
         for i, (score, caps) in enumerate([("1.0", ["rec"]), ("0.5", ["ocr", "rec"]), ("0", ["math"]),
                                            ("0.7", ["know"])])]
MMVET_METRICS = {"score": 55.0, "cap/rec": 75.0, "cap/ocr": 50.0, "cap/math": 0.0, "cap/know": 70.0}

EXPECTED = {"mmhal": MMHAL_METRICS, "mmhal_v": MMHAL_METRICS, "llava_w": LLAVA_W_METRICS,
            "mmvet": MMVET_METRICS}


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def run_dir(tmp_path):
    """Where samples live; mmhal_v's images are relative to it."""
    folder = tmp_path / "run"
    (folder / "images").mkdir(parents=True)
    for i in range(len(MMHAL_ROWS)):
        Image.new("RGB", (8, 8), (40 * i, 90, 200)).save(folder / "images" / f"{i}.png")
    return folder


def samples_for(name: str) -> list[dict]:
    rows = {"mmhal": _mmhal(MMHAL_ROWS), "mmhal_v": _mmhal(MMHAL_ROWS), "llava_w": LLAVA_W,
            "mmvet": MMVET}[name]
    return [{"benchmark": name, **row} for row in rows]


def evaluate(name: str, cfg: JudgeConfig, run_dir, out_dir=None) -> tuple[dict, list[dict]]:
    """What the eval runner does after generation: judge, score, write run files."""
    benchmark = get_benchmark(name)
    judge = make_judge(benchmark, cfg)
    runs = MMVET_RUNS if name == "mmvet" else None
    judged = judge_samples(benchmark, samples_for(name), judge, runs=runs, image_root=run_dir)
    per_sample, metrics = score_samples(benchmark, judged)
    config = {"judge_model": judge.model, "judge": judge_summary(benchmark, judge, runs=runs)}
    results = build_results(benchmark, per_sample, metrics, config)
    if out_dir is not None:
        write_samples(out_dir / name / "samples.jsonl", judged)
        atomic_write_json(out_dir / name / "results.json", results)
    return results, judged


def judge_config(server, cache, **overrides) -> JudgeConfig:
    fields = {"base_url": server.url, "api_key_env": KEY_ENV, "cache_path": cache, "timeout_s": 0.3,
              "backoff_base_s": 0.001, "backoff_max_s": 0.01}
    return JudgeConfig(**{**fields, **overrides})


@pytest.mark.parametrize("name", ["mmhal", "mmhal_v", "llava_w", "mmvet"])
def test_judged_benchmark_end_to_end(name, tmp_path, run_dir):
    with FakeOpenAIServer() as server:
        cfg = judge_config(server, tmp_path / "cache.sqlite")
        results, judged = evaluate(name, cfg, run_dir, tmp_path / "out")
        sent = len(server.received)
    assert results["metrics"] == pytest.approx(EXPECTED[name])
    assert results["n"] == len(judged) and results["n_failed"] == 0 and "flagged" not in results
    judge = results["config"]["judge"]
    assert judge["model"] == get_benchmark(name).judge.default_model == results["config"]["judge_model"]
    assert judge["prompt_version"] == 1 and judge["cache_hits"] == 0 and judge["cache_misses"] == sent
    assert judge["prompt_tokens"] > 0 and judge["completion_tokens"] > 0
    runs = MMVET_RUNS if name == "mmvet" else 1
    assert all(len(s["judge"]["outputs"]) == runs for s in judged)
    written = json.loads((tmp_path / "out" / name / "results.json").read_text())
    assert written["config"]["judge"]["model"] == judge["model"]


def test_mmvet_runs_are_separate_requests(tmp_path, run_dir):
    with FakeOpenAIServer() as server:
        evaluate("mmvet", judge_config(server, tmp_path / "cache.sqlite"), run_dir)
        assert len(server.received) == len(MMVET) * MMVET_RUNS  # identical text, one call per run index


def test_faults_do_not_change_metrics_and_rerun_sends_nothing(tmp_path, run_dir):
    with FakeOpenAIServer() as clean:
        expected = {n: evaluate(n, judge_config(clean, tmp_path / "clean.sqlite"), run_dir)[0]["metrics"]
                    for n in EXPECTED}
    faults = Faults(rate=0.3, seed=7, slow_s=0.6)
    with FakeOpenAIServer(faults=faults) as server:
        cfg = judge_config(server, tmp_path / "faulty.sqlite")
        first = {n: evaluate(n, cfg, run_dir)[0] for n in EXPECTED}
        kinds = {r.fault for r in server.received} - {None}
        faulted = sum(r.fault is not None for r in server.received) / len(server.received)
        server.reset()
        second = {n: evaluate(n, cfg, run_dir)[0] for n in EXPECTED}
        assert server.received == []  # everything came from the cache
    assert kinds == {"429", "500", "slow", "garbage"} and 0.15 < faulted < 0.45
    for name in EXPECTED:
        assert first[name]["metrics"] == pytest.approx(expected[name]) == second[name]["metrics"]
        assert first[name]["n_failed"] == 0
        assert second[name]["config"]["judge"]["cache_misses"] == 0
        assert second[name]["config"]["judge"]["cache_hits"] >= first[name]["config"]["judge"]["cache_misses"]
    assert sum(first[n]["config"]["judge"]["retries"] for n in EXPECTED) > 0


def test_only_mmhal_v_sends_the_image(tmp_path, run_dir):
    with FakeOpenAIServer() as server:
        evaluate("mmhal", judge_config(server, tmp_path / "c.sqlite"), run_dir)
        assert all(r.image_urls == [] for r in server.received)
        server.reset()
        evaluate("mmhal_v", judge_config(server, tmp_path / "c.sqlite"), run_dir)
        urls = {r.image_urls[0] for r in server.received if r.image_urls}
        assert len(urls) == len(MMHAL_ROWS) == len({r.text for r in server.received})
    for url in urls:
        assert url.startswith("data:image/png;base64,")
    sent = {base64.b64decode(u.split(",", 1)[1]) for u in urls}
    assert sent == {(run_dir / "images" / f"{i}.png").read_bytes() for i in range(len(MMHAL_ROWS))}


def test_context_is_filled_for_non_http_judges(run_dir):
    class SceneJudge:  # what the world's scene judge sees: no text parsing needed
        model = "scene-judge"

        def __init__(self):
            self.contexts = []

        def judge(self, requests, parse):
            self.contexts += [r.context for r in requests]
            return [f"Rating: {5 if 'dog' in r.context['reference']['gt_answer'] else 0}" for r in requests]

    judge = SceneJudge()
    judged = judge_samples(get_benchmark("mmhal"), samples_for("mmhal"), judge)
    assert judge.contexts[0] == {"benchmark": "mmhal", "id": "h0", "response": "An answer. [[5]]",
                                 "reference": samples_for("mmhal")[0]["reference"]}
    assert all(s["judge"] == {"model": "scene-judge", "prompt_version": get_benchmark("mmhal").judge.prompt_version,
                              "runs": 1, "outputs": ["Rating: 5"]} for s in judged)


def test_garbage_verdicts_end_in_n_failed_and_flag(tmp_path, run_dir):
    samples = samples_for("mmhal")
    samples[1]["response"] = "Nonsense. [[garbage]]"
    benchmark = get_benchmark("mmhal")
    with FakeOpenAIServer() as server:
        judge = make_judge(benchmark, judge_config(server, tmp_path / "c.sqlite"))
        judged = judge_samples(benchmark, samples, judge)
        assert sum("[[garbage]]" in r.text for r in server.received) == 5
    per_sample, metrics = score_samples(benchmark, judged)
    results = build_results(benchmark, per_sample, metrics, {})
    assert results["n"] == 5 and results["n_failed"] == 1 and "flagged" in results
    assert metrics["score"] == pytest.approx((5 + 4 + 2 + 6) / 4)  # left out of the average, not scored 0


def test_api_key_is_in_no_written_file(tmp_path, run_dir, caplog):
    caplog.set_level("DEBUG")
    with FakeOpenAIServer(faults=Faults(rate=0.3, seed=3, slow_s=0.6)) as server:
        for name in EXPECTED:
            evaluate(name, judge_config(server, tmp_path / "cache.sqlite"), run_dir, tmp_path / "out")
        assert {r.headers["authorization"] for r in server.received} == {f"Bearer {KEY}"}
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "cache.sqlite" for p in written) and any(p.name == "results.json" for p in written)
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in caplog.text
    results = (tmp_path / "out" / "mmhal" / "results.json").read_text()
    assert KEY_ENV in results  # the variable's name is what gets recorded
