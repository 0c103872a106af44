"""The benchmark registry: the eight ids, lookup with did-you-mean, and record loading."""

from __future__ import annotations

import difflib
from pathlib import Path

from mmbench.benchmarks import coco_recall, gqa, llava_w, mmhal, mmhal_v, mmvet, pope, textvqa
from mmbench.benchmarks.base import Benchmark, Record
from mmbench.errors import MmbenchError

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (pope.BENCHMARK, mmhal.BENCHMARK, mmhal_v.BENCHMARK, llava_w.BENCHMARK, textvqa.BENCHMARK,
              gqa.BENCHMARK, mmvet.BENCHMARK, coco_recall.BENCHMARK)
}
IDS: tuple[str, ...] = tuple(BENCHMARKS)


def get_benchmark(name: str) -> Benchmark:
    if name in BENCHMARKS:
        return BENCHMARKS[name]
    close = difflib.get_close_matches(name, IDS, n=1, cutoff=0.5)
    hint = f" — did you mean {close[0]!r}?" if close else ""
    raise MmbenchError(f"unknown benchmark {name!r}{hint} (known: {', '.join(IDS)})")


def resolve_benchmarks(spec: str) -> list[Benchmark]:
    """"all" or a comma-separated list of ids, in the order given."""
    if spec.strip() == "all":
        return list(BENCHMARKS.values())
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


__all__ = ["BENCHMARKS", "IDS", "Benchmark", "Record", "get_benchmark", "load_records", "resolve_benchmarks"]
