"""Training configuration: one dataclass, the single source of truth for CLI options and the
`train_config.json` saved with every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mmbench.errors import MmbenchError
from mmbench.trainers.bdhs import BDHSConfig


@dataclass
class TrainConfig:
    trainer: str = "bdhs"
    base: str | None = None  # None: the shipped world base model
    data: str | None = None  # preference JSONL; None: the world's set (built on demand)
    prompts: str | None = None  # prompt-only JSONL for online sampling; None: use `data`'s prompts
    data_format: str | None = None  # None: detected from the columns (mmbench, rlaif-v, rlhf-v, povid, ...)
    image_root: str | None = None  # folder that relative image paths resolve against (POVID: COCO train2014)
    subset: int | None = None  # a seeded random subset of N examples (the study used 5000)
    subset_seed: int = 0  # also seeds VLFeedback's pair draw
    skip_bad_rows: bool = False  # drop (and count) bad rows instead of stopping
    pairs: str = "best"  # VLFeedback pairs: best (top vs a random lower-rated) | all (every unequal pair)
    out: str = "checkpoints/run"
    gamma: float = 0.5  # Eq. 5 weight of DPO on external rejected answers
    p: float = 0.5  # Mixed-DPO share of offline pairs
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
    live_reference: bool = False  # build the reference even when every reference log-prob is cached
    seed: int = 0
    limit: int | None = None  # use only the first N preference rows
    lora: bool = False
    lora_rank: int = 128
    lora_alpha: int = 256
    freeze_vision: bool = True  # LLaVA's last vision layer is unused; freezing also saves time
    online_bdhs: bool = False  # BDHS negatives from the current policy instead of the base
    online_temperature: float = 1.0
    online_max_tokens: int = 96
    annotator: str | None = None  # "scene" on world data, else an OpenAI-compatible model id
    annotator_base_url: str | None = None
    save_every: int = 25
    overwrite: bool = False  # replace a checkpoint or partial run trained otherwise (default: refuse)
    cache_dir: str | None = None  # shared precompute (reference log-probs, offline BDHS)
    bdhs: BDHSConfig = field(default_factory=BDHSConfig)

    def validate(self) -> "TrainConfig":
        import math

        from mmbench.errors import check_fields
        from mmbench.harness.runfiles import check_writable

        # One typed schema: every field against its annotation (config files and API callers).
        check_fields(TrainConfig, {f.name: getattr(self, f.name) for f in fields(self) if f.name != "bdhs"},
                     "training options")
        check_fields(BDHSConfig, asdict(self.bdhs), "training options", "bdhs.")

        for name in ("gamma", "p", "beta", "lr", "max_grad_norm", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise MmbenchError(f"--{name.replace('_', '-')} must be a finite number, got {value!r}")
        if self.lr <= 0 or (self.vision_lr is not None and not (math.isfinite(self.vision_lr) and self.vision_lr > 0)):
            raise MmbenchError(f"--lr must be positive, got {self.lr}")
        if self.save_every < 1:
            raise MmbenchError(f"--save-every must be at least 1, got {self.save_every}")
        if self.limit is not None and self.limit < 1:
            raise MmbenchError(f"--limit must be at least 1, got {self.limit}")
        for name in ("gamma", "p"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise MmbenchError(f"--{name} must be within [0, 1], got {value}")
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
        if self.subset is not None and self.subset < 1:
            raise MmbenchError(f"--subset must be at least 1, got {self.subset}")
        if self.pairs not in ("best", "all"):
            raise MmbenchError(f"--pairs must be best or all, got {self.pairs!r}")
        if self.data_format is not None:
            from mmbench.trainers.sources import get_format

            get_format(self.data_format)
        if self.image_root is not None and not Path(self.image_root).expanduser().is_dir():
            raise MmbenchError(f"--image-root is not a folder: {self.image_root}")
        if not 0.0 <= self.bdhs.rho_th <= 1.0:
            raise MmbenchError(f"--rho-th must be within [0, 1], got {self.bdhs.rho_th}")
        if not 0.0 <= self.bdhs.epsilon_s <= 1.0:
            raise MmbenchError(f"--epsilon-s must be within [0, 1], got {self.bdhs.epsilon_s}")
        check_writable(Path(self.out).expanduser().parent, "--out")
        if Path(self.out).expanduser().is_file():
            raise MmbenchError(f"--out {self.out} is a file; give a checkpoint folder")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def to_public_dict(self) -> dict:
        """As saved in train_config.json: credentials and query strings stripped from URLs."""
        from mmbench.harness.judge_client import public_url

        data = self.to_dict()
        data["annotator_base_url"] = public_url(data["annotator_base_url"])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MmbenchError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        data = dict(data)
        if isinstance(data.get("bdhs"), dict):
            bdhs_known = {f.name for f in fields(BDHSConfig)}
            bad = set(data["bdhs"]) - bdhs_known
            if bad:
                raise MmbenchError(f"unknown BDHS option(s): {', '.join(sorted(bad))}")
            data["bdhs"] = BDHSConfig(**data["bdhs"])
        return cls(**data)
