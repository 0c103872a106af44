"""Row access to a preference source without loading it whole.

A source is one of: a hub id (`datasets.load_dataset`, memory-mapped Arrow), a
`save_to_disk` folder (memory-mapped Arrow), parquet files or a hub snapshot folder holding
them (read per row group with `pyarrow`, so nothing is copied), or JSON / JSON Lines files
(streamed).  Every table gives two passes:

* `text_rows()` yields every row as a dict with image *bytes* left out (image fields keep their
  `path`), so that checking, pairing and subsetting never touch embedded images;
* `fetch(indices, column)` reads one column (bytes included) for the few rows actually used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from mmbench.errors import MmbenchError, iter_lines, read_text

BATCH = 1024  # rows per Arrow slice in the text pass


def _strip_bytes(array):
    """An Arrow array with every struct field named `bytes` dropped (recursively)."""
    import pyarrow as pa

    kind = array.type
    if pa.types.is_struct(kind):
        names = [kind.field(i).name for i in range(kind.num_fields) if kind.field(i).name != "bytes"]
        children = [_strip_bytes(array.field(n)) for n in names]
        if not names:
            return pa.nulls(len(array))
        return pa.StructArray.from_arrays(children, names=names, mask=array.is_null())
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        values = _strip_bytes(array.values)
        cls = pa.ListArray if pa.types.is_list(kind) else pa.LargeListArray
        return cls.from_arrays(array.offsets, values, mask=array.is_null())
    return array


def _has_bytes(kind) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return any(kind.field(i).name == "bytes" or _has_bytes(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return _has_bytes(kind.value_type)
    return False


def _table_rows(table) -> list[dict]:
    import pyarrow as pa

    columns = {}
    for name in table.column_names:
        chunks = table.column(name).chunks
        if chunks and _has_bytes(table.schema.field(name).type):
            chunks = [_strip_bytes(c) for c in chunks]
        columns[name] = pa.chunked_array(chunks) if chunks else table.column(name)
    return pa.table(columns).to_pylist()


class Table:
    label: str
    columns: list[str]
    embedded: set[str]  # columns holding image bytes

    def __len__(self) -> int:
        raise NotImplementedError

    def where(self, index: int) -> str:
        raise NotImplementedError

    def text_rows(self) -> Iterator[tuple[int, dict]]:
        raise NotImplementedError

    def fetch(self, indices: list[int], column: str) -> dict[int, object]:
        raise NotImplementedError

    def folder(self, index: int) -> Path | None:
        """Where relative image paths of a row resolve first (the file's folder)."""
        return None


class ParquetTable(Table):
    def __init__(self, files: list[Path], label: str):
        import pyarrow.parquet as pq

        self.label = label
        self.files = files
        self.parts = []  # (file, row group, first global index, rows)
        start = 0
        schema = None
        for path in files:
            try:
                handle = pq.ParquetFile(str(path))
            except Exception as exc:  # noqa: BLE001 — pyarrow raises several error types for a bad file
                raise MmbenchError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
            schema = schema or handle.schema_arrow
            for group in range(handle.metadata.num_row_groups):
                rows = handle.metadata.row_group(group).num_rows
                self.parts.append((path, group, start, rows))
                start += rows
        self.total = start
        self.schema = schema
        self.columns = list(schema.names) if schema is not None else []
        self.embedded = {n for n in self.columns if _has_bytes(schema.field(n).type)}
        self._handles: dict[Path, object] = {}

    def __len__(self) -> int:
        return self.total

    def _part(self, index: int):
        from bisect import bisect_right

        starts = [p[2] for p in self.parts]
        return self.parts[bisect_right(starts, index) - 1]

    def where(self, index: int) -> str:
        path, _, _, _ = self._part(index)
        first = min(p[2] for p in self.parts if p[0] == path)
        return f"{path} row {index - first}"

    def folder(self, index: int) -> Path | None:
        return self._part(index)[0].parent

    def _handle(self, path: Path):
        import pyarrow.parquet as pq

        if path not in self._handles:
            self._handles[path] = pq.ParquetFile(str(path))
        return self._handles[path]

    def text_rows(self) -> Iterator[tuple[int, dict]]:
        for path, group, start, _ in self.parts:
            handle = self._handle(path)
            leaves = [handle.schema.column(i).path for i in range(len(handle.schema))]
            wanted = [leaf for leaf in leaves if not leaf.endswith(".bytes")]
            table = handle.read_row_group(group, columns=wanted)
            for offset, row in enumerate(_table_rows(table)):
                yield start + offset, row

    def fetch(self, indices: list[int], column: str) -> dict[int, object]:
        out: dict[int, object] = {}
        by_part: dict[tuple, list[int]] = {}
        for index in indices:
            path, group, start, _ = self._part(index)
            by_part.setdefault((path, group, start), []).append(index)
        for (path, group, start), wanted in by_part.items():
            table = self._handle(path).read_row_group(group, columns=[column])
            values = table.column(column).take([i - start for i in wanted]).to_pylist()
            out.update(zip(wanted, values))
        return out


class ArrowTable(Table):
    """A `datasets.Dataset` (hub download or `load_from_disk`): memory-mapped, sliced lazily."""

    def __init__(self, dataset, label: str, folder: Path | None = None):
        self.dataset = dataset.with_format("arrow")
        self.label = label
        self._folder = folder
        schema = dataset.data.schema
        self.columns = list(schema.names)
        self.embedded = {n for n in self.columns if _has_bytes(schema.field(n).type)}

    def __len__(self) -> int:
        return len(self.dataset)

    def where(self, index: int) -> str:
        return f"{self.label} row {index}"

    def folder(self, index: int) -> Path | None:
        return self._folder

    def text_rows(self) -> Iterator[tuple[int, dict]]:
        for start in range(0, len(self.dataset), BATCH):
            table = self.dataset[start:start + BATCH]
            for offset, row in enumerate(_table_rows(table)):
                yield start + offset, row

    def fetch(self, indices: list[int], column: str) -> dict[int, object]:
        if not indices:
            return {}
        table = self.dataset.select_columns([column])[list(indices)]
        return dict(zip(indices, table.column(column).to_pylist()))


class JsonTable(Table):
    """JSON lists / `{"data": [...]}` files (parsed whole: they hold text and paths only) and
    JSON Lines files (streamed line by line)."""

    def __init__(self, files: list[Path], label: str, first_row: dict | None = None):
        self.label = label
        self.files = files
        self.embedded = set()
        self._spans: list[tuple[Path, int, int, list[int] | None]] = []  # file, start, rows, line numbers
        self._rows: dict[Path, list] = {}
        start = 0
        for path in files:
            if self._is_lines(path):
                numbers = self._line_numbers(path)
                self._spans.append((path, start, len(numbers), numbers))
                start += len(numbers)
            else:
                rows = self._load_list(path)
                self._rows[path] = rows
                self._spans.append((path, start, len(rows), None))
                start += len(rows)
        self.total = start
        first = first_row if first_row is not None else self._first()
        self.columns = list(first) if isinstance(first, dict) else []

    @staticmethod
    def _is_lines(path: Path) -> bool:
        if path.suffix == ".jsonl":
            return True
        with path.open("rb") as handle:
            head = handle.read(4096).lstrip()
        if not head.startswith(b"{"):
            return False
        # A JSON object file ({"data": [...]}) spans lines; JSON Lines has one object per line.
        first_line = head.split(b"\n", 1)[0].strip()
        try:
            json.loads(first_line)
            return True
        except json.JSONDecodeError:
            return False

    @staticmethod
    def _line_numbers(path: Path) -> list[int]:
        numbers = []
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    numbers.append(number)
        return numbers

    @staticmethod
    def _load_list(path: Path) -> list:
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise MmbenchError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise MmbenchError(f"{path}: expected a JSON list of rows, {{'data': [...]}} or JSON Lines")
        for index, row in enumerate(data):
            if not isinstance(row, dict):
                raise MmbenchError(f"{path} row {index + 1}: expected a JSON object, got {type(row).__name__}")
        return data

    def _first(self):
        for index, row in self.text_rows():
            return row
        return None

    def __len__(self) -> int:
        return self.total

    def _span(self, index: int):
        for span in self._spans:
            if span[1] <= index < span[1] + span[2]:
                return span
        raise IndexError(index)

    def where(self, index: int) -> str:
        path, start, _, numbers = self._span(index)
        return f"{path}:{numbers[index - start]}" if numbers is not None else f"{path} row {index - start}"

    def folder(self, index: int) -> Path | None:
        return self._span(index)[0].parent

    def text_rows(self) -> Iterator[tuple[int, dict]]:
        for path, start, _, numbers in self._spans:
            if numbers is None:
                for offset, row in enumerate(self._rows[path]):
                    yield start + offset, row
                continue
            offset = 0
            for number, line in iter_lines(path):  # decoded per line: a bad byte names its line
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MmbenchError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise MmbenchError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
                yield start + offset, row
                offset += 1

    def fetch(self, indices: list[int], column: str) -> dict[int, object]:
        return {}  # JSON rows carry image paths only; the text pass already saw them
