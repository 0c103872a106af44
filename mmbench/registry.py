"""One generic registry for every pluggable part: benchmarks, trainers, engines, knobs and suites.

Built-ins are given as "module:attribute" strings and third-party packages add entries through
the entry-point group `mmbench.<kind>s` (e.g. `mmbench.suites`), so nothing is imported until it
is asked for: `mmbench --help` lists names without loading torch or a plug-in.  A name that is
not found gets one line with the closest match ("did you mean ...").  A plug-in may not shadow a
built-in (it is ignored, so a stray package cannot change what `dpo` means).
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from mmbench.errors import MmbenchError

T = TypeVar("T")


def load_spec(spec: str) -> Any:
    """"package.module:attr.sub" -> the object (what an entry point's value means)."""
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Name -> object, loaded on first use.

    `builtins` maps names to objects or "module:attr" strings; `group` is the entry-point group
    scanned for plug-ins; `factory` says whether a loaded value is called with no arguments to
    make the object (trainers are factories: each use gets a fresh instance)."""

    def __init__(self, kind: str, group: str | None = None, builtins: dict[str, Any] | None = None,
                 factory: bool = False, extra: Callable[[], dict[str, Any]] | None = None):
        self.kind = kind
        self.group = group if group is not None else f"mmbench.{kind}s"
        self._builtins: dict[str, Any] = dict(builtins or {})
        self._added: dict[str, Any] = {}
        self._loaded: dict[str, Any] = {}
        self.factory = factory
        self._extra = extra  # computed entries (knobs declared by trainers), consulted lazily

    # -- names, without importing anything --------------------------------------------------
    def _entry_points(self) -> dict[str, Any]:
        from importlib.metadata import entry_points

        found = {}
        for entry in entry_points(group=self.group):
            if entry.name not in self._builtins and entry.name not in found:
                found[entry.name] = entry
        return found

    def _table(self) -> dict[str, Any]:
        table = {**self._builtins, **self._added}
        for name, entry in self._entry_points().items():
            table.setdefault(name, entry)
        if self._extra is not None:
            for name, value in self._extra().items():
                table.setdefault(name, value)
        return table

    def names(self) -> list[str]:
        return list(self._table())

    def builtin_names(self) -> list[str]:
        return list(self._builtins)

    def __contains__(self, name: object) -> bool:
        return name in self._table()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    # -- objects --------------------------------------------------------------------------------
    def register(self, name: str, value: Any) -> None:
        """Add (or replace) an entry at run time: tests and user code that build parts in Python."""
        self._added[name] = value
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        self._added.pop(name, None)
        self._loaded.pop(name, None)

    def _resolve(self, name: str, value: Any) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        try:
            if isinstance(value, str):
                value = load_spec(value)
            elif hasattr(value, "load") and hasattr(value, "group"):  # an EntryPoint
                value = value.load()
        except (ImportError, AttributeError) as exc:
            raise MmbenchError(f"{self.kind} {name!r} could not be loaded ({type(exc).__name__}: {exc})") from None
        self._loaded[name] = value
        return value

    def get(self, name: str) -> T:
        table = self._table()
        if name not in table:
            raise MmbenchError(self.unknown(name, table))
        value = self._resolve(name, table[name])
        return value() if self.factory else value

    def items(self) -> list[tuple[str, T]]:
        return [(name, self.get(name)) for name in self.names()]

    def unknown(self, name: str, table: dict | None = None) -> str:
        names = list(table if table is not None else self._table())
        close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.5)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(names)})"
