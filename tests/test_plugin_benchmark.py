"""Worked example: adding a benchmark from your own package.

A package declares `[project.entry-points."mmbench.benchmarks"] toy_colours =
"toy_colours_bench:BENCHMARK"`; the module builds a `Benchmark` (mmbench/benchmarks/base.py):
how its rows become records (here its own reader of `questions.jsonl` beside an image folder),
how an answer is scored and the scores aggregated, and the detail table reports show.  Then
`mmbench eval --benchmarks toy_colours --data FOLDER` evaluates it and `mmbench report` lists it
like a built-in.  The package here is written by the test and installed on a throw-away path.
"""

import importlib
import json
import subprocess
import sys

import pytest

from plugin_site import doc_example, install_plugin

TOY_MODULE = doc_example("toy_benchmark")  # the worked example of docs/architecture.md

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60)}


def write_data(folder):
    """Six questions (three colours x two shapes), each with its own PNG under images/; the blue
    square is labelled yellow, so no answer to it is right and the score is not all or nothing."""
    from PIL import Image, ImageDraw

    (folder / "images").mkdir(parents=True)
    rows = []
    for number, (colour, shape) in enumerate((c, s) for s in ("square", "disc") for c in COLOURS):
        image = Image.new("RGB", (64, 64), "white")
        draw = ImageDraw.Draw(image)
        (draw.rectangle if shape == "square" else draw.ellipse)((12, 12, 52, 52), fill=COLOURS[colour])
        image.save(folder / "images" / f"{number}.png")
        label = "yellow" if (colour, shape) == ("blue", "square") else colour
        rows.append({"qid": number, "picture": f"{number}.png", "colour": label, "shape": shape})
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def mmbench(*args):
    done = subprocess.run([sys.executable, "-m", "mmbench", *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.slow  # a CLI run end to end; CI runs the slow tier too
def test_plugin_benchmark_runs_through_eval_and_report(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", "toy-colours",
                   {"mmbench.benchmarks": {"toy_colours": "toy_colours_bench:BENCHMARK"}},
                   {"toy_colours_bench.py": TOY_MODULE}, monkeypatch)
    data, out = tmp_path / "toy_data", tmp_path / "runs"
    write_data(data)
    assert "toy_colours" in mmbench("list").stdout  # listed after the eight built-ins

    mmbench("eval", "--benchmarks", "toy_colours", "--data", data, "--limit", 4, "--out", out)
    folder = out / "base" / "toy_colours"
    results = json.loads((folder / "results.json").read_text())
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert [s["id"] for s in samples] == ["0", "1", "2", "3"]  # --limit 4, in file order
    assert results["benchmark"] == "toy_colours" and results["n"] == 4 and results["headline"] == "accuracy"
    # exactly what the plug-in's own scorer gives on the stored answers
    toy = importlib.import_module("toy_colours_bench")
    expected = toy.aggregate([toy.score(s["reference"], s["response"]) for s in samples])
    assert results["metrics"] == expected and set(expected) == {"accuracy", "shape/square", "shape/disc"}
    assert expected["accuracy"] <= 75.0  # the mislabelled blue square (qid 1) cannot be right
    mmbench("score", "toy_colours", folder / "samples.jsonl", "--out", tmp_path / "rescored.json")
    assert json.loads((tmp_path / "rescored.json").read_text())["metrics"] == expected

    mmbench("report", out, "--out", tmp_path / "report", "--replicates", 20)
    md = (tmp_path / "report" / "leaderboard.md").read_text()
    assert "toy_colours (accuracy)" in md and f"{expected['accuracy']:.2f}" in md
    assert "## Toy shapes" in md and "shape/square" in md and "`toy_colours` v1" in md
    header = (tmp_path / "report" / "leaderboard.csv").read_text().splitlines()[0]
    assert header.endswith(",coco_recall,toy_colours")  # after the eight built-ins
