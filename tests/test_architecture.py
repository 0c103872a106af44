"""The architecture holds: import layers (no package cycles, nothing imports the world but the
CLI), every file a docstring, comment or doc names exists, and modules stay small."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_harness_trainers_ablate_import_nothing_from_the_world():
    code = ("import sys, mmbench.harness, mmbench.trainers, mmbench.ablate, mmbench.harness.eval_api, "
            "mmbench.harness.lmms, mmbench.harness.lmms_export, mmbench.trainers.setup, mmbench.trainers.loop, "
            "mmbench.benchmarks.chair, mmbench.reports.leaderboard; "
            "print([m for m in sys.modules if m.startswith('mmbench.world')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_import_graph_has_no_package_cycles_and_no_edge_into_the_world():
    graph = _graph()
    edges = graph.graph()
    assert graph.cycles(edges) == []
    assert graph.cycles(graph.graph("module")) == []  # lazy imports count; TYPE_CHECKING ones do not
    for package in ("harness", "trainers", "ablate", "benchmarks", "reports", "suites", "registry"):
        assert "world" not in edges.get(package, set()), package
    assert edges["suites"] <= {"errors", "registry"}  # the bottom layer: anyone may ask a suite


PATH = re.compile(r"(?<![\w./-])((?:mmbench|docs|bench|scripts|tests|\.ci)/[\w./-]*[\w-](?:\.(?:py|md|toml|txt|sh|jinja|json))?)")


def test_every_file_named_in_code_and_docs_exists():
    missing = []
    sources = [*ROOT.joinpath("mmbench").rglob("*.py"), *ROOT.joinpath("docs").glob("*.md"), ROOT / "README.md",
               *ROOT.joinpath("bench").glob("*.py"), *ROOT.joinpath("scripts").glob("*")]
    for source in sources:
        text = source.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text, f"{source} points at DESIGN.md, which is not in the repository"
        for match in PATH.finditer(text):
            name = match.group(1).rstrip(".")
            if "<" in name or "*" in name or name.endswith("/"):
                continue
            if not (ROOT / name).exists() and not any(ROOT.glob(name + "*")):
                missing.append(f"{source.relative_to(ROOT)}: {name}")
    assert missing == []


def test_no_module_is_much_over_400_lines():
    big = {str(p.relative_to(ROOT)): n for p in ROOT.joinpath("mmbench").rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 430}
    assert big == {}
