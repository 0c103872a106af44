"""Install a throw-away plug-in package for a test: its modules and a dist-info folder with
entry points, on a directory put first on sys.path (importlib.metadata and fresh interpreters
started with PYTHONPATH both find it).  This is how a lab's package would be seen after
`pip install`, without running pip."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path


def install_plugin(site: Path, name: str, entry_points: dict[str, dict[str, str]],
                   modules: dict[str, str], monkeypatch=None) -> Path:
    """Write `modules` ({"pkg/mod.py": source}) and `<name>-0.1.dist-info` under `site`.

    With `monkeypatch`, `site` is prepended to sys.path and PYTHONPATH for the test's duration."""
    site.mkdir(parents=True, exist_ok=True)
    for relative, source in modules.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    dist = site / f"{name.replace('-', '_')}-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{key} = {value}" for key, value in entries.items()]
        lines.append("")
    (dist / "entry_points.txt").write_text("\n".join(lines))
    if monkeypatch is not None:
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
        for module in [m for m in sys.modules if m.split(".")[0] in {Path(r).parts[0].removesuffix(".py") for r in modules}]:
            monkeypatch.delitem(sys.modules, module)
    return site


def doc_example(name: str) -> str:
    """The code block after `<!-- example: NAME -->` in docs/architecture.md: the worked examples
    there are the very plug-ins the tests install, so the page cannot go stale."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    marker = f"<!-- example: {name} -->"
    if marker not in text:
        raise KeyError(f"docs/architecture.md has no example {name!r}")
    block = text.split(marker, 1)[1].split("```python\n", 1)[1]
    return block.split("```", 1)[0]
