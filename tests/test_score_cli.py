"""`mmbench score` on hand-written samples files in each benchmark's format."""

import json
import subprocess
import sys

import pytest


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mmbench", *args], capture_output=True, text=True, cwd=cwd)


def write_samples(path, samples):
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    return path


def test_score_pope_official_and_strict(tmp_path):
    samples = [
        {"benchmark": "pope", "id": "random/1", "prompt": "Is there a dog?", "response": "Yes, there is a dog.",
         "reference": {"answer": "yes", "split": "random"}},
        {"benchmark": "pope", "id": "random/2", "prompt": "Is there a cat?", "response": "There is no cat.",
         "reference": {"answer": "no", "split": "random"}},
        {"benchmark": "pope", "id": "random/3", "prompt": "Is there a cup?", "response": "no",
         "reference": {"answer": "yes", "split": "random"}},
    ]
    path = write_samples(tmp_path / "samples.jsonl", samples)
    result = run_cli("score", "pope", str(path), "--out", str(tmp_path / "official.json"))
    assert result.returncode == 0, result.stderr
    official = json.loads((tmp_path / "official.json").read_text())
    # TP=1 TN=1 FN=1 -> precision 1, recall 1/2, F1 2/3
    assert official["metrics"]["f1"] == pytest.approx(200 / 3)
    assert official["n"] == 3 and official["n_failed"] == 0 and official["version"] == 1
    assert official["headline"] == "f1" and official["config"]["parse"] == "official"
    assert "f1" in result.stdout

    assert run_cli("score", "pope", str(path), "--strict", "--out", str(tmp_path / "strict.json")).returncode == 0
    strict = json.loads((tmp_path / "strict.json").read_text())
    # strict: only "no" parses -> TP=0: precision/recall/F1 0, accuracy 0
    assert strict["metrics"]["f1"] == 0.0 and strict["metrics"]["accuracy"] == 0.0


def test_score_judged_benchmark_uses_stored_outputs(tmp_path):
    ref = {"question": "How many?", "question_type": "counting", "image_content": ["dog"], "gt_answer": "One."}
    samples = [
        {"benchmark": "mmhal", "id": "1", "prompt": "How many?", "response": "One dog.", "reference": ref,
         "judge": {"model": "gpt-test", "outputs": ["Accurate.\nRating: 5"]}},
        {"benchmark": "mmhal", "id": "2", "prompt": "How many?", "response": "Two dogs.", "reference": ref,
         "judge": {"model": "gpt-test", "outputs": ["Wrong count. Rating: 1"]}},
        {"benchmark": "mmhal", "id": "3", "prompt": "How many?", "response": "?", "reference": ref,
         "judge": {"model": "gpt-test", "outputs": ["no verdict"]}},
    ]
    path = write_samples(tmp_path / "samples.jsonl", samples)
    result = run_cli("score", "mmhal", str(path), "--out", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["metrics"]["score"] == 3.0 and r["metrics"]["hallucination_rate"] == 50.0
    assert r["n"] == 3 and r["n_failed"] == 1
    assert r["config"]["judge_model"] == "gpt-test"
    assert "flagged" in r  # 1 of 3 failed > 5%


def test_score_other_formats(tmp_path):
    cases = {
        "textvqa": ({"answers": ["2"] * 10}, "Two", "accuracy", 100.0),
        "gqa": ({"answer": "left"}, "Left.", "accuracy", 100.0),
        "coco_recall": ({"objects": ["dog", "person"], "vocabulary": "coco"}, "A dog.", "recall", 50.0),
    }
    for name, (reference, response, metric, expected) in cases.items():
        path = write_samples(tmp_path / f"{name}.jsonl", [{"benchmark": name, "id": "a", "prompt": "p",
                                                            "response": response, "reference": reference}])
        out = tmp_path / f"{name}.json"
        assert run_cli("score", name, str(path), "--out", str(out)).returncode == 0
        assert json.loads(out.read_text())["metrics"][metric] == pytest.approx(expected)
    mmvet = write_samples(tmp_path / "mmvet.jsonl", [{
        "benchmark": "mmvet", "id": "v1", "prompt": "p", "response": "5",
        "reference": {"question": "2+3?", "answer": "5<OR>five", "capability": ["math"]},
        "judge": {"model": "m", "outputs": ["1.0", "0.5"]}}])
    assert run_cli("score", "mmvet", str(mmvet), "--out", str(tmp_path / "mv.json")).returncode == 0
    assert json.loads((tmp_path / "mv.json").read_text())["metrics"]["cap/math"] == pytest.approx(75.0)
    llava = write_samples(tmp_path / "llava.jsonl", [{
        "benchmark": "llava_w", "id": "0", "prompt": "p", "response": "r",
        "reference": {"question": "q", "category": "complex", "caption": "c", "gpt_answer": "a"},
        "judge": {"model": "m", "outputs": ["8 6\nbecause"]}}])
    assert run_cli("score", "llava_w", str(llava), "--out", str(tmp_path / "lw.json")).returncode == 0
    assert json.loads((tmp_path / "lw.json").read_text())["metrics"]["complex/relative_score"] == pytest.approx(75.0)


def test_malformed_line_reports_line_number_and_writes_nothing(tmp_path):
    good = {"benchmark": "gqa", "id": "a", "prompt": "p", "response": "x", "reference": {"answer": "x"}}
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps(good) + "\n" + "{not json\n")
    out = tmp_path / "results.json"
    result = run_cli("score", "gqa", str(path), "--out", str(out))
    assert result.returncode == 2
    assert ":2:" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()

    path.write_text(json.dumps({**good, "reference": {}}) + "\n")
    result = run_cli("score", "gqa", str(path), "--out", str(out))
    assert result.returncode == 2 and "answer" in result.stderr and not out.exists()

    judged = tmp_path / "judged.jsonl"
    write_samples(judged, [{"benchmark": "mmvet", "id": "1", "prompt": "p", "response": "r",
                            "reference": {"question": "q", "answer": "a", "capability": []}}])
    result = run_cli("score", "mmvet", str(judged))
    assert result.returncode == 2 and "judge" in result.stderr


def test_list_and_unknown_benchmark():
    result = run_cli("list")
    assert result.returncode == 0
    for name in ("pope", "mmhal", "mmhal_v", "llava_w", "textvqa", "gqa", "mmvet", "coco_recall"):
        assert name in result.stdout
    assert "lmms-lab/POPE" in result.stdout
    bad = run_cli("inspect", "popee")
    assert bad.returncode == 2 and "did you mean 'pope'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_inspect_shows_exact_prompts(tmp_path):
    (tmp_path / "gqa").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "gqa" / "n9.png")
    write_samples(tmp_path / "gqa" / "q.jsonl", [{"id": "9", "question": "What colour is the cup?",
                                                  "answer": "red", "image": "n9.png"}])
    result = run_cli("inspect", "gqa", "--data", str(tmp_path), "-n", "1")
    assert result.returncode == 0, result.stderr
    assert "What colour is the cup?" in result.stdout
    assert "Answer the question using a single word or phrase." in result.stdout
