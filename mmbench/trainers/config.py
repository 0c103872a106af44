"""Training configuration: the options every trainer shares, plus the trainer's own options (a
section, mmbench/trainers/options.py) — the single source of truth for CLI options, config files
and the `train_config.json` saved with every checkpoint."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from mmbench.errors import MmbenchError
from mmbench.trainers.options import LEGACY, build_options, options_dict, section_keys, unflatten


@dataclass(init=False)  # __init__ below also takes the built-in trainers' options flat (`gamma=0.3`)
class TrainConfig:
    trainer: str = "bdhs"
    suite: str | None = None  # defaults for base/data/annotator (mmbench/suites); None: detected
    base: str | None = None  # None: the suite's base (the shipped world base by default)
    data: str | None = None  # preference JSONL; None: the world's set (built on demand)
    prompts: str | None = None  # prompt source for online pairs (any data format); None: the suite's, else data's
    data_format: str | None = None  # None: detected from the columns (mmbench, rlaif-v, rlhf-v, povid, ...)
    image_root: str | None = None  # folder that relative image paths resolve against (POVID: COCO train2014)
    subset: int | None = None  # a seeded random subset of N examples (the study used 5000)
    subset_seed: int = 0  # also seeds VLFeedback's pair draw
    skip_bad_rows: bool = False  # drop (and count) bad rows instead of stopping
    pairs: str = "best"  # VLFeedback pairs: best (top vs a random lower-rated) | all (every unequal pair)
    out: str = "checkpoints/run"
    beta: float = 0.1
    lr: float = 5e-6
    vision_lr: float | None = None  # projector/vision tower learning rate (None: same as lr)
    max_steps: int = 100
    batch_size: int = 8  # examples per optimizer step (over all processes and accumulation)
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    optimizer: str = "adamw"  # adamw | sgd (sgd makes invariants checkable to float precision)
    warmup_steps: int = 0
    mixed_precision: str = "no"  # no | bf16 | fp16
    gradient_checkpointing: bool = False  # recompute activations in the backward pass (memory for time)
    attn_implementation: str | None = None  # eager | sdpa | flash_attention_2 (None: the checkpoint's)
    logp_chunk_size: int = 0  # >0: log-probs from hidden states, this many completion tokens at a time
    # Prompt+image forward once per example, completions continue from its cache.  None: on, except
    # under gradient checkpointing (transformers drops the cache there); validate() resolves it.
    share_prefix: bool | None = None
    live_reference: bool = False  # build the reference even when every reference log-prob is cached
    seed: int = 0
    limit: int | None = None  # use only the first N preference rows
    lora: bool = False
    lora_rank: int = 128
    lora_alpha: int = 256
    freeze_vision: bool = True  # LLaVA's last vision layer is unused; freezing also saves time
    # Who ranks online pairs: a resource like base and data (suites supply it), for any trainer.
    annotator: str | None = None  # "scene" on world data, else an OpenAI-compatible model id
    annotator_base_url: str | None = None
    save_every: int = 25
    overwrite: bool = False  # replace a checkpoint or partial run trained otherwise (default: refuse)
    cache_dir: str | None = None  # shared precompute (reference log-probs, offline BDHS)
    options: Any = None  # the trainer's own options (its `options_class`); None: their defaults

    def __init__(self, **values):
        for f in fields(self):
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            object.__setattr__(self, f.name, values.pop(f.name, default))
        if self.options is None:
            self.options = options_class(self.trainer)()
        for name, value in values.items():
            if name not in LEGACY:
                raise TypeError(f"TrainConfig got an unexpected option {name!r}")
            setattr(self, name, value)

    # Compatibility: the built-in trainers' options read and written flat (`config.gamma`,
    # `config.bdhs.rho_th`), as scripts did when every option lived in one config.  A name the
    # trainer does not own keeps its own (unused) value, as it did then.
    def __getattr__(self, name: str):
        if name not in LEGACY:
            raise AttributeError(name)
        owner, attr = LEGACY[name]
        options = self.__dict__.get("options")
        if options is not None and hasattr(options, attr) and self.__dict__.get("trainer") == owner:
            return getattr(options, attr)
        return self.__dict__.setdefault("_unused", {}).setdefault(name, getattr(options_class(owner)(), attr))

    def __setattr__(self, name: str, value) -> None:
        if name in LEGACY:
            owner, attr = LEGACY[name]
            if self.trainer == owner:
                return setattr(self.options, attr, value)
            self.__dict__.setdefault("_unused", {})[name] = value
            return
        object.__setattr__(self, name, value)

    def validate(self) -> "TrainConfig":
        import math

        from mmbench.errors import check_fields
        from mmbench.harness.runfiles import check_writable

        # One typed schema: every field against its annotation (config files and API callers).
        check_fields(TrainConfig, {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"},
                     "training options")
        expected = options_class(self.trainer)
        if not isinstance(self.options, expected):
            raise MmbenchError(f"options of trainer {self.trainer} must be {expected.__name__}, "
                               f"got {type(self.options).__name__}")
        check_fields(expected, options_dict(self.options), "training options", f"{self.trainer}.")
        if hasattr(self.options, "validate"):
            self.options.validate()

        for name in ("beta", "lr", "max_grad_norm", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise MmbenchError(f"--{name.replace('_', '-')} must be a finite number, got {value!r}")
        if self.lr <= 0 or (self.vision_lr is not None and not (math.isfinite(self.vision_lr) and self.vision_lr > 0)):
            raise MmbenchError(f"--lr must be positive, got {self.lr}")
        if self.save_every < 1:
            raise MmbenchError(f"--save-every must be at least 1, got {self.save_every}")
        if self.limit is not None and self.limit < 1:
            raise MmbenchError(f"--limit must be at least 1, got {self.limit}")
        if self.beta <= 0:
            raise MmbenchError(f"--beta must be positive, got {self.beta}")
        if self.max_steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise MmbenchError("--max-steps, --batch-size and --grad-accum must be at least 1")
        if self.batch_size % self.grad_accum:
            raise MmbenchError(f"--batch-size {self.batch_size} is not a multiple of --grad-accum {self.grad_accum}")
        if self.optimizer not in ("adamw", "sgd"):
            raise MmbenchError(f"--optimizer must be adamw or sgd, got {self.optimizer!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise MmbenchError(f"--mixed-precision must be no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.share_prefix is None:
            self.share_prefix = not self.gradient_checkpointing
        if self.share_prefix and self.gradient_checkpointing:  # transformers drops the cache under checkpointing
            raise MmbenchError("--share-prefix cannot be combined with --gradient-checkpointing (transformers "
                               "turns the prompt's KV cache off while checkpointing)")
        if self.subset is not None and self.subset < 1:
            raise MmbenchError(f"--subset must be at least 1, got {self.subset}")
        if self.pairs not in ("best", "all"):
            raise MmbenchError(f"--pairs must be best or all, got {self.pairs!r}")
        if self.data_format is not None:
            from mmbench.trainers.sources import get_format

            get_format(self.data_format)
        if self.image_root is not None and not Path(self.image_root).expanduser().is_dir():
            raise MmbenchError(f"--image-root is not a folder: {self.image_root}")
        check_writable(Path(self.out).expanduser().parent, "--out")
        if Path(self.out).expanduser().is_file():
            raise MmbenchError(f"--out {self.out} is a file; give a checkpoint folder")
        return self

    def to_dict(self) -> dict:
        """Shared options flat, the trainer's own as its section: {"lr": ..., "bdhs": {"gamma": ...}}."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "options"}
        return {**data, self.trainer: options_dict(self.options)}

    def to_public_dict(self) -> dict:
        """As saved in train_config.json: credentials and query strings stripped from URLs."""
        from mmbench.harness.judge_client import public_url

        data = self.to_dict()
        data["annotator_base_url"] = public_url(data["annotator_base_url"])
        return data

    @classmethod
    def from_dict(cls, data: dict, where: str = "training options", prefix: str = "") -> "TrainConfig":
        """From shared options, sections (`{"bdhs": {"gamma": 0.3}}`) and flat trainer options
        (see `sectioned`).  Every section is type-checked and an unknown key fails naming it;
        ranges wait for `validate()`."""
        from mmbench.errors import check_fields

        data = sectioned(data, where, prefix)
        trainer = data.get("trainer", "bdhs")
        values = {k: v for k, v in data.items() if k in _shared()}
        check_fields(cls, values, where, prefix)
        options = None
        for name in {trainer, *(k for k in data if k not in values)}:
            built = build_options(options_class(name), data.get(name, {}), where, f"{prefix}{name}.")
            options = built if name == trainer else options  # other trainers' sections: checked, unused
        return cls(**values, options=options)


def _shared() -> set[str]:
    return {f.name for f in fields(TrainConfig)} - {"options"}


def sectioned(data: dict, where: str = "training options", prefix: str = "") -> dict:
    """`data` with every trainer option moved into its trainer's section.  A flat key is the
    trainer's own option (`gamma` for bdhs, a plug-in's for the plug-in) or a built-in's old flat
    name (`gamma` under `ablate p`: checked, then unused); within one mapping a section wins over
    a flat value.  Layers (file, flags, --set) are sectioned, then `merge`d, so the later wins."""
    from mmbench.trainers.registry import TRAINERS

    trainer = data.get("trainer", "bdhs")
    if not isinstance(trainer, str):
        raise MmbenchError(f"{where}: {prefix}trainer must be a trainer name, got {trainer!r}")
    own = options_class(trainer)
    out = {k: v for k, v in data.items() if k in _shared()}
    flat: dict[str, dict] = {}
    sections: dict[str, dict] = {}
    unknown = []
    for key, value in data.items():
        if key in out:
            continue
        if key in TRAINERS and isinstance(value, dict):
            sections[key] = value
        elif key in section_keys(own):
            flat.setdefault(trainer, {})[key] = value
        elif key in LEGACY:
            owner, attr = LEGACY[key]
            flat.setdefault(owner, {})[attr] = value
        else:
            unknown.append(key)
    if unknown:
        raise MmbenchError(f"{where}: unknown training option(s) {', '.join(prefix + str(k) for k in sorted(unknown))}"
                           f" (trainer {trainer} takes: {', '.join(sorted(section_keys(own))) or 'no options of its own'})")
    for name in {*flat, *sections}:
        kind = options_class(name)
        out[name] = merge(unflatten(kind, flat.get(name, {})), unflatten(kind, sections.get(name, {})))
    return out


def merge(base: dict, override: dict) -> dict:
    """`override` wins; tables merge key by key."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def options_class(trainer: str) -> type:
    """The options dataclass of an installed trainer (a plug-in without one has none)."""
    from mmbench.trainers.options import NoOptions
    from mmbench.trainers.registry import get_trainer

    return getattr(get_trainer(trainer), "options_class", None) or NoOptions
