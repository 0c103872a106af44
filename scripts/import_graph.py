"""Print mmbench's package-level import graph: edges between sub-packages, cycles and back-edges.

Usage: python scripts/import_graph.py [--modules]
Every `import`/`from ... import` inside mmbench/ counts, including imports inside functions
(a lazy import is still a dependency).  Packages are the first component under mmbench/
(harness, trainers, world, ...); top-level modules (cli, ablate, errors) are their own nodes.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "mmbench"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:  # annotations only: no run-time dependency
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mmbench"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mmbench"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
    return found


def node_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mmbench"


def graph(level: str = "package") -> dict[str, set[str]]:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target in imports(path):
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target not in modules:
                continue
            a, b = (name, target) if level == "module" else (node_of(name), node_of(target))
            if a != b and b != "mmbench":
                edges[a].add(b)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modules", action="store_true", help="module-level cycles too")
    args = parser.parse_args()
    edges = graph()
    for a in sorted(edges):
        print(f"{a} -> {', '.join(sorted(edges[a]))}")
    pkg_cycles = cycles(edges)
    back = sorted((a, b) for a in edges for b in edges[a] if a in edges.get(b, ()))
    print(f"package cycles: {len(pkg_cycles)} {pkg_cycles}")
    print(f"mutual package edges: {len(back) // 2} {[p for p in back if p[0] < p[1]]}")
    if args.modules:
        mod_cycles = cycles(graph("module"))
        print(f"module cycles: {len(mod_cycles)}")
        for c in mod_cycles:
            print("  " + " <-> ".join(c))


if __name__ == "__main__":
    main()
