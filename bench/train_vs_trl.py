"""Pairs per second of mmbench's DPO step against TRL's DPOTrainer on the same tiny LLaVA, batch
and pairs; and a BDHS line: one batch of three completions against TRL on two expanded pairs.

    python bench/train_vs_trl.py [--steps 20] [--batch 8] [--repeat 3] [--only dpo|bdhs] [--unshared]

Prints absolute rates and the ratio (target: mmbench ≥ 1.5× TRL).  Both use the same
reference model each step (no precomputed reference log-probs) unless --cached is given, in
which case mmbench reads them from its disk cache as every grid point after the first does.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from PIL import Image

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30), "yellow": (230, 220, 40)}


def make_data(root: Path, n: int) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    rows = []
    for i in range(n):
        colour, wrong = names[i % 4], names[(i + 1) % 4]
        image = Image.new("RGB", (64, 64), COLOURS[colour])
        # One marker pixel per example: no two examples share image bytes, so no reference log-prob
        # of one example is a cache hit for another (the uncached run stays uncached throughout).
        image.putpixel((i % 64, (i // 64) % 64), (i % 251, 255 - i % 251, 128))
        image.save(root / "images" / f"{i}.png")
        rows.append({"id": f"ex{i}", "image": f"images/{i}.png", "prompt": "what colour is the square ?",
                     "chosen": f"the square is {colour} . it is small and it sits in the middle .",
                     "rejected": f"the square is {wrong} . it is big and it sits on the left ."})
    path = root / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_mmbench(base: Path, prefs: Path, out: Path, trainer: str, steps: int, batch: int, cached: bool, **extra) -> float:
    from mmbench.trainers.config import TrainConfig
    from mmbench.trainers.registry import get_trainer

    config = TrainConfig(trainer=trainer, base=str(base), data=str(prefs), out=str(out), max_steps=steps,
                         batch_size=batch, lr=1e-5, save_every=10**9, cache_dir=str(out.parent / "cache"), **extra)
    plugin = get_trainer(trainer)
    plugin.setup(config)
    from mmbench.trainers.setup import precompute_shared

    if cached or trainer == "bdhs":
        # What an ablation computes once before its first point: offline BDHS negatives (TRL is
        # handed its second pair ready-made) and, with --cached, every reference log-prob.
        precompute_shared(config, bdhs=trainer == "bdhs")
    if not cached:  # nothing cached: not by the precompute, not by an earlier repetition
        from mmbench.trainers.refcache import RefLogpCache

        cache = RefLogpCache(out.parent / "cache" / "reference-logps.sqlite")
        cache._db.execute("DELETE FROM ref")
        cache._db.commit()
        cache.close()
    start = time.perf_counter()
    plugin.train()
    return steps * batch / (time.perf_counter() - start)


def run_trl(base: Path, prefs: Path, out: Path, steps: int, batch: int, expand_bdhs: bool) -> float:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from mmbench.harness.model import load_model

    policy, reference = load_model(base), load_model(base)
    rows = [json.loads(line) for line in prefs.read_text().splitlines()]
    if expand_bdhs:  # TRL is two-way: a three-completion BDHS batch becomes two pairs per example,
        # the second with the very BDHS negatives mmbench trained on (same lengths, same work).
        (negatives_file,) = (out.parent / "cache").glob("bdhs-*.jsonl")
        negatives = {n["id"]: n["text"] for n in map(json.loads, negatives_file.read_text().splitlines())}
        rows = [r for row in rows if row["id"] in negatives
                for r in (row, {**row, "rejected": negatives[row["id"]]})]
    data = Dataset.from_dict({
        "images": [[Image.open(prefs.parent / r["image"]).convert("RGB")] for r in rows],
        "prompt": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": r["prompt"]}]}] for r in rows],
        "chosen": [[{"role": "assistant", "content": [{"type": "text", "text": r["chosen"]}]}] for r in rows],
        "rejected": [[{"role": "assistant", "content": [{"type": "text", "text": r["rejected"]}]}] for r in rows],
    })
    args = DPOConfig(output_dir=str(out), per_device_train_batch_size=batch * (2 if expand_bdhs else 1),
                     max_steps=steps, learning_rate=1e-5, report_to=[], use_cpu=True, save_strategy="no",
                     logging_steps=10**9, beta=0.1, dataloader_num_workers=0, bf16=False, fp16=False)
    trainer = DPOTrainer(model=policy.model, ref_model=reference.model, args=args, train_dataset=data,
                         processing_class=policy.processor)
    start = time.perf_counter()
    trainer.train()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--cached", action="store_true", help="mmbench reads reference log-probs from its cache")
    parser.add_argument("--repeat", type=int, default=1,
                        help="alternate mmbench and TRL this many times and report the median ratio (a shared, "
                             "noisy machine slows both sides alike only when they interleave)")
    parser.add_argument("--only", choices=("dpo", "bdhs"), default=None)
    parser.add_argument("--image-tokens", type=int, default=16,
                        help="image placeholder tokens per prompt, a square (576: LLaVA-1.5's 24x24; the prompt then "
                             "dwarfs the completions, as at the study's scale)")
    parser.add_argument("--unshared", action="store_true",
                        help="also time mmbench with --no-share-prefix (every completion re-runs its prompt and "
                             "image, as TRL does), in the same alternation")
    args = parser.parse_args()
    side = round(args.image_tokens ** 0.5)
    if side * side != args.image_tokens:
        parser.error(f"--image-tokens must be a square number, got {args.image_tokens}")
    from statistics import median

    from mmbench.world.tinyllava import tiny_llava_for_tests

    root = Path(tempfile.mkdtemp(prefix="mmbench-bench-"))
    prefs = make_data(root / "data", args.steps * args.batch)
    texts = [json.loads(line)[k] for line in prefs.read_text().splitlines() for k in ("prompt", "chosen", "rejected")]
    base = tiny_llava_for_tests(root / "models", texts + ["tiny"], vision_width=128, vision_layers=4,
                                text_width=256, text_layers=4, heads=4, image_size=16 * side, patch_size=16)
    variants = {"mmbench": {}, **({"mmbench --no-share-prefix": {"share_prefix": False}} if args.unshared else {})}
    unit = {"dpo": "pairs/s", "bdhs": "examples/s"}
    for kind in ("dpo", "bdhs"):
        if args.only not in (None, kind):
            continue
        ratios: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(args.repeat):
            extra = {"gamma": 0.5} if kind == "bdhs" else {}
            rates = {name: run_mmbench(base, prefs, root / f"ours_{kind}{r}_{i}", kind, args.steps, args.batch,
                                       args.cached, **extra, **options)
                     for i, (name, options) in enumerate(variants.items())}
            theirs = run_trl(base, prefs, root / f"trl_{kind}{r}", args.steps, args.batch, expand_bdhs=kind == "bdhs")
            for name, ours in rates.items():
                ratios[name].append(ours / theirs)
                print(f"{kind.upper():5} {name:24} {ours:6.1f} {unit[kind]}   TRL {theirs:6.1f}"
                      f"{' (2 pairs each)' if kind == 'bdhs' else ''}   ratio {ours / theirs:.2f}x", flush=True)
        if args.repeat > 1:
            for name, values in ratios.items():
                print(f"{kind.upper():5} {name:24} median ratio over {args.repeat} alternations: {median(values):.2f}x "
                      f"(min {min(values):.2f}, max {max(values):.2f})", flush=True)


if __name__ == "__main__":
    main()
