"""Wall time of a 5-point γ grid against 5 independent single-point runs (each recomputing the
base evaluation, BDHS negatives and reference log-probs), printed as a ratio (target ≤ 0.6).

    python bench/grid_cost.py            # the embedded default, as `mmbench ablate gamma` runs it
    python bench/grid_cost.py --small    # a small world and a tiny random model: a quick check
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VALUES = ["0", "0.25", "0.5", "0.75", "1"]


def small_config(root: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from eval_fixtures import small_world, world_model

    world = small_world(root)
    model = world_model(root / "models", world)
    config = root / "grid.toml"
    config.write_text(f'base = "{model}"\ndata = "{world / "prefs" / "train.jsonl"}"\neval_data = "{world}"\n'
                      'max_steps = 4\nlimit = 4\nmax_new_tokens = 8\n[train]\nbatch_size = 4\nlr = 0.001\n')
    return config


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mmbench", "ablate", "gamma", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mmbench-grid-"))
    extra = ["--config", str(small_config(root))] if args.small else []
    grid = timed([*extra, "--values", ",".join(VALUES), "--out", str(root / "grid")])
    singles = [timed([*extra, "--values", v, "--out", str(root / f"single-{v}")]) for v in VALUES]
    print(f"5-point grid: {grid:.1f} s; 5 single-point runs: {sum(singles):.1f} s "
          f"({', '.join(f'{s:.0f}' for s in singles)}); ratio {grid / sum(singles):.2f} (target ≤ 0.6)")


if __name__ == "__main__":
    main()
