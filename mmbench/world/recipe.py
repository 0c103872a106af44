"""The recipe that builds the shipped base model: `mmbench world pretrain`.

Three stages on the world's SFT set, each a resumable `pretrain()` run that starts from the one
before (reference/world-notes.md explains every choice):

1. perceive — description, counting and "what is where" tasks, plus an auxiliary loss that makes
   each image token (projector output) name its cell's object kind and colour.  Without it the
   tiny vision tower learns colour and count but not shape.
2. bind — the full question mix (about half existence questions), the perception loss kept, plus
   a binding loss: each image token, read from the language model's layer-2 states, says whether
   its cell holds the kind the question names.  Without it yes/no questions can sit at chance.
3. settle — the full mix at a lower learning rate with NO auxiliary loss.  The binding loss
   teaches grounding so directly that the co-occurrence prior never shows; after dropping it, the
   prior fills the gaps left by the hard (small, faint, noisy) objects — the hallucination regime
   the study needs: absent co-occurrence partners affirmed far more often than random kinds.

Every stage writes a full model folder under `.<out>.stages/`, so an interrupted run continues
where it stopped; the final folder holds float16 weights and `world_model.json`.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mmbench.errors import MmbenchError

RECIPE = "world-tiny-llava"
RECIPE_VERSION = 2
# Whole batches. Two length-sorted micro-batches (length_chunks=2) give the same gradient up to
# rounding and 1.16x the steps/s, but the one full build with them came out weaker (docs/base_model.md).
LENGTH_CHUNKS = 1
DEFAULT_STEPS = 2600
DEFAULT_SEED = 0
READING_TASKS = frozenset({"reading", "reading_at", "word_pos"})
PERCEPTION_TASKS = frozenset({"caption", "detail", "count", "total", "colour_count", "what_at", "colour_at",
                              "position"}) | READING_TASKS


@dataclass(frozen=True)
class Stage:
    name: str
    share: float  # of the total steps
    tasks: frozenset[str] | None  # SFT task families; None = all
    lr: float
    vision_lr: float
    patch_weight: float  # kind/colour loss per image token
    bind_weight: float  # "does this cell hold the asked kind" loss per image token
    warmup: int
    reading_boost: int  # copies of each reading row: they are ~1% of the SFT set, too few to learn from


STAGES = (
    Stage("perceive", 0.35, PERCEPTION_TASKS, 1e-3, 2e-3, 1.0, 0.0, 50, 4),
    Stage("bind", 0.38, None, 1e-3, 2e-3, 1.0, 1.0, 20, 6),
    Stage("settle", 0.27, None, 5e-4, 5e-4, 0.0, 0.0, 20, 3),
)


def stage_steps(total: int) -> list[int]:
    """Split `total` steps over the stages by share (at least one step each)."""
    if total < len(STAGES):
        raise MmbenchError(f"--steps must be at least {len(STAGES)} (one per stage)")
    steps = [max(1, round(total * s.share)) for s in STAGES]
    steps[-1] = max(1, total - sum(steps[:-1]))
    return steps


# ---- auxiliary losses --------------------------------------------------------------------------
class PatchAux:
    """Per-image-token targets from the scene graph behind each example (`scenes.patch_labels`,
    plus the printed word: its cell's tokens are kind "text" and name the word, so that the
    vision tower learns to read — without it TextVQA stayed at chance).

    Image tokens are found by id in the input, so the placement of the image in the chat
    template does not matter; their order is the vision tower's row-major patch order.
    """

    def __init__(self, examples, hidden: int, image_token_id: int, patch_weight: float, bind_weight: float,
                 bind_layer: int = 2):
        import torch

        from mmbench.world.scenes import COLOURS, KINDS, WORDS

        self.examples, self.image_token_id = examples, image_token_id
        self.patch_weight, self.bind_weight, self.bind_layer = patch_weight, bind_weight, bind_layer
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1234)  # the heads' init must not shift the data or model streams
            self.head = torch.nn.ModuleDict({
                "kind": torch.nn.Linear(hidden, len(KINDS) + 2),
                "word": torch.nn.Linear(hidden, len(WORDS) + 1),
                "colour": torch.nn.Linear(hidden, len(COLOURS) + 1),
                "bind": torch.nn.Linear(hidden, 1),
            })
        self._kind_re = re.compile(r"\b(" + "|".join(KINDS) + r")(?:e?s)?\b")
        self._cache: dict[int, tuple] = {}

    def _targets(self, i: int) -> tuple:
        if i not in self._cache:
            from mmbench.world.scenes import CELL, IMAGE_SIZE, KINDS, PATCH, WORDS, patch_labels

            prompt = self.examples.rows[i][1].lower()
            named = set(self._kind_re.findall(prompt))
            # Only questions naming exactly one kind have an unambiguous binding target.
            asked = KINDS.index(named.pop()) + 1 if len(named) == 1 else 0
            scene, side = self.examples.scene(i), IMAGE_SIZE // PATCH
            labels = [[k, c, 0] for k, c in patch_labels(scene)]
            for n, label in enumerate(labels):
                if (n // side * PATCH // CELL) * 2 + (n % side * PATCH // CELL) == scene.word_cell:
                    label[0], label[2] = len(KINDS) + 1, WORDS.index(scene.word) + 1
            self._cache[i] = (labels, asked)
        return self._cache[i]

    def __call__(self, outputs, inputs, idx, batch=None):
        import torch
        import torch.nn.functional as F

        # `idx` may be a micro-batch of the step's `batch`: each mean is weighted by this pass's
        # share of what it averages over in the whole batch, so the micro-batches add up to it.
        batch = idx if batch is None else batch
        mask = inputs["input_ids"] == self.image_token_id
        targets = [self._targets(i) for i in idx]
        labels = torch.tensor([t[0] for t in targets], device=mask.device)  # (batch, patches, 2)
        loss = outputs.logits.new_zeros(())
        if self.patch_weight:
            feats = outputs.hidden_states[0][mask].view(*labels.shape[:2], -1)
            kind = F.cross_entropy(self.head["kind"](feats).flatten(0, 1), labels[..., 0].flatten())
            colour = F.cross_entropy(self.head["colour"](feats).flatten(0, 1), labels[..., 1].flatten())
            word = F.cross_entropy(self.head["word"](feats).flatten(0, 1), labels[..., 2].flatten())
            share = len(idx) / len(batch) if len(idx) != len(batch) else 1.0
            loss = loss + self.patch_weight * (kind + colour + word) * share
        if self.bind_weight:
            asked = torch.tensor([t[1] for t in targets], device=mask.device)
            rows = asked > 0
            if rows.any():
                feats = outputs.hidden_states[self.bind_layer][mask].view(*labels.shape[:2], -1)[rows]
                target = (labels[rows][..., 0] == asked[rows, None]).float()
                logit = self.head["bind"](feats).squeeze(-1)
                asked_in_batch = sum(self._targets(i)[1] > 0 for i in batch)
                share = int(rows.sum()) / asked_in_batch if len(idx) != len(batch) else 1.0
                loss = loss + self.bind_weight * F.binary_cross_entropy_with_logits(logit, target) * share
        return loss


# ---- vocabulary --------------------------------------------------------------------------------
def world_texts(world_dir: Path):
    """Every text the model is trained on or asked: SFT rows and every benchmark's prompts and
    references, so that no benchmark word maps to <unk>."""
    from mmbench.benchmarks import BENCHMARKS, load_records
    from mmbench.benchmarks.base import SINGLE_WORD
    from mmbench.world.training_sets import read_jsonl

    yield SINGLE_WORD
    for row in read_jsonl(world_dir / "sft" / "train.jsonl"):
        yield row["prompt"]
        yield row["response"]
    for bench in BENCHMARKS.values():
        for record in load_records(bench, str(world_dir)):
            yield record.prompt
            yield from _strings(record.reference)
    for row in read_jsonl(world_dir / "prefs" / "train.jsonl"):
        yield row["prompt"]


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def _initial_model(world_dir: Path, folder: Path, seed: int, sizes: dict) -> Path:
    """A fresh model whose tokenizer knows every world word (built once, then reused)."""
    from mmbench.world.tinyllava import build_tiny_llava, save_tiny_llava, train_tokenizer

    if (folder / "config.json").exists():
        return folder
    model, processor = build_tiny_llava(train_tokenizer(world_texts(world_dir)), seed=seed, **sizes)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_tiny_llava(model, processor, tmp)
    tmp.rename(folder)
    return folder


# ---- the whole recipe ----------------------------------------------------------------------------
def pretrain_base(out: str | Path, *, seed: int = DEFAULT_SEED, steps: int = DEFAULT_STEPS, threads: int = 0,
                  world_dir: str | Path | None = None, batch_size: int = 32, progress: bool = True,
                  log_every: int = 25, checkpoint_every: int = 200, model: dict | None = None,
                  device: str = "cpu") -> Path:
    """Run the recipe from scratch (or resume it) and write the base model to `out`."""
    import torch

    from mmbench.harness.model import load_model
    from mmbench.harness.provenance import file_sha256
    from mmbench.world.build import WORLD_VERSION, ensure_world
    from mmbench.world.pretrain import pretrain
    from mmbench.world.training_sets import SftExamples

    out = Path(out)
    world_dir = Path(world_dir) if world_dir is not None else ensure_world(seed=0)
    world = json.loads((world_dir / "world.json").read_text(encoding="utf-8"))
    plan = stage_steps(steps)
    marker = {"recipe": RECIPE, "recipe_version": RECIPE_VERSION, "seed": seed, "steps": steps,
              "stages": [dict(asdict(s), tasks=sorted(s.tasks) if s.tasks else None, steps=n)
                         for s, n in zip(STAGES, plan)],
              "batch_size": batch_size, "world_version": world.get("version", WORLD_VERSION),
              "world_seed": world.get("seed"), "world_size": world.get("size"), "model": model or {},
              # The SFT set's bytes: a world rebuilt otherwise (new kinds, say) never resumes old stages.
              "sft_sha256": file_sha256(world_dir / "sft" / "train.jsonl")}
    if torch.device(device).type != "cpu":
        # A GPU build is not bit-identical to the CPU one: neither stands in for the other (CPU
        # markers keep their old form, so folders built before this key existed stay finished).
        marker["device"] = torch.device(device).type
    if _same_run(out, marker):
        return out  # already built with these settings
    if out.exists() and not (out / "config.json").exists() and any(out.iterdir()):
        raise MmbenchError(f"{out} exists and is not a model folder; choose another --out")
    stages_dir = out.parent / f".{out.name}.stages"
    stages_dir.mkdir(parents=True, exist_ok=True)
    _check_plan(stages_dir, marker)
    prev = _initial_model(world_dir, stages_dir / "init", seed, model or {})
    t0, logs = time.perf_counter(), []
    for stage, n in zip(STAGES, plan):
        examples = SftExamples(world_dir, tasks=set(stage.tasks) if stage.tasks else None)
        examples.rows = [row for row in examples.rows
                         for _ in range(stage.reading_boost if row[3] in READING_TASKS else 1)]
        aux = None
        if stage.patch_weight or stage.bind_weight:
            config = json.loads((prev / "config.json").read_text(encoding="utf-8"))
            aux = PatchAux(examples, config["text_config"]["hidden_size"], config["image_token_index"],
                           stage.patch_weight, stage.bind_weight)
        if progress:
            print(f"stage {stage.name}: {n} steps on {len(examples)} examples", flush=True)
        folder = stages_dir / stage.name
        pretrain(examples, folder, progress=progress, aux=aux, init_from=str(prev), steps=n, seed=seed,
                 batch_size=batch_size, lr=stage.lr, vision_lr=stage.vision_lr, warmup_steps=stage.warmup,
                 log_every=log_every, checkpoint_every=checkpoint_every, threads=threads, device=device,
                 length_chunks=LENGTH_CHUNKS,
                 aux_loss={"patch": stage.patch_weight, "bind": stage.bind_weight} if aux else {})
        for line in (folder / "pretrain_log.jsonl").read_text(encoding="utf-8").splitlines():
            logs.append({"stage": stage.name, **json.loads(line)})
        prev = folder
    # Half precision halves the shipped size; load_model upcasts to float32 on CPU.
    lm = load_model(prev, dtype="float32", device="cpu")
    lm.model.to(torch.float16)
    tmp = out.parent / f".{out.name}.final"
    shutil.rmtree(tmp, ignore_errors=True)
    lm.model.save_pretrained(tmp, safe_serialization=True)
    lm.processor.save_pretrained(tmp)
    (tmp / "pretrain_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in logs), encoding="utf-8")
    marker["last_call_wall_s"] = round(time.perf_counter() - t0, 1)  # excludes earlier, resumed calls
    (tmp / "world_model.json").write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    shutil.rmtree(stages_dir, ignore_errors=True)
    return out


def _same_run(out: Path, marker: dict) -> bool:
    try:
        saved = json.loads((out / "world_model.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    saved.pop("last_call_wall_s", None)
    return saved == json.loads(json.dumps(marker))


def _check_plan(stages_dir: Path, marker: dict) -> None:
    """A half-finished run may only be resumed with the same settings."""
    plan = stages_dir / "plan.json"
    if plan.exists():
        if json.loads(plan.read_text(encoding="utf-8")) != json.loads(json.dumps(marker)):
            raise MmbenchError(f"{stages_dir} holds a run with other settings; delete it to start over")
    else:
        plan.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
