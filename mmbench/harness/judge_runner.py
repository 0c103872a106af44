"""Judging samples: what the eval runner and `mmbench score --rejudge` call.

`judge_samples` turns samples into `JudgeRequest`s with the benchmark's pure `build_messages`,
hands them to any `Judge` (the OpenAI client or the world's scene judge) and stores the raw
verdicts in `sample["judge"]`; scoring then parses them with no network.  `make_judge` builds
the OpenAI-compatible judge, and `check_judge_ready` fails fast, before any model generation,
when the judge cannot possibly be reached.
"""

from __future__ import annotations

import hashlib
import io
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mmbench.benchmarks.base import Benchmark, JudgeSpec
from mmbench.errors import MmbenchError
from mmbench.harness.judge_client import JudgeConfig, OpenAIJudge, public_url
from mmbench.harness.judging import Judge, JudgeRequest

_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"GIF8", "image/gif"))


# ---------------------------------------------------------------- prompts

def read_template(config: JudgeConfig) -> str | None:
    """The --judge-prompt file's text, or None for the benchmark's own template."""
    if config.prompt_file is None:
        return None
    from mmbench.errors import read_text

    path = Path(config.prompt_file)
    if not path.is_file():
        raise MmbenchError(f"judge prompt file not found: {path}")
    text = read_text(path)
    if not text.strip():
        raise MmbenchError(f"{path}: the judge prompt is empty")
    return text


def check_template_slots(template: str | None, benchmarks: Sequence[Benchmark], where: str = "--judge-prompt") -> None:
    """Before any generation: a custom judge prompt must show the judge each judged benchmark's
    model answer (its response slot), and use no slot the benchmark does not fill."""
    if template is None:
        return
    used = set(re.findall(r"\{(\w+)\}", template))
    for benchmark in benchmarks:
        if benchmark.judge is None:
            continue
        known = set(re.findall(r"\{(\w+)\}", benchmark.judge.default_template))
        slot = benchmark.judge.response_slot
        if slot not in used:
            raise MmbenchError(f"{where}: the judge prompt has no {{{slot}}} slot, so the {benchmark.name} judge "
                               f"would never see the model's answer (slots: {', '.join(sorted(known))})")
        unknown = sorted(used - known)
        if unknown:
            raise MmbenchError(f"{where}: the judge prompt uses slot(s) {', '.join('{' + u + '}' for u in unknown)} "
                               f"that {benchmark.name} does not fill (slots: {', '.join(sorted(known))})")


def prompt_version(spec: JudgeSpec, template: str | None) -> int | str:
    """The benchmark's prompt version; a custom template adds a hash of its text, so that
    verdicts from different prompts never share a cache row or look alike in results."""
    if template is None or template == spec.default_template:
        return spec.prompt_version
    return f"{spec.prompt_version}+custom-{hashlib.sha256(template.encode('utf-8')).hexdigest()[:12]}"


def _check_template(benchmark: Benchmark, messages: list[dict], response: str, template: str) -> None:
    """A custom prompt that never shows the judge the response would grade nothing: refuse it."""
    text = " ".join(m["content"] for m in messages if isinstance(m.get("content"), str))
    if response.strip() and response.replace("\n", " ").strip() not in text.replace("\n", " "):
        slots = ", ".join(sorted(set(re.findall(r"\{(\w+)\}", benchmark.judge.default_template))))
        raise MmbenchError(f"{benchmark.name}: the judge prompt does not include the model's response "
                           f"(slots it may use: {slots})")


# ---------------------------------------------------------------- images

def image_payload(value: Any, root: Path | None = None) -> tuple[bytes, str] | None:
    """(bytes, mime) for raw bytes, a PIL image or a path (relative paths resolve against `root`)."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif hasattr(value, "save"):  # a PIL image: PNG keeps it lossless and its bytes deterministic
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        data = buffer.getvalue()
    else:
        path = Path(value)
        if not path.is_absolute() and root is not None:
            path = Path(root) / path
        if not path.is_file():
            raise MmbenchError(f"image not found for the vision judge: {path}")
        data = path.read_bytes()
    mime = next((m for magic, m in _MAGIC if data.startswith(magic)), None)
    if mime is None:
        mime = "image/webp" if data[8:12] == b"WEBP" else "image/png"
    return data, mime


# ---------------------------------------------------------------- judging

def build_requests(benchmark: Benchmark, samples: Sequence[dict], template: str | None = None,
                   runs: int | None = None, images: Sequence[Any] | None = None,
                   image_root: Path | None = None) -> list[list[JudgeRequest]]:
    """Per sample, one request per judge run (MM-Vet's K runs are separate cache keys)."""
    spec = benchmark.judge
    if spec is None:
        raise MmbenchError(f"{benchmark.name} is not a judged benchmark")
    text = template if template is not None else spec.default_template
    version = prompt_version(spec, template)
    runs = runs or spec.runs
    out = []
    for index, sample in enumerate(samples):
        messages = spec.build_messages(sample["reference"], sample["response"], text)
        if template is not None and index == 0:
            _check_template(benchmark, messages, sample["response"], template)
        image = None
        if spec.vision:
            source = images[index] if images is not None else sample.get("image")
            if source is None:
                raise MmbenchError(f"{benchmark.name}: sample {sample.get('id')!r} has no image "
                                   "for the vision judge")
            image = image_payload(source, image_root)
        context = {"benchmark": benchmark.name, "id": str(sample.get("id")), "reference": sample["reference"],
                   "response": sample["response"]}
        out.append([JudgeRequest(benchmark=benchmark.name, sample_id=str(sample.get("id")), messages=messages,
                                 image=image[0] if image else None,
                                 image_mime=image[1] if image else "image/png",
                                 temperature=spec.temperature, max_tokens=spec.max_tokens, run=run,
                                 prompt_version=version, context=context)
                    for run in range(runs)])
    return out


def judge_samples(benchmark: Benchmark, samples: Sequence[dict], judge: Judge, template: str | None = None,
                  runs: int | None = None, *, images: Sequence[Any] | None = None,
                  image_root: Path | None = None) -> list[dict]:
    """Copies of `samples` with `sample["judge"] = {"model", "outputs"}`, one raw output per run.

    `images` (aligned with samples: PIL images, bytes or paths) overrides `sample["image"]` for
    vision judges; relative paths resolve against `image_root`.  A run that got no answer at all
    is left out of `outputs`, so a sample with none counts as failed when scored."""
    per_sample = build_requests(benchmark, samples, template, runs, images, image_root)
    flat = [request for requests in per_sample for request in requests]
    verdicts = iter(judge.judge(flat, benchmark.judge.parse))
    judged = []
    version = prompt_version(benchmark.judge, template)
    for sample, requests in zip(samples, per_sample, strict=True):
        outputs = [v for v in (next(verdicts) for _ in requests) if v is not None]
        clean = {k: v for k, v in sample.items() if not k.startswith("_")}
        # Who judged, beside the verdicts: a rerun reuses them only from the same judge.
        judged.append({**clean, "judge": {"model": judge.model, "prompt_version": version,
                                          "runs": len(requests), "outputs": outputs}})
    return judged


def judge_summary(benchmark: Benchmark, judge: Judge, template: str | None = None,
                  runs: int | None = None) -> dict:
    """The results.json `config.judge` entry: model, prompt version, cache and token counts."""
    spec = benchmark.judge
    entry = {"model": judge.model, "prompt_version": prompt_version(spec, template),
             "runs": runs or spec.runs, "cache_hits": 0, "cache_misses": 0, "prompt_tokens": 0,
             "completion_tokens": 0}
    describe = getattr(judge, "describe", None)
    if callable(describe):
        entry.update({k: v for k, v in describe().items() if k != "model"})
    return entry


# ---------------------------------------------------------------- building and checking the judge

def make_judge(benchmark: Benchmark | str, options: JudgeConfig) -> OpenAIJudge:
    """The OpenAI-compatible judge for a benchmark: its default model unless options name one."""
    if isinstance(benchmark, str):
        from mmbench.benchmarks import get_benchmark

        benchmark = get_benchmark(benchmark)
    if benchmark.judge is None:
        raise MmbenchError(f"{benchmark.name} is not a judged benchmark")
    return OpenAIJudge(options, options.model or benchmark.judge.default_model)


def check_judge_ready(config: JudgeConfig, benchmarks: Sequence[Benchmark] | None = None) -> None:
    """Raise a one-line MmbenchError when no judge can be reached: no key and no base URL, or a
    base URL nothing listens on.  Cheap (at most one TCP connect); call it before generating."""
    if benchmarks is not None and not any(b.judged for b in benchmarks):
        return
    key_missing = config.api_key() is None
    if config.base_url is None or (config.is_azure and key_missing):
        if key_missing:
            raise MmbenchError(f"judge: no API key — ${config.api_key_env} is not set and no "
                               "--judge-base-url (an OpenAI-compatible server) was given")
        return
    _probe(config.base_url)


def _probe(url: str, timeout_s: float = 5.0) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MmbenchError(f"judge: --judge-base-url must be an http(s) URL, got {public_url(url)!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MmbenchError(f"judge: cannot reach {public_url(url)} ({reason})") from None


class JudgePlan:
    """Who judges each benchmark, with which prompt and how many runs: the one orchestration
    path behind `mmbench eval`, the lmms-eval engine and `mmbench score --rejudge`.

    `suite_judge(benchmark)` is the suite's say: a `Judge` of its own (the world's scene judge),
    a `JudgeConfig` for an OpenAI-compatible judge, or None (the CLI's `config`, whose model
    defaults to the benchmark's).  A judge the user named (`explicit`) wins over the suite."""

    def __init__(self, config: JudgeConfig | None = None, suite_judge=None, explicit: bool = False):
        self.config = config or JudgeConfig()
        self._suite_judge = suite_judge
        self.explicit = explicit
        self._own: dict[str, Any] = {}
        self._judges: dict[str, Judge] = {}
        self._templates: dict[int, str | None] = {}

    def _suite(self, benchmark: Benchmark):
        if self.explicit or self._suite_judge is None:
            return None
        if benchmark.name not in self._own:
            self._own[benchmark.name] = self._suite_judge(benchmark)
        return self._own[benchmark.name]

    def is_local(self, benchmark: Benchmark) -> bool:
        """Judged by the suite's own judge (no network, no prompt template)."""
        own = self._suite(benchmark)
        return own is not None and not isinstance(own, JudgeConfig)

    def options(self, benchmark: Benchmark) -> JudgeConfig:
        own = self._suite(benchmark)
        return own if isinstance(own, JudgeConfig) else self.config

    def template(self, benchmark: Benchmark) -> str | None:
        if self.is_local(benchmark):
            return None
        options = self.options(benchmark)
        if id(options) not in self._templates:
            self._templates[id(options)] = read_template(options)
        return self._templates[id(options)]

    def judge(self, benchmark: Benchmark) -> Judge:
        if benchmark.name not in self._judges:
            self._judges[benchmark.name] = (self._suite(benchmark) if self.is_local(benchmark)
                                            else make_judge(benchmark, self.options(benchmark)))
        return self._judges[benchmark.name]

    def runs(self, benchmark: Benchmark) -> int | None:
        return None if self.is_local(benchmark) else self.options(benchmark).runs

    def check(self, benchmarks: Sequence[Benchmark], reach: bool = True) -> None:
        """Before any generation: every custom prompt shows the answer, every remote judge is reachable."""
        remote = [b for b in benchmarks if b.judged and not self.is_local(b)]
        for benchmark in remote:
            options = self.options(benchmark)
            check_template_slots(self.template(benchmark), [benchmark], str(options.prompt_file))
        if reach:
            seen = []
            for benchmark in remote:
                options = self.options(benchmark)
                if not any(options is s for s in seen):
                    seen.append(options)
                    check_judge_ready(options)

    def identity(self, benchmark: Benchmark) -> dict:
        """Who judges: stored verdicts are reused only from the same judge, prompt and runs."""
        model = (self.judge(benchmark).model if self.is_local(benchmark)
                 else self.options(benchmark).model or benchmark.judge.default_model)
        return {"model": model, "prompt_version": prompt_version(benchmark.judge, self.template(benchmark)),
                "runs": self.runs(benchmark) or benchmark.judge.runs}

    def run(self, benchmark: Benchmark, samples: Sequence[dict], *, image_root: Path | None = None,
            images: Sequence[Any] | None = None, redo: bool = False) -> tuple[list[dict], dict]:
        """Judge the samples that have no verdict yet (all of them with `redo`); return all the
        samples and the results.json `config.judge` entry."""
        judge, template, runs = self.judge(benchmark), self.template(benchmark), self.runs(benchmark)
        samples = list(samples)
        todo = [i for i, s in enumerate(samples) if redo or "judge" not in s]
        if todo:
            judged = judge_samples(benchmark, [samples[i] for i in todo], judge, template, runs,
                                   images=[images[i] for i in todo] if images is not None else None,
                                   image_root=image_root)
            for i, sample in zip(todo, judged):
                samples[i] = sample
        return samples, judge_summary(benchmark, judge, template, runs)


# ---------------------------------------------------------------- mmbench score --rejudge

def rejudge_file(benchmark: Benchmark, samples_path: Path, config: JudgeConfig,
                 out: Path | None = None) -> dict:
    """Judge a samples file again, write the new outputs to a samples file next to the results
    (in place when that is the same folder) and the results; return the results."""
    from mmbench.harness.runfiles import atomic_write_json, read_samples, write_samples
    from mmbench.harness.scoring import build_results, score_samples, validate_sample

    if benchmark.judge is None:
        raise MmbenchError(f"{benchmark.name} has no judge; --rejudge applies to judged benchmarks only")
    samples_path = Path(samples_path)
    samples = read_samples(samples_path)
    if not samples:
        raise MmbenchError(f"{samples_path}: no samples to judge (the file is empty)")
    for sample in samples:  # the contract minus the judge outputs, which we are about to replace
        validate_sample(benchmark, {**sample, "judge": {"outputs": []}}, f"{samples_path}:{sample['_line']}")
    plan = JudgePlan(config)
    if out is not None:
        from mmbench.harness.runfiles import check_writable

        check_writable(Path(out).parent)
    plan.check([benchmark])
    judged, summary = plan.run(benchmark, samples, image_root=samples_path.parent, redo=True)
    per_sample, metrics = score_samples(benchmark, judged)
    run_config = {"source": str(samples_path), "judge_model": summary["model"], "judge": summary}
    results = build_results(benchmark, per_sample, metrics, run_config)

    results_path = Path(out) if out is not None else samples_path.parent / "results.json"
    same_folder = results_path.parent.resolve() == samples_path.parent.resolve()
    target = samples_path if same_folder else results_path.parent / "samples.jsonl"
    if not same_folder:
        judged = [_rebase_image(s, samples_path.parent) for s in judged]
    write_samples(target, judged)
    atomic_write_json(results_path, results)
    return results


def _rebase_image(sample: dict, old_root: Path) -> dict:
    """A relative image path is relative to its samples file: make it absolute when the file moves."""
    image = sample.get("image")
    if isinstance(image, str) and not Path(image).is_absolute():
        return {**sample, "image": str((old_root / image).resolve())}
    return sample


__all__ = ["JudgePlan", "build_requests", "check_judge_ready", "check_template_slots", "image_payload", "judge_samples",
           "judge_summary", "make_judge", "prompt_version", "read_template", "rejudge_file"]
