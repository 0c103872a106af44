"""What a command prints: transformers' per-load progress bars only with --verbose."""

import os
import subprocess
import sys

import pytest


def _eval(tmp_path, *extra):
    env = {**os.environ, "MMBENCH_VERBOSE": ""}
    return subprocess.run([sys.executable, "-m", "mmbench", "eval", *extra, "--benchmarks", "gqa", "--limit", "1",
                           "--max-new-tokens", "4", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=env, check=False)


@pytest.mark.slow  # a CLI run end to end; CI runs the slow tier too
def test_loading_bars_are_hidden_unless_verbose(tmp_path):
    quiet = _eval(tmp_path)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert "Loading weights" not in quiet.stderr + quiet.stdout
    loud = _eval(tmp_path, "--verbose", "--overwrite")
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert "Loading weights" in loud.stderr
