"""Steps per second of the world recipe's training loop with each batch run whole
(`length_chunks=1`, what the recipe uses) against two length-sorted micro-batches (2): the same
gradient up to rounding, less padding (docs/base_model.md says why the recipe keeps whole batches).

    python bench/pretrain_chunks.py [--steps 40] [--repeat 2] [--chunks 2]

Runs the recipe's "bind" stage (all tasks, both auxiliary losses) from the shipped base on the
built world, alternating the two settings `--repeat` times, and prints each rate and the median
ratio.  Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def run(folder: Path, world: Path, steps: int, chunks: int) -> float:
    import json

    from mmbench.world.paths import BASE_MODEL_DIR
    from mmbench.world.pretrain import pretrain
    from mmbench.world.recipe import STAGES, PatchAux
    from mmbench.world.training_sets import SftExamples

    stage = next(s for s in STAGES if s.name == "bind")
    examples = SftExamples(world)
    config = json.loads((BASE_MODEL_DIR / "config.json").read_text(encoding="utf-8"))
    aux = PatchAux(examples, config["text_config"]["hidden_size"], config["image_token_index"],
                   stage.patch_weight, stage.bind_weight)
    t0 = time.perf_counter()
    pretrain(examples, folder, init_from=str(BASE_MODEL_DIR), steps=steps, lr=stage.lr, vision_lr=stage.vision_lr,
             warmup_steps=1, aux=aux, aux_loss={"patch": stage.patch_weight, "bind": stage.bind_weight},
             length_chunks=chunks, progress=False, checkpoint_every=10**6, log_every=steps)
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=2)
    args = parser.parse_args()
    from mmbench.world.build import ensure_world

    world = ensure_world(seed=0)
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            whole = run(Path(tmp) / f"whole{r}", world, args.steps, 1)
            split = run(Path(tmp) / f"split{r}", world, args.steps, args.chunks)
            ratios.append(split / whole)
            print(f"round {r + 1}: whole batch {whole:.2f} steps/s, {args.chunks} micro-batches {split:.2f} "
                  f"steps/s: {ratios[-1]:.2f}x", flush=True)
    print(f"median {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) over {args.repeat} rounds")


if __name__ == "__main__":
    main()
