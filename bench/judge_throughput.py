"""Judge client throughput against a local OpenAI-compatible server with fixed added latency.

    python bench/judge_throughput.py [--requests 500] [--latency 0.05] [--concurrency 8 32]

The server runs in its own process (so it does not compete for our GIL); every request is
distinct, goes through the real openai SDK and the SQLite cache (a fresh file, so all misses).
The timed call includes building the client and closing it, as every `judge()` call does.
Prints wall time against the ideal `requests × latency / concurrency`; the target ratio is ≤ 1.3.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), "--latency",
                                str(latency)], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().split()
    if len(line) != 2 or line[0] != "PORT":
        process.kill()
        raise SystemExit(f"server did not start: {line}")
    return process, f"http://127.0.0.1:{line[1]}/v1"


def run(url: str, requests: int, concurrency: int, cache_dir: Path) -> float:
    from mmbench.benchmarks.textnorm import parse_rating
    from mmbench.harness.judge_client import JudgeConfig, OpenAIJudge
    from mmbench.harness.judging import JudgeRequest

    config = JudgeConfig(base_url=url, api_key_env="MMBENCH_BENCH_NO_KEY", concurrency=concurrency,
                         cache_path=cache_dir / f"cache-{concurrency}.sqlite")
    judge = OpenAIJudge(config, "bench-judge")
    batch = [JudgeRequest(benchmark="mmhal", sample_id=str(i),
                          messages=[{"role": "user", "content": f"Rating: N [[{i % 7}]] request {i}"}])
             for i in range(requests)]
    start = time.perf_counter()
    verdicts = judge.judge(batch, parse_rating)
    wall = time.perf_counter() - start
    assert all(parse_rating(v) is not None for v in verdicts), "some verdicts did not parse"
    assert judge.stats.cache_misses == requests, judge.stats
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 16, 32])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    process, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # untimed warm-up: the one-off SDK import (~0.5 s) is not per-request throughput
            run(url, 1, 1, Path(tmp) / "warm")
            for concurrency in args.concurrency:
                wall = run(url, args.requests, concurrency, Path(tmp))
                ideal = args.requests * args.latency / concurrency
                print(f"requests={args.requests} latency={args.latency * 1000:.0f}ms "
                      f"concurrency={concurrency}: "
                      f"wall {wall:.2f}s, ideal {ideal:.2f}s, ratio {wall / ideal:.2f}")
    finally:
        process.kill()
        process.wait()


if __name__ == "__main__":
    main()
