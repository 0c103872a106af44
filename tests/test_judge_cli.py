"""`mmbench score --rejudge` and failing fast, through the real command line (subprocess)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from fake_openai_server import FakeOpenAIServer
from PIL import Image

from mmbench.errors import MmbenchError
from mmbench.harness.judge_client import JudgeConfig
from mmbench.harness.judge_runner import check_judge_ready

KEY_ENV = "MMBENCH_TEST_JUDGE_KEY"
KEY = "sk-test-4f1a-DISTINCTIVE-9c2e"


def mmhal_samples(benchmark: str = "mmhal") -> list[dict]:
    return [{"benchmark": benchmark, "id": str(i), "prompt": "Q?", "response": f"An answer. [[{rating}]]",
             "image": f"images/{i}.png",
             "reference": {"question": f"Question {i}?", "question_type": "counting",
                           "image_content": ["Dog"], "gt_answer": "One dog."}}
            for i, rating in enumerate([6, 2, 4])]  # score 4.0, hallucination rate 33.3


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "run"
    (folder / "images").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (4, 4), (60 * i, 0, 0)).save(folder / "images" / f"{i}.png")
    for name in ("mmhal", "mmhal_v"):
        lines = [json.dumps(s) for s in mmhal_samples(name)]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def mmbench(args, tmp_path, key: str | None = KEY) -> subprocess.CompletedProcess:
    """The real command in a fresh process (exit codes and stderr exactly as a user sees them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k != KEY_ENV}
    env["MMBENCH_CACHE"] = str(tmp_path / "mmbench-cache")  # the default cache stays inside the test folder
    if key is not None:
        env[KEY_ENV] = key
    return subprocess.run([sys.executable, "-m", "mmbench", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """The same entry point in this process (saves a start-up per call); returns (exit code, stderr)."""
    from mmbench.cli import main

    def run(args, key: str | None = KEY) -> tuple[int, str]:
        for name in [k for k in os.environ if k.startswith("OPENAI_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "mmbench-cache"))
        if key is None:
            monkeypatch.delenv(KEY_ENV, raising=False)
        else:
            monkeypatch.setenv(KEY_ENV, key)
        monkeypatch.setattr(sys, "argv", ["mmbench", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        return code, capsys.readouterr().err

    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rejudge_then_score_then_rerun(tmp_path, run_dir, cli):
    samples = run_dir / "mmhal.jsonl"
    with FakeOpenAIServer() as server:
        judge = ["--judge-base-url", server.url, "--judge-api-key-env", KEY_ENV]
        code, err = cli(["score", "mmhal", samples, "--rejudge", *judge])
        assert code == 0, err
        assert len(server.received) == 3
        assert (tmp_path / "mmbench-cache" / "judge_cache.sqlite").exists()  # the default cache
        results = json.loads((run_dir / "results.json").read_text())
        assert results["metrics"]["score"] == pytest.approx(4.0) and results["n_failed"] == 0
        assert results["config"]["judge"]["model"] == "gpt-4.1-2025-04-14"
        assert results["config"]["judge"]["cache_misses"] == 3
        assert results["config"]["judge"]["api_key_env"] == KEY_ENV
        stored = [json.loads(line) for line in samples.read_text().splitlines()]
        last_lines = [s["judge"]["outputs"][0].splitlines()[-1] for s in stored]
        assert last_lines == ["Rating: 6", "Rating: 2", "Rating: 4"]
        assert all("_line" not in s for s in stored)

        server.reset()
        code, err = cli(["score", "mmhal", samples, "--out", tmp_path / "plain.json"], key=None)
        assert code == 0, err
        assert json.loads((tmp_path / "plain.json").read_text())["metrics"] == results["metrics"]
        code, err = cli(["score", "mmhal", samples, "--rejudge", *judge])
        assert code == 0 and server.received == []  # stored outputs / the cache: no call
        assert json.loads((run_dir / "results.json").read_text())["config"]["judge"]["cache_hits"] == 3

        prompt = tmp_path / "prompt.txt"
        prompt.write_text("Grade it; end with Rating: N.\nQ: {question}\nA: {response}\n")
        code, err = cli(["score", "mmhal", samples, "--rejudge", *judge, "--judge-prompt", prompt,
                         "--judge-model", "my-judge", "--out", tmp_path / "custom" / "results.json"])
        assert code == 0, err
        assert len(server.received) == 3 and {r.body["model"] for r in server.received} == {"my-judge"}
        assert server.received[0].text.startswith("Grade it;")
    results = json.loads((tmp_path / "custom" / "results.json").read_text())
    assert str(results["config"]["judge"]["prompt_version"]).startswith("1+custom-")
    assert results["config"]["judge_model"] == "my-judge"
    assert (tmp_path / "custom" / "samples.jsonl").exists()
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path


def test_rejudge_vision_resends_images_and_rebases_paths(tmp_path, run_dir, cli):
    with FakeOpenAIServer() as server:
        code, err = cli(["score", "mmhal_v", run_dir / "mmhal_v.jsonl", "--rejudge", "--judge-base-url",
                         server.url, "--no-judge-cache", "--out", tmp_path / "elsewhere" / "results.json"],
                        key=None)
        assert code == 0, err
        assert all(len(r.image_urls) == 1 for r in server.received) and len(server.received) == 3
        assert {r.body["model"] for r in server.received} == {"gpt-4o-2024-08-06"}
    moved = [json.loads(line) for line in (tmp_path / "elsewhere" / "samples.jsonl").read_text().splitlines()]
    assert moved[0]["image"] == str((run_dir / "images" / "0.png").resolve())
    assert not (tmp_path / "mmbench-cache").exists()  # --no-judge-cache wrote no cache


def test_missing_key_and_base_url_exits_2_with_one_line(tmp_path, run_dir):
    done = mmbench(["score", "mmhal", run_dir / "mmhal.jsonl", "--rejudge"], tmp_path, key=None)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "OPENAI_API_KEY" in lines[0] and "--judge-base-url" in lines[0]


def test_unreachable_base_url_exits_2_with_one_line(tmp_path, run_dir):
    url = f"http://127.0.0.1:{free_port()}/v1"
    args = ["score", "mmhal", run_dir / "mmhal.jsonl", "--rejudge", "--judge-base-url", url]
    done = mmbench(args, tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach" in lines[0] and url in lines[0]


def test_check_judge_ready(monkeypatch):
    from mmbench.benchmarks import get_benchmark

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MmbenchError, match=r"\$OPENAI_API_KEY is not set"):
        check_judge_ready(JudgeConfig())
    check_judge_ready(JudgeConfig(), [get_benchmark("pope")])  # nothing judged, nothing needed
    monkeypatch.setenv("OPENAI_API_KEY", "sk-anything")
    check_judge_ready(JudgeConfig())  # a key is enough for api.openai.com; no network touched
    with FakeOpenAIServer() as server:
        monkeypatch.delenv("OPENAI_API_KEY")
        check_judge_ready(JudgeConfig(base_url=server.url))  # a local server needs no key
    with pytest.raises(MmbenchError, match="cannot reach"):
        check_judge_ready(JudgeConfig(base_url=f"http://127.0.0.1:{free_port()}/v1"))
    with pytest.raises(MmbenchError, match="AZURE_KEY"):
        check_judge_ready(JudgeConfig(base_url="https://x.openai.azure.com", api_key_env="AZURE_KEY"))
