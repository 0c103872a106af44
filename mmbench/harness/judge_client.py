"""The one judge client: OpenAI, Azure OpenAI or any OpenAI-compatible server (vLLM, ...),
through the official `openai` SDK.

`OpenAIJudge.judge()` is synchronous and runs its own event loop: requests go out concurrently
(at most `concurrency` in flight), transient failures (429, 5xx, timeouts, dropped connections)
are retried with jittered exponential backoff that honours `Retry-After`, and a verdict the
benchmark cannot parse is asked again at rising temperature.  Every answer goes through the
disk cache.  Nothing here reads the environment or builds a client until a judge is used; the
API key is read from the named environment variable at call time and never stored.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mmbench.errors import MmbenchError
from mmbench.harness.judge_cache import CachedAnswer, JudgeCache, default_cache_path, request_key
from mmbench.harness.judging import JudgeRequest

log = logging.getLogger("mmbench.judge")

OPENAI_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "EMPTY"  # what vLLM and most local servers accept when they check no key
DEFAULT_AZURE_API_VERSION = "2024-10-21"
_RETRY_STATUS = {408, 409, 429}  # plus every 5xx
RETRY_AFTER_CAP_S = 600.0  # a server asking for longer than this is treated as down, not busy
_FATAL_STATUS = {401: "rejected the API key", 403: "refused access", 404: "does not know the model or path"}


@dataclass
class JudgeConfig:
    """How to reach the judge.  The CLI's --judge-* options map onto these fields one to one."""

    model: str | None = None  # None: the benchmark's JudgeSpec.default_model
    base_url: str | None = None  # None: api.openai.com; an Azure endpoint or a local server otherwise
    api_key_env: str = "OPENAI_API_KEY"  # the NAME of the variable; the key itself is never stored
    cache_path: Path | None = None  # None: default_cache_path()
    use_cache: bool = True
    concurrency: int = 8
    prompt_file: Path | None = None  # a template replacing JudgeSpec.default_template
    runs: int | None = None  # judge runs per sample; None: JudgeSpec.runs
    azure_api_version: str | None = None  # set (or an *.openai.azure.com URL) to use Azure's client
    timeout_s: float = 120.0
    max_attempts: int = 8  # network tries per request before the request counts as unanswered
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    parse_tries: int = 5  # MM-Vet's grader asks up to five times
    temperature_step: float = 0.5
    temperature_cap: float = 1.0

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    @property
    def is_azure(self) -> bool:
        host = (urlsplit(self.base_url).hostname or "") if self.base_url else ""
        return self.azure_api_version is not None or host.endswith(".openai.azure.com")


@dataclass
class JudgeStats:
    """Counted per judge; `*_tokens` are what this process paid for (cache misses only)."""

    cache_hits: int = 0
    cache_misses: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0  # transient failures that were retried
    unanswered: int = 0  # requests that got no answer after every network try

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def public_url(url: str | None) -> str | None:
    """The base URL without credentials or query string (some users put keys there)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def data_url(image: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def with_image(messages: list[dict], image: bytes | None, mime: str) -> list[dict]:
    """Attach the image to the last user message as a base64 data URL (vision judges only)."""
    if image is None:
        return messages
    out = [dict(m) for m in messages]
    for message in reversed(out):
        if message.get("role") == "user":
            text = message.get("content") or ""
            parts = text if isinstance(text, list) else [{"type": "text", "text": text}]
            message["content"] = [{"type": "image_url", "image_url": {"url": data_url(image, mime)}}, *parts]
            return out
    raise ValueError("a vision judge request needs a user message to attach the image to")


def try_temperature(base: float, attempt: int, config: JudgeConfig) -> float:
    """0, 0.5, 1.0, 1.0, ... for a base of 0: a re-ask must not repeat a deterministic answer."""
    if attempt == 0:
        return base
    return max(base, min(config.temperature_cap, base + config.temperature_step * attempt))


def retry_after_s(exc: Exception) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms` or `Retry-After` in seconds)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue  # an HTTP date: fall back to our own backoff
    return None


def backoff_s(config: JudgeConfig, failures: int) -> float:
    """Exponential backoff with jitter so that many waiting requests do not retry in lockstep."""
    ceiling = min(config.backoff_max_s, config.backoff_base_s * 2 ** failures)
    return ceiling * (0.5 + random.random() / 2)


def _run_sync(make_coro: Callable[[], Any]) -> Any:
    """Run a coroutine to completion from sync code, even when the caller already has a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()


class OpenAIJudge:
    """A `Judge` (see judging.py) over an OpenAI-compatible chat-completions endpoint."""

    def __init__(self, config: JudgeConfig, model: str):
        self.config = config
        self.model = model
        self.stats = JudgeStats()
        self.cache: JudgeCache | None = None
        if config.use_cache:
            self.cache = JudgeCache(config.cache_path or default_cache_path())

    # ------------------------------------------------------------------ public, sync

    def judge(self, requests: Sequence[JudgeRequest], parse: Callable[[str], Any]) -> list[str | None]:
        """Raw verdict per request, in order: the first text that `parse` accepts, else the last
        text received, else None when no answer could be had."""
        if not requests:
            return []
        return _run_sync(lambda: self._judge_all(list(requests), parse))

    def describe(self) -> dict:
        """What results.json records about the judge (never the key)."""
        return {"model": self.model, "base_url": public_url(self.config.base_url) or OPENAI_URL,
                "api_key_env": self.config.api_key_env, "cache": self.cache is not None,
                **self.stats.as_dict()}

    # ------------------------------------------------------------------ async machinery

    def _client(self):
        import openai  # imported here so that importing mmbench never pulls in the SDK

        key = self.config.api_key() or (PLACEHOLDER_KEY if self.config.base_url else None)
        if key is None:
            raise MmbenchError(f"judge: ${self.config.api_key_env} is not set and no --judge-base-url given")
        # max_retries=0: our loop governs retries (it honours Retry-After and counts them)
        common = {"api_key": key, "max_retries": 0, "timeout": self.config.timeout_s}
        if self.config.is_azure:
            version = self.config.azure_api_version or DEFAULT_AZURE_API_VERSION
            return openai.AsyncAzureOpenAI(azure_endpoint=self.config.base_url, api_version=version, **common)
        return openai.AsyncOpenAI(base_url=self.config.base_url or OPENAI_URL, **common)

    async def _judge_all(self, requests: list[JudgeRequest], parse) -> list[str | None]:
        client = self._client()
        semaphore = asyncio.Semaphore(max(1, self.config.concurrency))
        tasks = [asyncio.ensure_future(self._judge_one(client, semaphore, r, parse)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:  # a fatal error (bad key, unknown model) stops the whole batch
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            await client.close()

    async def _judge_one(self, client, semaphore, request: JudgeRequest, parse) -> str | None:
        text = None
        for attempt in range(max(1, self.config.parse_tries)):
            temperature = try_temperature(request.temperature, attempt, self.config)
            answer = await self._ask(client, semaphore, request, temperature, attempt)
            if answer is None:
                return text
            text = answer
            if parse(text) is not None:
                return text
        log.warning("judge: %s/%s unparseable after %d tries", request.benchmark, request.sample_id,
                    self.config.parse_tries)
        return text

    async def _ask(self, client, semaphore, request: JudgeRequest, temperature: float,
                   attempt: int) -> str | None:
        key = request_key(self.model, request, temperature, attempt)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.stats.cache_hits += 1
                return hit.text
        answer = await self._send(client, semaphore, request, temperature)
        if answer is None:
            return None
        self.stats.cache_misses += 1
        self.stats.prompt_tokens += answer.prompt_tokens
        self.stats.completion_tokens += answer.completion_tokens
        if self.cache is not None:
            self.cache.put(key, self.model, answer, request.benchmark, request.sample_id)
        return answer.text

    async def _send(self, client, semaphore, request: JudgeRequest,
                    temperature: float) -> CachedAnswer | None:
        import openai

        messages = with_image(request.messages, request.image, request.image_mime)
        last_error = "no attempt"
        for failures in range(max(1, self.config.max_attempts)):
            try:
                async with semaphore:
                    completion = await client.chat.completions.create(
                        model=self.model, messages=messages, temperature=temperature,
                        max_tokens=request.max_tokens)
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status in _FATAL_STATUS:
                    raise MmbenchError(self._fatal_message(status)) from None
                if status not in _RETRY_STATUS and status < 500:
                    log.warning("judge: %s/%s refused with HTTP %d", request.benchmark,
                                request.sample_id, status)
                    self.stats.unanswered += 1
                    return None
                last_error, wait = f"HTTP {status}", retry_after_s(exc)
            # timeouts, dropped connections, malformed bodies (the SDK lets JSONDecodeError out)
            except (openai.APIConnectionError, openai.APIError, ValueError) as exc:
                last_error, wait = type(exc).__name__, None
            else:
                return _answer(completion)
            self.stats.retries += 1
            if failures + 1 < self.config.max_attempts:
                # sleep outside the semaphore so that other requests use the free slot meanwhile
                delay = min(wait, RETRY_AFTER_CAP_S) if wait is not None else backoff_s(self.config, failures)
                await asyncio.sleep(delay)
        log.warning("judge: %s/%s got no answer after %d tries (last: %s)", request.benchmark,
                    request.sample_id, self.config.max_attempts, last_error)
        self.stats.unanswered += 1
        return None

    def _fatal_message(self, status: int) -> str:
        where = public_url(self.config.base_url) or "api.openai.com"
        hint = f" (key from ${self.config.api_key_env})" if status in (401, 403) \
            else f" (model {self.model!r})"
        return f"judge: {where} {_FATAL_STATUS[status]}{hint}, HTTP {status}"


def _answer(completion) -> CachedAnswer:
    choices = getattr(completion, "choices", None) or []
    text = (choices[0].message.content if choices and choices[0].message else None) or ""
    usage = getattr(completion, "usage", None)
    return CachedAnswer(text=text, prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0))


__all__ = ["PLACEHOLDER_KEY", "JudgeConfig", "JudgeStats", "OpenAIJudge", "public_url", "with_image"]
