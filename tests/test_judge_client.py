"""The judge client against a local OpenAI-compatible server: retries, Retry-After, re-asking
unparseable verdicts, concurrency bound, cache keys and crash safety, fatal errors, pairwise."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from fake_openai_server import GARBAGE, FakeOpenAIServer, Faults

from mmbench.benchmarks import get_benchmark
from mmbench.benchmarks.textnorm import parse_rating
from mmbench.errors import MmbenchError
from mmbench.harness.judge_cache import CachedAnswer, JudgeCache, request_key
from mmbench.harness.judge_client import JudgeConfig, OpenAIJudge, try_temperature, with_image
from mmbench.harness.judge_pairwise import OpenAIPairwiseAnnotator, parse_preference
from mmbench.harness.judge_runner import judge_samples, make_judge
from mmbench.harness.judging import JudgeRequest, PairwiseItem

KEY_ENV = "MMBENCH_TEST_JUDGE_KEY"
KEY = "sk-test-4f1a-DISTINCTIVE-9c2e"
MMHAL = get_benchmark("mmhal")


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def config(server, tmp_path, **overrides) -> JudgeConfig:
    fields = {"base_url": server.url, "api_key_env": KEY_ENV, "cache_path": tmp_path / "cache.sqlite",
              "timeout_s": 5.0, "backoff_base_s": 0.001, "backoff_max_s": 0.01}
    return JudgeConfig(**{**fields, **overrides})


def mmhal_sample(sid: str, marker: str, question_type: str = "counting") -> dict:
    return {"benchmark": "mmhal", "id": sid, "prompt": "How many dogs?",
            "response": f"Two dogs. [[{marker}]]",
            "reference": {"question": "How many dogs?", "question_type": question_type,
                          "image_content": ["Dog", "Grass"], "gt_answer": "There are two dogs."}}


def request(text: str, **fields) -> JudgeRequest:
    messages = [{"role": "user", "content": text}]
    return JudgeRequest(benchmark="mmhal", sample_id="x", messages=messages, **fields)


# ---------------------------------------------------------------- pure pieces

def test_cache_key_covers_every_request_part():
    base = request("hello")
    key = request_key("m", base, 0.0, 0)
    assert key == request_key("m", request("hello"), 0.0, 0)
    variants = [request_key("m2", base, 0.0, 0), request_key("m", request("hello!"), 0.0, 0),
                request_key("m", base, 0.5, 0), request_key("m", base, 0.0, 1),
                request_key("m", request("hello", run=1), 0.0, 0),
                request_key("m", request("hello", max_tokens=7), 0.0, 0),
                request_key("m", request("hello", prompt_version="1+custom-abc"), 0.0, 0),
                request_key("m", request("hello", image=b"png-bytes"), 0.0, 0)]
    assert key not in variants and len(set(variants)) == len(variants)
    # context is never part of the key
    assert request_key("m", request("hello", context={"id": "other"}), 0.0, 0) == key


def test_rising_temperature_is_capped():
    cfg = JudgeConfig()
    assert [try_temperature(0.0, a, cfg) for a in range(5)] == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert try_temperature(0.2, 0, cfg) == 0.2


def test_image_goes_to_last_user_message_as_data_url():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "look"}]
    out = with_image(messages, b"\x89PNGdata", "image/png")
    assert out[0] == messages[0] and messages[1]["content"] == "look"  # input untouched
    parts = out[1]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": "look"}


def test_parse_preference():
    assert parse_preference("A is vague.\nBetter: B") == "B"
    assert parse_preference("**Better:** a") == "A"
    assert parse_preference("Better: tie") == "tie"
    assert parse_preference("Better: A, no wait, Better: B") is None
    assert parse_preference("I prefer the second") is None


def test_cache_shared_by_threads_and_connections(tmp_path):
    path = tmp_path / "c.sqlite"

    def write(prefix: str) -> None:
        cache = JudgeCache(path)  # a second handle, as another process would open
        for i in range(100):
            cache.put(f"{prefix}{i}", "m", CachedAnswer(f"text {i}", 3, 1))
        cache.close()

    threads = [threading.Thread(target=write, args=(p,)) for p in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cache = JudgeCache(path)
    assert len(cache) == 200 and cache.get("b7") == CachedAnswer("text 7", 3, 1)
    assert cache.path.with_name("c.sqlite-wal").exists()  # WAL mode


def test_importing_mmbench_loads_no_sdk():
    code = ("import sys, mmbench.cli, mmbench.harness.judge_runner, mmbench.harness.judge_pairwise; "
            "assert 'openai' not in sys.modules, 'openai imported at import time'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- against the server

def test_retries_honour_retry_after(tmp_path):
    faults = Faults(rate=1.0, kinds=("429",), max_in_a_row=1, retry_after="0.3")
    with FakeOpenAIServer(faults=faults) as server:
        judge = OpenAIJudge(config(server, tmp_path, use_cache=False), "m")
        assert parse_rating(judge.judge([request("Rating: N [[4]]")], parse_rating)[0]) == 4
        first, second = server.received
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 0.28  # waited as asked, not our 1 ms backoff
    assert judge.stats.retries == 1


@pytest.mark.parametrize("kind", ["500", "slow", "malformed"])
def test_500_timeouts_and_malformed_bodies_are_retried(kind, tmp_path):
    with FakeOpenAIServer(faults=Faults(rate=1.0, kinds=(kind,), max_in_a_row=2, slow_s=0.6)) as server:
        judge = OpenAIJudge(config(server, tmp_path, use_cache=False, timeout_s=0.3), "m")
        verdicts = judge.judge([request(f"Rating: N [[{i}]]") for i in range(3)], parse_rating)
        assert [r.fault for r in server.received].count(kind) == 6
    assert [parse_rating(v) for v in verdicts] == [0, 1, 2]
    assert judge.stats.retries == 6 and judge.stats.unanswered == 0


def test_unparseable_verdict_asked_five_times_then_fails(tmp_path):
    samples = [mmhal_sample("ok", "5"), mmhal_sample("bad", "garbage"), mmhal_sample("flaky", "flaky:4")]
    with FakeOpenAIServer() as server:
        judged = judge_samples(MMHAL, samples, make_judge(MMHAL, config(server, tmp_path)))
        temperatures = {sid: [r.body["temperature"] for r in server.received if f"[[{m}]]" in r.text]
                        for sid, m in (("bad", "garbage"), ("flaky", "flaky:4"), ("ok", "5"))}
    assert temperatures == {"bad": [0, 0.5, 1.0, 1.0, 1.0], "flaky": [0, 0.5], "ok": [0]}
    outputs = {s["id"]: s["judge"]["outputs"] for s in judged}
    assert outputs["bad"] == [GARBAGE]  # the last raw text is what gets stored
    assert parse_rating(outputs["flaky"][0]) == 4


def test_unanswered_request_is_not_cached(tmp_path):
    with FakeOpenAIServer(faults=Faults(rate=1.0, kinds=("500",), max_in_a_row=99)) as server:
        cfg = config(server, tmp_path, max_attempts=3)
        judged = judge_samples(MMHAL, [mmhal_sample("a", "5")], make_judge(MMHAL, cfg))
        assert judged[0]["judge"]["outputs"] == [] and len(server.received) == 3
        judge_samples(MMHAL, [mmhal_sample("a", "5")], make_judge(MMHAL, cfg))
        assert len(server.received) == 6  # asked again: a failure is never a cached answer


def test_concurrency_is_bounded(tmp_path):
    with FakeOpenAIServer(latency_s=0.05) as server:
        judge = OpenAIJudge(config(server, tmp_path, use_cache=False, concurrency=3), "m")
        judge.judge([request(f"Rating: N [[{i % 7}]]") for i in range(12)], parse_rating)
        assert 2 <= server.max_in_flight <= 3


def test_crash_keeps_received_verdicts(tmp_path):
    samples = [mmhal_sample(str(i), str(i)) for i in range(7)]  # ratings 0..6, distinct requests

    def crashing_parse(text):
        if "Rating: 2" in text:
            raise RuntimeError("simulated crash")
        return parse_rating(text)

    crashing = MMHAL.judge.__class__(**{**MMHAL.judge.__dict__, "parse": crashing_parse})
    with FakeOpenAIServer() as server:
        cfg = config(server, tmp_path, concurrency=1)
        with pytest.raises(RuntimeError):
            benchmark = MMHAL.__class__(**{**MMHAL.__dict__, "judge": crashing})
            judge_samples(benchmark, samples, make_judge(MMHAL, cfg))
        kept = len(JudgeCache(cfg.cache_path))
        assert kept >= 3  # samples 0, 1, 2 were answered before the crash
        server.reset()
        judge_samples(MMHAL, samples, make_judge(MMHAL, cfg))
        assert len(server.received) == len(samples) - kept


def test_fatal_status_stops_with_one_line_without_the_key(tmp_path, caplog):
    with FakeOpenAIServer(auth_status=401) as server:
        judge = OpenAIJudge(config(server, tmp_path), "m")
        with pytest.raises(MmbenchError) as info:
            judge.judge([request(f"Rating: N [[{i}]]") for i in range(5)], parse_rating)
        assert server.received[0].headers["authorization"] == f"Bearer {KEY}"  # the server echoed it back
    message = str(info.value)
    assert "401" in message and KEY_ENV in message and "\n" not in message
    assert KEY not in message and KEY not in caplog.text
    assert KEY.encode() not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_local_server_works_without_a_key(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with FakeOpenAIServer() as server:
        judge = OpenAIJudge(config(server, tmp_path, use_cache=False), "m")
        assert parse_rating(judge.judge([request("Rating: N [[6]]")], parse_rating)[0]) == 6
        assert server.received[0].headers["authorization"] == "Bearer EMPTY"


def test_azure_client(tmp_path):
    with FakeOpenAIServer() as server:
        endpoint = server.url.removesuffix("/v1")
        cfg = config(server, tmp_path, base_url=endpoint, azure_api_version="2024-10-21")
        judge = OpenAIJudge(cfg, "my-gpt4o")
        assert parse_rating(judge.judge([request("Rating: N [[5]]")], parse_rating)[0]) == 5
        sent = server.received[0]
    assert sent.path == "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
    assert sent.headers["api-key"] == KEY


def test_pairwise_annotator(tmp_path):
    items = [PairwiseItem("Describe it.", "A cat [[3]]", "A dog [[7]]", image=b"\x89PNG fake"),
             PairwiseItem("Describe it.", "A cat [[5]]", "A dog [[2]]"),
             PairwiseItem("Describe it.", "A cat [[4]]", "A dog [[4]]"),
             PairwiseItem("Describe it.", "A cat [[garbage]]", "A dog [[4]]")]
    with FakeOpenAIServer() as server:
        annotator = OpenAIPairwiseAnnotator(config(server, tmp_path))
        assert annotator.prefer(items) == [1, 0, None, None]
        with_image_urls = [r for r in server.received if r.image_urls]
        assert len(with_image_urls) == 1
        assert with_image_urls[0].image_urls[0].startswith("data:image/png;base64,")
        assert annotator.model == "gpt-4o-2024-08-06"
        server.reset()
        assert OpenAIPairwiseAnnotator(config(server, tmp_path)).prefer(items) == [1, 0, None, None]
        assert server.received == []  # same client, same cache
