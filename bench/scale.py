"""The study's shape: a LLaVA-1.6-7B-shaped model with random weights, measured end to end.

    python bench/scale.py            # on one GPU (bf16): the real 7B shape, < 8 minutes on an H200
    python bench/scale.py --tiny     # the same code paths at a reduced size, on CPU in seconds (CI)

The model is `LlavaNextForConditionalGeneration` built from config, nothing downloaded: the
published llava-v1.6-vicuna-7b shape — CLIP ViT-L/14 at 336 px (1024 wide, 24 layers, 16 heads,
feature layer −2), a Vicuna/Llama-2-7B language model (4096 wide, 32 layers, 32 heads, 11008 MLP),
a 2-layer GELU projector, AnyRes pinpoints 336×672, 672×336, 672×672, 1008×336, 336×1008 — with a
word-level tokenizer padded to the real vocabulary size (32 000 Llama tokens + <image> → 32 064).

Measured: (a) eval generation samples/s, POPE-style (yes/no) and caption-style prompts, batch
1/16/64; (b) BDHS negative generation examples/s; (c) train pairs/s, peak memory and MFU for LoRA
r128 α256 and for full fine-tuning with gradient checkpointing, each with a live reference and
reference-free (cached reference log-probs); (d) TRL's DPOTrainer on the same model, pairs and
settings.  Then a GPU-hours estimate for the study's γ grid.  Prints one table.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PINPOINTS_7B = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
SHAPE_7B = dict(vision_width=1024, vision_mlp=4096, vision_layers=24, vision_heads=16, image_size=336, patch=14,
                text_width=4096, text_mlp=11008, text_layers=32, text_heads=32, vocab=32064, max_positions=4096,
                pinpoints=PINPOINTS_7B)
SHAPE_TINY = dict(vision_width=64, vision_mlp=128, vision_layers=2, vision_heads=2, image_size=28, patch=14,
                  text_width=64, text_mlp=128, text_layers=2, text_heads=2, vocab=1024, max_positions=1024,
                  pinpoints=[[28, 56], [56, 28], [56, 56]])
# The study: 5 γ points × 5k pairs × 3 epochs, and 6 evaluations (base + 5 points) of 8 benchmarks.
GRID = dict(points=5, pairs=5000, epochs=3, evaluations=6)
# Records per benchmark at their real sizes, and answer length (short: yes/no/option; long: caption-like).
BENCHMARKS = {"pope": (9000, "short"), "mmhal": (96, "long"), "amber_g": (1004, "long"), "amber_d": (14216, "short"),
              "objhal": (300, "long"), "llava_w": (60, "long"), "mmvet": (218, "long"), "rwqa": (765, "short")}
WORDS = ("is there a red blue green yellow square circle triangle in the image ? yes no describe picture detail . "
         "the it small big sits middle left right top bottom of and with a an what colour shape how many one two "
         "three").split()


@dataclass
class Row:
    what: str
    rate: float | None
    unit: str
    memory_gb: float | None = None
    mfu: float | None = None
    note: str = ""


def build(shape: dict, dtype, device):
    """A LlavaNext model + processor from config (random weights) wrapped as mmbench's adapter."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil
    from transformers import LlavaNextProcessor

    from mmbench.harness.model import HFVisionLanguageModel
    from mmbench.world.tinyllava import CHAT_TEMPLATE, IMAGE

    tokenizer = _tokenizer(shape["vocab"])
    vision = CLIPVisionConfig(hidden_size=shape["vision_width"], intermediate_size=shape["vision_mlp"],
                              num_hidden_layers=shape["vision_layers"], num_attention_heads=shape["vision_heads"],
                              image_size=shape["image_size"], patch_size=shape["patch"], projection_dim=768)
    text = LlamaConfig(vocab_size=shape["vocab"], hidden_size=shape["text_width"], intermediate_size=shape["text_mlp"],
                       num_hidden_layers=shape["text_layers"], num_attention_heads=shape["text_heads"],
                       num_key_value_heads=shape["text_heads"], max_position_embeddings=shape["max_positions"],
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, rms_norm_eps=1e-5)
    config = LlavaNextConfig(vision_config=vision, text_config=text, image_grid_pinpoints=shape["pinpoints"],
                             image_token_index=tokenizer.convert_tokens_to_ids(IMAGE), vision_feature_layer=-2,
                             vision_feature_select_strategy="default", projector_hidden_act="gelu",
                             pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaNextForConditionalGeneration(config).to(dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    size = shape["image_size"]
    images = LlavaNextImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                        image_grid_pinpoints=shape["pinpoints"], image_mean=[0.5] * 3,
                                        image_std=[0.5] * 3)
    processor = LlavaNextProcessor(image_processor=images, tokenizer=tokenizer, patch_size=shape["patch"],
                                   vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                                   num_additional_image_tokens=1)
    model.eval()
    return HFVisionLanguageModel(model, processor, name="llava-next-7b-shape")


@functools.lru_cache(maxsize=None)
def _tokenizer(vocab: int):
    from mmbench.world.tinyllava import train_tokenizer

    words = len(train_tokenizer([" ".join(WORDS)]))
    # Exactly the real vocabulary size: filler words pad the word-level vocabulary up to it.
    tokenizer = train_tokenizer([" ".join(WORDS)], extra_words=[f"w{i}" for i in range(vocab - words)])
    if len(tokenizer) != vocab:
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens, not {vocab}")
    return tokenizer


def make_examples(root: Path, n: int, image_px: tuple[int, int]):
    from mmbench.trainers.data import PreferenceExample

    (root / "images").mkdir(parents=True, exist_ok=True)
    colours = [(220, 30, 30), (30, 30, 220), (30, 200, 30), (230, 220, 40)]
    names = ["red", "blue", "green", "yellow"]
    out = []
    for i in range(n):
        image = Image.new("RGB", image_px, colours[i % 4])
        image.putpixel((i % image_px[0], 0), (i % 251, 7, 9))  # unique bytes: no cross-example cache hits
        path = root / "images" / f"{i}.png"
        image.save(path)
        chosen = f"the square is {names[i % 4]} . it is small and it sits in the middle of the image ."
        rejected = f"the square is {names[(i + 1) % 4]} . it is big and it sits on the left of the image ."
        out.append(PreferenceExample(id=f"ex{i}", prompt="describe the image in detail .", image=path,
                                     chosen=chosen, rejected=rejected))
    return out


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device):
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb(device):
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def eval_rates(adapter, examples, batches, max_new: dict, device) -> list[Row]:
    from mmbench.benchmarks.base import GenerationSettings
    from mmbench.harness.generation import GenerationRequest

    rows = []
    for style, prompt in (("short", "is there a red square in the image ?"), ("long", "describe the image in detail .")):
        for batch in batches:
            n = max(batch * 2, 4)
            requests = [GenerationRequest(prompt, examples[i % len(examples)].image) for i in range(n)]
            settings = GenerationSettings(max_new_tokens=max_new[style], short_answer=style == "short")
            adapter.generate(requests[:batch], settings, batch_size=batch)  # warm-up
            _peak_reset(device)
            _sync(device)
            start = time.perf_counter()
            adapter.generate(requests, settings, batch_size=batch)
            _sync(device)
            rows.append(Row(f"(a) eval {'POPE' if style == 'short' else 'caption'}-style, batch {batch}, "
                            f"{max_new[style]} new tokens", n / (time.perf_counter() - start), "samples/s",
                            _peak_gb(device)))
    return rows


def bdhs_rate(adapter, examples, device, tiny: bool) -> Row:
    from mmbench.trainers.bdhs import BDHSConfig, sample_negatives

    def embed(texts):  # a bag-of-words stand-in: the measured cost is the model's, not the embedder's
        vecs = torch.zeros(len(texts), 64)
        for row, text in enumerate(texts):
            for word in text.split():
                vecs[row, hash(word) % 64] += 1
        return torch.nn.functional.normalize(vecs + 1e-6, dim=-1)

    config = BDHSConfig(batch_size=16 if not tiny else 8, max_tries=2, epsilon_s=0.0)
    part = examples[:config.batch_size * 2]
    _peak_reset(device)
    _sync(device)
    start = time.perf_counter()
    sample_negatives(adapter, part, config, embed)
    _sync(device)
    return Row("(b) BDHS negatives (masked generation, batch %d)" % config.batch_size,
               len(part) / (time.perf_counter() - start), "examples/s", _peak_gb(device))


def train_flops(adapter, examples, batch: int, lora: bool, live_reference: bool) -> float:
    """Model FLOPs of one DPO step (2 completions per pair): 2·N per token forward, 4·N backward for
    full fine-tuning (2·N with LoRA: input gradients only); the frozen tower forward only; a live
    reference adds one forward.  Recomputation by checkpointing is not counted (MFU convention)."""
    from mmbench.harness import families

    model = adapter.model
    parts = families.model_parts(families._base_model(model))
    n_lm = sum(p.numel() for n, p in model.named_parameters()
               if families.parameter_group(n.replace("base_model.model.", ""), parts) == "language"
               and "embed_tokens" not in n and "lora_" not in n)
    n_vis = sum(p.numel() for n, p in model.named_parameters()
                if families.parameter_group(n.replace("base_model.model.", ""), parts) == "vision")
    encoded = adapter.encode_completions([e.request for e in examples[:batch]] * 2,
                                         [adapter.completion_ids(e.chosen) for e in examples[:batch]]
                                         + [adapter.completion_ids(e.rejected) for e in examples[:batch]])
    tokens = int(encoded["attention_mask"].sum())
    patches = int(encoded["pixel_values"].shape[0] * encoded["pixel_values"].shape[1]) // 2
    patch_tokens = patches * (adapter.model.config.vision_config.image_size // adapter.model.config.vision_config.patch_size) ** 2
    forward = 2 * n_lm * tokens + 2 * n_vis * patch_tokens
    backward = (2 if lora else 4) * n_lm * tokens
    return forward + backward + (forward if live_reference else 0)


def train_rate(adapter_factory, examples, root: Path, *, lora: bool, checkpointing: bool, live: bool, steps: int,
               batch: int, device: str, peak_tflops: float, label: str) -> Row:
    from mmbench.trainers.config import TrainConfig
    from mmbench.trainers.loop import run_training
    from mmbench.trainers.refcache import RefLogpCache
    from mmbench.trainers.steps import dpo_step, reference_logps

    adapter = adapter_factory()
    cache_path = root / f"cache-{label}.sqlite"
    config = TrainConfig(trainer="dpo", out=str(root / f"run-{label}"), max_steps=steps, batch_size=batch, lr=1e-6,
                         lora=lora, lora_rank=128, lora_alpha=256, gradient_checkpointing=checkpointing,
                         live_reference=live, save_every=10**9, logp_chunk_size=0 if device != "cuda" else 1024)
    used = examples[:steps * batch]
    if not live:  # the shared precompute of an ablation: every reference log-prob into the cache
        from contextlib import nullcontext

        from mmbench.trainers.loop import TrainContext

        cache, model = RefLogpCache(cache_path), adapter.model
        ctx = TrainContext(config, None, adapter, model, lambda: nullcontext(model), "scale", used, ref_cache=cache)
        for start in range(0, len(used), batch):
            chunk = used[start:start + batch]
            reference_logps(ctx, chunk, {"chosen": [adapter.completion_ids(e.chosen) for e in chunk],
                                         "external": [adapter.completion_ids(e.rejected) for e in chunk]},
                            cached={"chosen", "external"})
        cache.close()

    def prepare(ctx):
        ctx.ref_cache = RefLogpCache(cache_path) if not live else None

    flops = train_flops(adapter, used, batch, lora, live)
    timings = []

    def timed_step(ctx, batch_examples, step):
        _sync(device)
        timings.append(time.perf_counter())
        return dpo_step(ctx, batch_examples, step)

    _peak_reset(device)
    result = run_training(config, adapter, timed_step, used, "scale", prepare=prepare, progress=False)
    _sync(device)
    timings.append(time.perf_counter())
    # The first step warms up kernels and allocators; rate over the rest.
    span = timings[-1] - timings[1] if len(timings) > 2 else timings[-1] - timings[0]
    n_steps = max(len(timings) - 2, 1)
    rate = n_steps * batch / span
    mfu = flops * n_steps / span / (peak_tflops * 1e12) if device == "cuda" else None
    memory = _peak_gb(device)
    del result, adapter
    _peak_reset(device)
    return Row(f"(c) mmbench DPO {label}", rate, "pairs/s", memory, mfu)


def trl_rate(adapter_factory, examples, root: Path, *, lora: bool, steps: int, batch: int, device: str,
             label: str) -> Row:
    try:
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer
    except ImportError:
        return Row(f"(d) TRL DPOTrainer {label}", None, "pairs/s", note="trl not installed")
    adapter = adapter_factory()
    used = examples[:steps * batch]
    data = Dataset.from_dict({
        "images": [[Image.open(e.image).convert("RGB")] for e in used],
        "prompt": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": e.prompt}]}] for e in used],
        "chosen": [[{"role": "assistant", "content": [{"type": "text", "text": e.chosen}]}] for e in used],
        "rejected": [[{"role": "assistant", "content": [{"type": "text", "text": e.rejected}]}] for e in used],
    })
    options = dict(output_dir=str(root / f"trl-{label}"), per_device_train_batch_size=batch, max_steps=steps,
                   learning_rate=1e-6, report_to=[], save_strategy="no", logging_steps=10**9, beta=0.1,
                   dataloader_num_workers=0, gradient_checkpointing=True, max_length=None,
                   bf16=device == "cuda", use_cpu=device != "cuda")
    peft_config, reference = None, None
    if lora:
        from peft import LoraConfig

        from mmbench.harness import families

        peft_config = LoraConfig(r=128, lora_alpha=256, lora_dropout=0.0,
                                 target_modules=families.lora_target_regex(adapter.model))
    else:
        reference = copy.deepcopy(adapter.model)
    trainer = DPOTrainer(model=adapter.model, ref_model=reference, args=DPOConfig(**options), train_dataset=data,
                         processing_class=adapter.processor, peft_config=peft_config)
    _peak_reset(device)
    start = time.perf_counter()
    trainer.train()
    _sync(device)
    rate = steps * batch / (time.perf_counter() - start)
    memory = _peak_gb(device)
    del trainer, adapter, reference
    _peak_reset(device)
    return Row(f"(d) TRL DPOTrainer {label} (gradient checkpointing, live reference)", rate, "pairs/s", memory)


def grid_hours(train_rows: dict[str, Row], eval_rows: list[Row], bdhs: Row) -> list[str]:
    """GPU-hours for the study's γ grid from the measured rates (per GPU; no multi-GPU scaling)."""
    def rate(rows, style):
        matching = [r for r in rows if style in r.what and r.rate]
        return max(r.rate for r in matching) if matching else None

    pair_steps = GRID["points"] * GRID["pairs"] * GRID["epochs"]
    lines = []
    short, long = rate(eval_rows, "POPE"), rate(eval_rows, "caption")
    records = {"short": sum(n for n, s in BENCHMARKS.values() if s == "short"),
               "long": sum(n for n, s in BENCHMARKS.values() if s == "long")}
    eval_s = (records["short"] / short + records["long"] / long) * GRID["evaluations"] if short and long else None
    bdhs_s = GRID["pairs"] / bdhs.rate if bdhs.rate else None
    for name, row in train_rows.items():
        if not row.rate:
            continue
        train_s = pair_steps / row.rate
        total = train_s + (eval_s or 0) + (bdhs_s or 0)
        lines.append(f"γ grid with {name}: train {train_s / 3600:.1f} h + BDHS negatives "
                     f"{(bdhs_s or 0) / 3600:.1f} h + eval {(eval_s or 0) / 3600:.1f} h = {total / 3600:.1f} GPU-hours")
    return lines


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="reduced size, CPU, seconds (CI)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per configuration")
    parser.add_argument("--batch", type=int, default=None, help="pairs per training step")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="MFU denominator (bf16 dense)")
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    if not args.tiny and device != "cuda":
        parser.error("the 7B shape needs a GPU; use --tiny on CPU")
    shape = SHAPE_TINY if args.tiny else SHAPE_7B
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    steps = args.steps or (2 if args.tiny else 6)
    batch = args.batch or (2 if args.tiny else 8)
    batches = (1, 4) if args.tiny else (1, 16, 64)
    max_new = {"short": 4, "long": 8} if args.tiny else {"short": 8, "long": 128}
    root = Path(tempfile.mkdtemp(prefix="mmbench-scale-"))
    image_px = (40, 30) if args.tiny else (640, 480)
    examples = make_examples(root / "data", max(steps * batch, 128 if not args.tiny else 8), image_px)

    t0 = time.perf_counter()
    adapter = build(shape, dtype, device)
    n_params = sum(p.numel() for p in adapter.model.parameters())
    print(f"model: LlavaNextForConditionalGeneration, {n_params / 1e6:,.1f} M parameters, {dtype}, {device} "
          f"(built in {time.perf_counter() - t0:.1f} s)", flush=True)
    rows = eval_rates(adapter, examples, batches, max_new, device)
    bdhs = bdhs_rate(adapter, examples, device, args.tiny)
    rows.append(bdhs)
    base_state = {k: v.detach().clone() for k, v in adapter.model.state_dict().items()} if args.tiny else None
    del adapter
    _peak_reset(device)

    def factory():
        fresh = build(shape, dtype, device)
        if base_state is not None:
            fresh.model.load_state_dict(base_state)
        return fresh

    train_rows = {}
    for lora, label in ((True, "LoRA r128 α256"), (False, "full FT + checkpointing")):
        for live in (True, False):
            name = f"{label}, {'live reference' if live else 'reference-free'}"
            row = train_rate(factory, examples, root, lora=lora, checkpointing=not lora or args.tiny, live=live,
                             steps=steps, batch=batch, device=device, peak_tflops=args.peak_tflops, label=name)
            rows.append(row)
            train_rows[name] = row
            print(f"  {row.what}: {row.rate:.2f} {row.unit}", flush=True)
    if not args.skip_trl:
        for lora, label in ((True, "LoRA r128 α256"), (False, "full FT")):
            rows.append(trl_rate(factory, examples, root, lora=lora, steps=steps, batch=batch, device=device,
                                 label=label))
    print()
    print(f"| measurement | rate | peak memory (GiB) | MFU (of {args.peak_tflops:g} TFLOP/s) |")
    print("|---|---|---|---|")
    for row in rows:
        rate = f"{row.rate:.2f} {row.unit}" if row.rate else f"— ({row.note})"
        memory = f"{row.memory_gb:.1f}" if row.memory_gb is not None else "—"
        mfu = f"{100 * row.mfu:.1f} %" if row.mfu is not None else "—"
        print(f"| {row.what} | {rate} | {memory} | {mfu} |")
    print()
    print(f"Study γ grid ({GRID['points']} points × {GRID['pairs']} pairs × {GRID['epochs']} epochs + "
          f"{GRID['evaluations']} evaluations of {len(BENCHMARKS)} benchmarks at real sizes)"
          + (" — tiny shape, NOT a GPU estimate" if args.tiny else "") + ":")
    for line in grid_hours(train_rows, rows, bdhs):
        print("  " + line)
    print(f"total wall time {time.perf_counter() - t0:.1f} s")
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=1))
    return rows


if __name__ == "__main__":
    main()
