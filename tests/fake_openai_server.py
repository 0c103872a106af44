"""A local stand-in for an OpenAI-compatible chat-completions server (stdlib only), for tests and
bench/judge_throughput.py.

Verdicts are derived from the request, so expected metrics can be computed by hand: the model
response inside the judge prompt carries a marker,
  [[5]]        -> the verdict's value (MMHal "Rating: 5", LLaVA-W "8 5", MM-Vet "5"),
  [[garbage]]  -> an unparseable verdict every time,
  [[flaky:4]]  -> unparseable at temperature 0, value 4 at any higher temperature;
a pairwise prompt carries one marker per answer and the higher value wins.
Faults (429 with Retry-After, 500, slow answers, garbage text, a malformed 200 body) can be
injected on a share of calls, never more than `max_in_a_row` times in a row for one request.

Run `python tests/fake_openai_server.py --latency 0.05` to serve in a separate process; it prints
`PORT <n>` once listening.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GARBAGE = "I would rather not grade this one."
_MARKER = re.compile(r"\[\[([a-z]+)?:?([0-9.]+)?\]\]")


@dataclass
class Faults:
    rate: float = 0.0
    kinds: tuple[str, ...] = ("429", "500", "slow", "garbage")
    seed: int = 0
    max_in_a_row: int = 2
    retry_after: str = "0"
    slow_s: float = 1.0  # longer than the client's timeout in tests, so it times out


@dataclass
class Received:
    time: float
    body: dict
    headers: dict
    status: int
    fault: str | None = None
    path: str = ""

    @property
    def text(self) -> str:
        return prompt_text(self.body)

    @property
    def image_urls(self) -> list[str]:
        return [part["image_url"]["url"] for m in self.body.get("messages", [])
                if isinstance(m.get("content"), list)
                for part in m["content"] if part.get("type") == "image_url"]


def prompt_text(body: dict) -> str:
    texts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p.get("text", "") for p in content if p.get("type") == "text")
    return "\n".join(texts)


def _value(match: re.Match | None, temperature: float, default: float) -> float | None:
    """The marker's value, or None when this call must answer garbage."""
    if match is None:
        return default
    kind, number = match.group(1), match.group(2)
    if kind == "garbage" or (kind == "flaky" and temperature == 0):
        return None
    return float(number) if number else default


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def verdict_for(body: dict) -> str:
    text = prompt_text(body)
    temperature = float(body.get("temperature") or 0.0)
    markers = list(_MARKER.finditer(text))
    if "Better: A" in text:  # pairwise: the higher marker wins
        a, b = (_value(m, temperature, 0) for m in (markers + [None, None])[:2])
        if a is None or b is None:
            return GARBAGE
        return "Both are fine.\nBetter: " + ("A" if a > b else "B" if b > a else "tie")
    first = markers[0] if markers else None
    if "Rating: N" in text:  # MMHal / MMHal-V
        value = _value(first, temperature, 3)
        return GARBAGE if value is None else f"The answer is graded by its marker.\nRating: {int(value)}"
    if "[Assistant 2]" in text:  # LLaVA-W: the reference always gets 8
        value = _value(first, temperature, 5)
        return GARBAGE if value is None else f"8 {_num(value)}\nAssistant 1 is the reference."
    if "Correctness" in text:  # MM-Vet
        value = _value(first, temperature, 0.5)
        return GARBAGE if value is None else _num(value)
    return GARBAGE


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the bench opens many connections at once
    daemon_threads = True


class FakeOpenAIServer:
    """`with FakeOpenAIServer() as s:` serves on 127.0.0.1:<random port>; `s.url` is the base URL."""

    def __init__(self, latency_s: float = 0.0, faults: Faults | None = None, auth_status: int | None = None):
        self.latency_s = latency_s
        self.faults = faults or Faults()
        self.auth_status = auth_status  # e.g. 401: answer every call with that error, echoing the key
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}  # calls per distinct request body
        self._in_a_row: dict[str, int] = {}
        self._in_flight = 0
        self.max_in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> FakeOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
            disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms ACK stall

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                received = {k.lower(): v for k, v in self.headers.items()}
                status, headers, payload = server._respond(self.path, body, received)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in {**headers, "Content-Type": "application/json",
                                        "Content-Length": str(len(data))}.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.max_in_flight = 0

    def _pick_fault(self, body: dict) -> str | None:
        """Drawn from a hash of (seed, request, how often it was seen): the same faults whatever
        order concurrent requests arrive in."""
        key = json.dumps(body, sort_keys=True)
        with self._lock:
            seen = self._seen[key] = self._seen.get(key, 0) + 1
            digest = hashlib.sha256(f"{self.faults.seed}:{seen}:{key}".encode()).digest()
            draw = int.from_bytes(digest[:8], "big") / 2 ** 64
            if draw >= self.faults.rate or self._in_a_row.get(key, 0) >= self.faults.max_in_a_row:
                self._in_a_row[key] = 0
                return None
            self._in_a_row[key] = self._in_a_row.get(key, 0) + 1
            return self.faults.kinds[digest[8] % len(self.faults.kinds)]

    def _respond(self, path: str, body: dict, headers: dict) -> tuple[int, dict, dict | bytes]:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return self._answer(path, body, headers)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _answer(self, url: str, body: dict, headers: dict) -> tuple[int, dict, dict | bytes]:
        path = url.split("?", 1)[0]  # Azure adds ?api-version=...
        fault = self._pick_fault(body) if path.endswith("/chat/completions") else None
        status = self.auth_status or {"429": 429, "500": 500}.get(fault, 200)
        if not path.endswith("/chat/completions"):
            status = 404
        with self._lock:
            self.received.append(Received(time.monotonic(), body, headers, status, fault, url))
        if status == 404:
            return 404, {}, {"error": {"message": f"no route {path}"}}
        if self.auth_status:
            key = headers.get("authorization", "").removeprefix("Bearer ")
            error = {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error"}
            return status, {}, {"error": error}
        if fault == "429":
            return 429, {"Retry-After": self.faults.retry_after}, {"error": {"message": "slow down"}}
        if fault == "500":
            return 500, {}, {"error": {"message": "server fell over"}}
        if fault == "malformed":  # a proxy's error page served with status 200
            return 200, {}, b"<html>upstream hiccup</html>"
        time.sleep(self.faults.slow_s if fault == "slow" else self.latency_s)
        content = GARBAGE if fault == "garbage" else verdict_for(body)
        prompt_tokens = len(prompt_text(body).split())
        return 200, {}, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(content.split()),
                      "total_tokens": prompt_tokens + len(content.split())},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    args = parser.parse_args()
    server = FakeOpenAIServer(latency_s=args.latency).start()
    print(f"PORT {server.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
