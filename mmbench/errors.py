"""User-facing errors: the CLI prints their message on one line and exits with code 2.

Expected failures (a file that cannot be read or decoded, a config value of the wrong type, a
JSON document of the wrong shape) are turned into `MmbenchError` where the file and line are
known; the helpers here do that for the common cases.  `cli.main` is the one boundary that
prints them (and reduces anything unexpected to one line plus a hint about `--debug`)."""

from __future__ import annotations

import types
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path


class MmbenchError(Exception):
    """A problem with the user's input or environment, reported as one line (exit 2)."""

    exit_code = 2


def os_error_message(exc: OSError, path: str | Path | None = None) -> str:
    """`cannot write /x/y: Read-only file system` — the file and the system's reason, one line."""
    reason = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]
    where = exc.filename if exc.filename is not None else path
    return f"{where}: {reason}" if where is not None else str(reason)


def decode_error(path: str | Path, exc: UnicodeDecodeError, data: bytes | None = None,
                 line: int | None = None) -> MmbenchError:
    """A UTF-8 decoding failure as `FILE:LINE: not UTF-8 text (byte 0x.. at column N)`."""
    if line is None and data is not None:
        line = data.count(b"\n", 0, exc.start) + 1
    byte = exc.object[exc.start:exc.start + 1].hex() if exc.object else "??"
    where = f"{path}:{line}" if line is not None else str(path)
    return MmbenchError(f"{where}: not UTF-8 text (byte 0x{byte}); save the file as UTF-8")


def read_text(path: str | Path) -> str:
    """A UTF-8 text file, or a one-line `MmbenchError` naming the file (and line for bad bytes)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MmbenchError(f"cannot read {os_error_message(exc, path)}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise decode_error(path, exc, data) from None


def read_json_object(path: str | Path, what: str = "") -> dict:
    """A JSON file whose top level is an object; anything else is one line naming the file."""
    import json

    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise MmbenchError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise MmbenchError(f"{path}: expected a JSON object{what}, got {type(data).__name__}")
    return data


def read_table_file(path: str | Path) -> dict:
    """A TOML or YAML file (by suffix; TOML otherwise) whose top level is a table."""
    path = Path(path)
    if not path.is_file():
        raise MmbenchError(f"config file not found: {path}")
    text = read_text(path)
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
            data = {} if data is None else data
        else:
            import tomllib

            data = tomllib.loads(text)
    except Exception as exc:  # both parsers have their own error classes
        raise MmbenchError(f"{path}: cannot parse ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise MmbenchError(f"{path}: expected a table of options at the top level, got {type(data).__name__}")
    return data


def iter_lines(path: str | Path):
    """(line number, text) of a UTF-8 text file, decoded line by line so that a bad byte is
    reported with its exact line."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise MmbenchError(f"cannot read {os_error_message(exc, path)}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise decode_error(path, exc, line=number) from None


# ---- one typed schema for config files --------------------------------------------------------
def _type_name(kind) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
             dict: "a table", list: "a list"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _matches(value, kind) -> bool:
    if kind is typing.Any:
        return True
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, k) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple):
        args = typing.get_args(kind)
        return isinstance(value, (list, tuple)) and (not args or all(_matches(v, args[0]) for v in value))
    if origin is dict or kind is dict:
        return isinstance(value, dict)
    if kind is str:
        return isinstance(value, (str, Path))  # API callers pass paths for path options
    if isinstance(kind, type):
        return isinstance(value, kind) or (is_dataclass(kind) and isinstance(value, dict))
    return True


def _describe(kind) -> str:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(k) for k in typing.get_args(kind) if k is not type(None))
    if origin in (list, tuple):
        args = typing.get_args(kind)
        return f"a list of {_type_name(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    return _type_name(origin or kind)


def check_fields(cls, data, where: str, prefix: str = "") -> None:
    """Check a mapping against a dataclass's annotated field types: unknown keys and values of
    the wrong type are refused naming `where` and the key (nested dataclass fields too)."""
    if not isinstance(data, dict):
        raise MmbenchError(f"{where}: {prefix.rstrip('.') or 'the file'} must be a table of options, "
                           f"got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise MmbenchError(f"{where}: unknown key(s) {', '.join(prefix + str(k) for k in unknown)}")
    for name, value in data.items():
        kind = hints.get(name, typing.Any)
        if is_dataclass(kind) and isinstance(value, dict):
            check_fields(kind, value, where, f"{prefix}{name}.")
            continue
        if not _matches(value, kind):
            raise MmbenchError(f"{where}: {prefix}{name} must be {_describe(kind)}, got {value!r}")


__all__ = ["MmbenchError", "check_fields", "decode_error", "iter_lines", "os_error_message",
           "read_text"]
