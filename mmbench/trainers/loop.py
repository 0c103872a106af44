"""The one training loop every trainer uses, on `accelerate`: gradient accumulation, clipping,
mixed precision, sharding over processes, resumable state, atomic final checkpoint.

A trainer contributes only a step function (examples -> loss, metrics); data order and every
random draw derive from (seed, step), so a resumed or multi-process run sees the same batches
as an uninterrupted single-process one."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from mmbench.errors import MmbenchError
from mmbench.harness import families
from mmbench.trainers import sharding
from mmbench.trainers.config import TrainConfig
from mmbench.trainers.data import PreferenceExample


@dataclass
class TrainContext:
    """Everything a step function may use; built once per run."""

    config: TrainConfig
    accelerator: Any
    adapter: Any  # HFVisionLanguageModel of the policy (its .model is the unwrapped module)
    policy: Any  # the accelerate-prepared policy module (DDP-wrapped under several processes)
    reference: Callable[[], Any]  # context manager factory yielding the reference module
    reference_fingerprint: str
    examples: list[PreferenceExample]
    ref_cache: Any = None
    offline_bdhs: dict = field(default_factory=dict)
    embed: Any = None
    annotator: Any = None
    prompts: list[PreferenceExample] | None = None  # prompt-only rows for online sampling (--prompts)

    def step_generator(self, step: int, salt: int = 0) -> torch.Generator:
        """Identical on every process: online/offline coins and sampling noise per step."""
        return torch.Generator().manual_seed(self.config.seed * 1_000_003 + step * 7919 + salt)


StepFn = Callable[[TrainContext, list[PreferenceExample], int], tuple[torch.Tensor, dict]]


def global_batch(examples: list, batch_size: int, step: int, seed: int) -> list:
    """The examples of one optimizer step: a fresh seeded permutation per epoch."""
    n = len(examples)
    out = []
    for j in range(batch_size):
        index = step * batch_size + j
        epoch, position = divmod(index, n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1009 + epoch)).tolist()
        out.append(examples[order[position]])
    return out


def used_examples(examples: list, batch_size: int, steps: int, seed: int) -> list:
    """The examples `steps` optimizer steps reach (in file order): all of them once the steps
    cover an epoch, else the first positions of the epoch-0 permutation (as `global_batch`)."""
    n, total = len(examples), batch_size * steps
    if total >= n:
        return list(examples)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1009)).tolist()
    return [examples[i] for i in sorted(order[:total])]


def _trainable(model, config: TrainConfig):
    """Freeze the vision tower (found by structure, `families.model_parts`); the projector trains."""
    if config.freeze_vision:
        parts = families.model_parts(model)
        for name, parameter in model.named_parameters():
            if families.parameter_group(name, parts) == "vision":
                parameter.requires_grad_(False)
    return [p for p in model.parameters() if p.requires_grad]


def _optimizer(model, config: TrainConfig):
    """Two groups: the language model at `lr`, the vision side (projector, unfrozen tower) at `vision_lr`."""
    parts = families.model_parts(model)
    vision, other = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (other if families.parameter_group(name, parts) == "language" else vision).append(parameter)
    groups = [{"params": other, "lr": config.lr}]
    if vision:
        groups.append({"params": vision, "lr": config.vision_lr or config.lr})
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, weight_decay=config.weight_decay)
    # Adam's first step is lr·sign(g): float noise in near-zero gradients flips whole updates.
    # The fused kernel (one call for all parameters, as TRL's default adamw_torch_fused) when the
    # parameters live where it exists; the per-parameter loop otherwise.
    params = [p for group in groups for p in group["params"]]
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.AdamW(groups, weight_decay=config.weight_decay, fused=fused or None)


def _reference(adapter, config: TrainConfig, needed: bool = True):
    """With LoRA the reference is the base with adapters disabled; otherwise a frozen copy.

    Not `needed` (every reference log-prob the run uses is cached): nothing is built, and a step
    that asks for the reference anyway fails loudly instead of scoring with trained weights."""
    from contextlib import contextmanager, nullcontext

    if not needed:
        @contextmanager
        def absent():
            raise RuntimeError("the reference model was not constructed: every reference log-prob this "
                               "run needs was cached when it started (a cache entry went missing since)")
            yield
        absent.constructed = False
        return absent
    if config.lora:
        @contextmanager
        def disabled():
            with adapter.model.disable_adapter():
                yield adapter.model
        return disabled
    frozen = copy.deepcopy(adapter.model).eval()
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)
    return lambda: nullcontext(frozen)


def reference_needed(context: TrainContext, step_fn, examples: list) -> bool:
    """False when every reference log-prob the run's steps need is already in the cache.

    The step function says which offline completions it scores (`step_fn.reference_columns`:
    context, examples -> {column: [ids per example]}, or None when some completion is sampled
    during training); a step function without it (plug-ins) always gets a live reference."""
    import sys

    if context.config.live_reference or context.ref_cache is None:
        return True
    columns_of = getattr(step_fn, "reference_columns", None)
    columns = columns_of(context, examples) if columns_of is not None else None
    if columns is None:
        return True
    from mmbench.trainers.refcache import example_key

    keys = [(example_key(e), ids) for column in columns.values() for e, ids in zip(examples, column)]
    found = context.ref_cache.get_many(context.reference_fingerprint, keys)
    context.ref_cache.hits -= sum(v is not None for v in found)  # a check, not a use
    context.ref_cache.misses -= sum(v is None for v in found)
    if any(v is None for v in found):
        return True
    if context.accelerator is None or context.accelerator.is_main_process:
        print(f"reference: not loaded (all {len(keys)} reference log-probs this run needs are cached)",
              file=sys.stderr)
    return False


def _speed_options(adapter, config: TrainConfig) -> None:
    """Attention kernel and activation checkpointing on the policy (`train --attn-implementation`,
    `--gradient-checkpointing`); both leave the maths unchanged."""
    attn = getattr(config, "attn_implementation", None)
    if attn:
        try:
            adapter.model.set_attn_implementation(attn)
        except (ValueError, ImportError) as exc:
            raise MmbenchError(f"--attn-implementation {attn}: {str(exc).splitlines()[0]}") from None
    if getattr(config, "gradient_checkpointing", False):
        if hasattr(adapter.model, "activation_checkpointing_enable"):  # transformers ≥ 5.x's name
            adapter.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            adapter.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _apply_lora(adapter, config: TrainConfig) -> None:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise MmbenchError("--lora needs peft: pip install 'mmbench[lora]'") from None
    # The language model's attention/MLP projections, wherever the family keeps the language model.
    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      target_modules=families.lora_target_regex(adapter.model))
    adapter.model = get_peft_model(adapter.model, lora)


def partial_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


@dataclass
class TrainResult:
    accelerator: Any
    policy: Any
    adapter: Any
    config: TrainConfig
    work: Path
    last: dict


def run_training(config: TrainConfig, adapter, step_fn: StepFn, examples: list[PreferenceExample],
                 reference_fingerprint: str, prepare: Callable[[TrainContext], None] | None = None,
                 progress: bool = True, accelerator=None, provenance: dict | None = None) -> TrainResult:
    """Train from scratch or from the last saved state; `save_final` writes the checkpoint."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    work = partial_dir(Path(config.out))
    if accelerator is None:
        reset_accelerate_state()
    accelerator = accelerator or Accelerator(gradient_accumulation_steps=config.grad_accum,
                                             mixed_precision=config.mixed_precision,
                                             cpu=not torch.cuda.is_available())
    sharding.setup(accelerator, config)  # FSDP on CPU, options FSDP refuses
    processes = accelerator.num_processes
    micro = config.batch_size // config.grad_accum
    if micro % processes:
        raise MmbenchError(f"micro-batch {micro} (batch/grad-accum) is not divisible by {processes} processes")
    per_process = micro // processes
    set_seed(config.seed)
    _speed_options(adapter, config)
    if config.lora:
        _apply_lora(adapter, config)
    _trainable(adapter.model, config)
    adapter.model.train()
    # The shared precompute (reference cache, offline BDHS) first: it decides whether a reference
    # model is needed at all.  The reference is built from the initial weights, before any state
    # is loaded or any step taken.
    context = TrainContext(config, accelerator, adapter, None, None, reference_fingerprint, examples)
    if prepare is not None:
        prepare(context)
    needed = reference_needed(context, step_fn, used_examples(examples, config.batch_size, config.max_steps,
                                                                config.seed))
    context.reference = _reference(adapter, config, needed)
    optimizer = _optimizer(adapter.model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps) if config.warmup_steps else 1.0)
    policy, optimizer, scheduler = accelerator.prepare(adapter.model, optimizer, scheduler)
    context.policy = policy

    state, log_path = work / "state", work / "log.jsonl"
    start = 0
    if (work / "step.json").exists():
        accelerator.load_state(str(state))
        start = json.loads((work / "step.json").read_text())["step"]
    if accelerator.is_main_process:
        work.mkdir(parents=True, exist_ok=True)
        (work / "train_config.json").write_text(json.dumps(config.to_public_dict(), indent=2))
        if provenance is not None:  # what a resume must match (trainers/setup.checkpoint_status)
            (work / "provenance.json").write_text(json.dumps(provenance, indent=2))
        _trim_log(log_path, start)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    last: dict = {}
    columns = (TextColumn(f"train {config.trainer}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[loss]}"))
    with Progress(*columns, disable=not (progress and accelerator.is_main_process)) as bar:
        task = bar.add_task("train", total=config.max_steps, completed=start, loss="")
        for step in range(start, config.max_steps):
            batch = global_batch(examples, config.batch_size, step, config.seed)
            metrics_sum: dict[str, float] = {}
            for k in range(config.grad_accum):
                lo = k * micro + accelerator.process_index * per_process
                with accelerator.accumulate(policy):
                    loss, metrics = step_fn(context, batch[lo:lo + per_process], step)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm:
                        accelerator.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                for key, value in {"loss": loss.item(), **metrics}.items():
                    metrics_sum[key] = metrics_sum.get(key, 0.0) + value / config.grad_accum
            if processes > 1:  # log the global mean, not the main process's shard
                keys = sorted(metrics_sum)
                values = torch.tensor([metrics_sum[k] for k in keys], device=accelerator.device)
                metrics_sum = dict(zip(keys, accelerator.reduce(values, reduction="mean").tolist()))
            last = {"step": step + 1, **metrics_sum}
            if accelerator.is_main_process:
                with log_path.open("a") as handle:
                    handle.write(json.dumps(last) + "\n")
            bar.update(task, advance=1, loss=f"loss {metrics_sum['loss']:.4f}")
            if (step + 1) % config.save_every == 0 and step + 1 < config.max_steps:
                _save_state(accelerator, work, step + 1)
    accelerator.wait_for_everyone()
    return TrainResult(accelerator, policy, adapter, config, work, last)


def reset_accelerate_state() -> None:
    """accelerate keeps one state per process; a previous run in this process (another grid point,
    or a TRL run with bf16) would refuse new settings.  The process group stays."""
    from importlib.metadata import version

    from accelerate.state import AcceleratorState, GradientState

    # No public reset exists (accelerate 1.15); the private one has kept this form since 0.20.
    installed = version("accelerate")
    if tuple(int(x) for x in installed.split(".")[:2] if x.isdigit()) < (0, 20) \
            or not hasattr(AcceleratorState, "_reset_state") or not hasattr(GradientState, "_reset_state"):
        raise MmbenchError(f"accelerate {installed} cannot reset its state between runs; install accelerate>=0.30")
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def _trim_log(log_path: Path, start: int) -> None:
    """A resumed run repeats the steps after its last saved state: drop their old log lines."""
    if not log_path.exists():
        return
    lines = [line for line in log_path.read_text().splitlines()
             if line.strip() and json.loads(line).get("step", 0) <= start]
    tmp = log_path.with_name(log_path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(log_path)


def save_final(result: TrainResult) -> Path:
    """Write the checkpoint folder `config.out`, which exists only once complete."""
    out = Path(result.config.out)
    state_dict = sharding.full_state_dict(result.accelerator, result.policy)  # every process: a collective
    if result.accelerator.is_main_process:
        _save_final(result.accelerator.unwrap_model(result.policy), result.adapter, result.config, result.work,
                    out, result.last, state_dict)
    result.accelerator.wait_for_everyone()
    return out


def _save_state(accelerator, work: Path, step: int) -> None:
    """accelerate state (model, optimizer, scheduler, RNG) then the step marker, both atomic."""
    tmp = work / "state.tmp"
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if (work / "state").exists():
            shutil.rmtree(work / "state")
        tmp.rename(work / "state")
        marker = work / "step.json.tmp"
        marker.write_text(json.dumps({"step": step}))
        marker.replace(work / "step.json")
    accelerator.wait_for_everyone()


def _save_final(model, adapter, config: TrainConfig, work: Path, out: Path, last: dict,
                state_dict: dict | None = None) -> None:
    if config.lora:
        model = model.merge_and_unload()
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    from mmbench.harness.model import quiet_loading

    with quiet_loading():  # no "Writing model shards" bar unless --verbose
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
    adapter.processor.save_pretrained(tmp)
    (tmp / "train_config.json").write_text(json.dumps(config.to_public_dict(), indent=2))
    (tmp / "metrics.json").write_text(json.dumps(last, indent=2))
    if (work / "provenance.json").exists():
        shutil.copy(work / "provenance.json", tmp / "provenance.json")
    if (work / "log.jsonl").exists():
        shutil.copy(work / "log.jsonl", tmp / "log.jsonl")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    shutil.rmtree(work, ignore_errors=True)
