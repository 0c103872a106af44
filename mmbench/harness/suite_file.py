"""A user's own suite (mmbench/suites), described in a TOML or YAML file (`--suite lab.toml`):

    name = "lab"                       # optional (default: the file's stem)
    base = "/ckpt/llava-v1.6-7b"       # folder or hub id
    preferences = "/data/povid"        # any preference source `mmbench data inspect` reads
    prompts = "/data/prompts.jsonl"    # optional prompt-only rows for online sampling
    vocabulary = "coco"                # CHAIR vocabulary: coco, a suite's name, or a table file

    [data]                             # per benchmark; "*" for every other one (default "hub")
    pope = "/data/pope"
    "*" = "hub"

    [judge]                            # every judged benchmark (fields of JudgeConfig)
    model = "gpt-4o-2024-08-06"
    base_url = "http://judge:8000/v1"

    [judges.mmhal]                     # one benchmark's judge, over [judge]
    model = "gpt-4-0613"

    [annotator]                        # online pairs (Mixed-DPO)
    model = "gpt-4o-mini"

Relative paths are relative to the file, so a suite file travels with its folders."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from mmbench.errors import MmbenchError

KEYS = {"name", "base", "preferences", "prompts", "vocabulary", "data", "judge", "judges", "annotator"}
JUDGE_KEYS = {"model", "base_url", "api_key_env", "azure_api_version", "concurrency", "runs", "prompt_file",
              "timeout_s", "max_attempts"}


@dataclass
class FolderSuite:
    name: str
    root: Path
    base: str | None = None
    preferences: str | None = None
    prompts: str | None = None
    vocabulary_name: str | None = None
    data: dict = field(default_factory=dict)
    judge_options: dict = field(default_factory=dict)
    judges: dict = field(default_factory=dict)
    annotator_options: dict = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: str | Path) -> "FolderSuite":
        from mmbench.errors import read_table_file

        path = Path(path).expanduser()
        table = read_table_file(path)
        unknown = sorted(set(table) - KEYS)
        if unknown:
            raise MmbenchError(f"{path}: unknown suite key(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
        for key in ("name", "base", "preferences", "prompts", "vocabulary"):
            if key in table and not isinstance(table[key], str):
                raise MmbenchError(f"{path}: {key} must be a string, got {type(table[key]).__name__}")
        for key in ("data", "judge", "judges", "annotator"):
            if key in table and not isinstance(table[key], dict):
                raise MmbenchError(f"{path}: [{key}] must be a table, got {type(table[key]).__name__}")
        root = path.resolve().parent
        data = table.get("data", {})
        for name, value in data.items():
            if not isinstance(value, str):
                raise MmbenchError(f"{path}: data.{name} must be a string (folder, hub id or 'hub')")
        if any(k != "*" for k in data):
            from mmbench.benchmarks import get_benchmark

            for name in data:
                if name != "*":
                    get_benchmark(name)  # a typo in a benchmark name is caught here, with did-you-mean
        judges = table.get("judges", {})
        for where, options in [("judge", table.get("judge", {})), ("annotator", table.get("annotator", {})),
                               *((f"judges.{k}", v) for k, v in judges.items())]:
            if not isinstance(options, dict):
                raise MmbenchError(f"{path}: [{where}] must be a table")
            bad = sorted(set(options) - JUDGE_KEYS)
            if bad:
                raise MmbenchError(f"{path}: [{where}] unknown option(s) {', '.join(bad)} "
                                   f"(known: {', '.join(sorted(JUDGE_KEYS))})")
        local = {k: _local(root, v) for k, v in data.items()}
        return cls(name=table.get("name", path.stem), root=root, base=_local(root, table.get("base")),
                   preferences=_local(root, table.get("preferences")), prompts=_local(root, table.get("prompts")),
                   vocabulary_name=table.get("vocabulary"), data=local, judge_options=table.get("judge", {}),
                   judges=judges, annotator_options=table.get("annotator", {}))

    # -- the Suite protocol ---------------------------------------------------------------------
    def base_model(self) -> str:
        if not self.base:
            raise MmbenchError(f"suite {self.name!r} names no base model; add base = ... or pass one")
        return self.base

    def benchmark_data(self, benchmark) -> str | None:
        return self.data.get(benchmark.name, self.data.get("*", "hub"))

    def judge(self, benchmark):
        options = {**self.judge_options, **self.judges.get(benchmark.name, {})}
        return _judge_config(options) if options else None

    def preference_data(self) -> str:
        if not self.preferences:
            raise MmbenchError(f"suite {self.name!r} names no preference data; add preferences = ... or pass --data")
        return self.preferences

    def prompt_data(self) -> str | None:
        return self.prompts

    def annotator(self):
        return _judge_config(self.annotator_options) if self.annotator_options else None

    def vocabulary(self):
        name = self.vocabulary_name
        if name is None or name == "coco":
            return None
        path = Path(_local(self.root, name))
        if path.is_file():  # CHAIR's table: one line per object, canonical name first, then synonyms
            from mmbench.benchmarks.chair import vocabulary_from_table
            from mmbench.errors import read_text

            return vocabulary_from_table(self.name, read_text(path).splitlines())
        from mmbench.suites import SUITES

        return SUITES.get(name).vocabulary()

    def claim(self, path: Path):
        return None  # a file suite is always named explicitly


def _local(root: Path, value: str | None) -> str | None:
    """A relative path that exists beside the file resolves there; anything else (hub ids) is kept."""
    if value is None or value in ("hub", "world"):
        return value
    candidate = Path(value).expanduser()
    if not candidate.is_absolute() and (root / candidate).exists():
        return str(root / candidate)
    return str(candidate) if candidate.is_absolute() or candidate.exists() else value


def _judge_config(options: dict):
    from mmbench.harness.judge_client import JudgeConfig

    known = {f.name for f in fields(JudgeConfig)}
    return JudgeConfig(**{k: (Path(v) if k == "prompt_file" else v) for k, v in options.items() if k in known})
