"""The benchmark registry: the eight built-ins and plug-ins, lookup with did-you-mean, and
record loading.

Built-ins are "module:attr" strings, so a module loads when its benchmark is first asked for.
A package adds a benchmark through the entry-point group `mmbench.benchmarks` (name ->
"package.module:BENCHMARK", a `Benchmark` whose name is that name); it cannot shadow a built-in.
"""

from __future__ import annotations

from pathlib import Path

from mmbench.benchmarks.base import Benchmark, DetailGroup, Record
from mmbench.errors import MmbenchError
from mmbench.registry import Registry

# The built-ins, in the order of leaderboard columns and the paper's scorecard rows.
IDS: tuple[str, ...] = ("pope", "mmhal", "mmhal_v", "llava_w", "textvqa", "gqa", "mmvet", "coco_recall")
REGISTRY: Registry = Registry("benchmark", builtins={n: f"mmbench.benchmarks.{n}:BENCHMARK" for n in IDS})


def get_benchmark(name: str) -> Benchmark:
    bench = REGISTRY.get(name)
    if not isinstance(bench, Benchmark) or bench.name != name:
        raise MmbenchError(f"benchmark {name!r} is registered as {bench!r:.80}, "
                           f"not a Benchmark named {name!r}")
    return bench


def benchmark_names() -> list[str]:
    """Every benchmark id, built-ins first, then installed plug-ins (nothing is imported)."""
    return REGISTRY.names()


def __getattr__(name: str):
    # BENCHMARKS (id -> Benchmark of the eight built-ins) is built on first use, which imports them
    if name == "BENCHMARKS":
        return {n: get_benchmark(n) for n in IDS}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_benchmarks(spec: str) -> list[Benchmark]:
    """"all" (the eight built-ins: plug-ins are named, as they have no world data) or a
    comma-separated list of ids, in the order given."""
    if spec.strip() == "all":
        return [get_benchmark(n) for n in IDS]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise MmbenchError("no benchmark given (use 'all' or ids such as pope,gqa)")
    return [get_benchmark(n) for n in names]


def load_records(benchmark: Benchmark, source: str | Path | None, limit: int | None = None) -> list[Record]:
    """Records of one benchmark from the hub, a hub snapshot, a save_to_disk folder or official files.

    `limit` keeps the first N records of each split so that limited POPE runs still cover
    every split."""
    from mmbench.benchmarks.loading import join_images, load_rows

    rows, folder = load_rows(source, name=benchmark.name, hub_id=benchmark.hub_id, config=benchmark.hub_config,
                             splits=benchmark.hub_splits, read_official=benchmark.read_official)
    if benchmark.image_join and rows and not any("image" in r for r in rows[:1]):
        rows = join_images(rows, source, benchmark)
    records: list[Record] = []
    per_group: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        where = f"{benchmark.name}: data row {number}" + (f" ({row['_file']})" if isinstance(row, dict)
                                                          and row.get("_file") else "")
        try:
            record = benchmark.record_from_row(row, folder)
        except KeyError as exc:
            raise MmbenchError(f"{where} is missing the field {exc.args[0]!r}") from None
        except MmbenchError as exc:
            raise MmbenchError(f"{where}: {exc}") from None
        except (TypeError, ValueError, AttributeError) as exc:  # a field of the wrong type
            raise MmbenchError(f"{where}: malformed ({type(exc).__name__}: {exc})") from None
        group = str(record.reference.get("split", ""))
        if limit is not None and per_group.get(group, 0) >= limit:
            continue
        per_group[group] = per_group.get(group, 0) + 1
        records.append(record)
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise MmbenchError(f"{benchmark.name}: duplicate record id {dup!r} in the data")
    return records


__all__ = ["BENCHMARKS", "IDS", "REGISTRY", "Benchmark", "DetailGroup", "Record", "benchmark_names", "get_benchmark",
           "load_records", "resolve_benchmarks"]
