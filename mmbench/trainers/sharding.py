"""Sharded training (FSDP through an accelerate config file): the distributed quirks of the loop,
in one place.

1. FSDP on CPU.  `accelerate launch --config_file fsdp.yaml` (distributed_type: FSDP) starts the
   processes with torchrun and sets ACCELERATE_USE_FSDP; but accelerate 1.15 switches to FSDP only
   when the process group is a GPU-like one (`AcceleratorState.__init__` checks MULTI_GPU, MULTI_XPU,
   …, never MULTI_CPU), so on a machine without CUDA, where the loop asks for `cpu=True` (gloo), the
   FSDP request was silently dropped and the run was plain DDP.  torch's FSDP2 (`fully_shard`) works
   on CPU over gloo, so `fsdp_on_cpu` makes the state FSDP as accelerate would on a GPU.
2. The final checkpoint.  Under FSDP every process holds a shard of each parameter: the full state
   dict is gathered by ALL processes together (`accelerator.get_state_dict`, a collective), and
   only then does the main process write it.
3. Refused before any step, with one line:
   - FSDP1 on CPU: accelerate wraps with `device_id=cpu` and torch's FSDP1 stops ("Inconsistent
     compute device and `device_id` on rank 0: cpu vs cpu:0"); FSDP2 is the one that runs on CPU.
   - LoRA: the steps run, but the final save hangs (tried on CPU): `merge_and_unload` on the
     main process alone needs the other processes' shards.
   - SGD with fsdp_state_dict_type FULL_STATE_DICT and a resumable state (--save-every below
     --max-steps): the state saves, but torch 2.13 cannot load it back
     (`set_optimizer_state_dict`: "Expected device to be set": plain SGD keeps no per-parameter
     state).  SHARDED_STATE_DICT resumes it (and AdamW resumes under both).
   - Sampling from the policy during training (online BDHS, Mixed-DPO with p < 1).  Tried on CPU:
     the first online generate() stops in the vision tower ("aten.conv2d.default got mixed
     torch.Tensor and DTensor": generate() calls the parts of the model, so the root's unsharding
     hook never runs).  Beyond that, every forward of a sharded model is a collective while each
     process generates alone, to its own lengths and retries.  Offline negatives (the default) work.
"""

from __future__ import annotations

import os

from mmbench.errors import MmbenchError


def fsdp_requested() -> bool:
    """`accelerate launch` with an FSDP config file (or --use_fsdp) sets this in every process."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def fsdp_on_cpu(accelerator) -> None:
    """Make an FSDP-requested CPU (gloo) run FSDP, not DDP (quirk 1 above).

    The process group (gloo) and the device (cpu) stay as PartialState set them; the distributed
    type is written where accelerate itself writes it, in both shared states (every later
    `AcceleratorState()` copies PartialState's over its own).  A later run in the same process
    (after `AcceleratorState._reset_state`) finds FSDP without a plugin and gets one again."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    if not fsdp_requested() or state.device.type != "cpu" or state.distributed_type not in (
            DistributedType.MULTI_CPU, DistributedType.FSDP) or state.__dict__.get("fsdp_plugin") is not None:
        return
    plugin = FullyShardedDataParallelPlugin()  # from the FSDP_* variables accelerate launch set
    if plugin.fsdp_version != 2:
        raise MmbenchError("FSDP on CPU needs fsdp_version: 2 in the accelerate config (torch's FSDP1 does not "
                           "run on CPU through accelerate)")
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.fsdp_plugin = plugin
    state.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def is_fsdp(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator is not None and accelerator.distributed_type == DistributedType.FSDP


def setup(accelerator, config) -> None:
    """Called by the loop right after it creates the accelerator: quirks 1 and 3, and one line
    on stderr saying the run is sharded (a CPU run that silently fell back to DDP said nothing)."""
    import sys

    fsdp_on_cpu(accelerator)
    if not is_fsdp(accelerator):
        return
    if config.lora:
        raise MmbenchError("--lora is not supported with FSDP (the adapters cannot be merged into sharded "
                           "weights); use data-parallel training (accelerate launch --multi_gpu) for LoRA")
    online = _samples_online(config)
    if online:
        raise MmbenchError(f"{online} are sampled from the policy during training, which FSDP cannot do (each "
                           "process would generate alone from a sharded model); use offline negatives, p = 1, or "
                           "data-parallel training (accelerate launch --multi_gpu)")
    plugin = accelerator.state.fsdp_plugin
    if config.optimizer == "sgd" and config.save_every < config.max_steps \
            and str(plugin.state_dict_type).endswith("FULL_STATE_DICT"):
        raise MmbenchError("--optimizer sgd under FSDP with fsdp_state_dict_type: FULL_STATE_DICT saves a state "
                           "torch cannot resume; set fsdp_state_dict_type: SHARDED_STATE_DICT in the accelerate config")
    if accelerator.is_main_process:
        print(f"sharding: FSDP{plugin.fsdp_version} over {accelerator.num_processes} processes "
              f"({accelerator.device.type}, {accelerator.state.backend})", file=sys.stderr)


def _samples_online(config) -> str | None:
    """What the trainer samples from the policy during training ("online pairs"), if anything."""
    from mmbench.trainers.registry import get_trainer

    try:
        trainer = get_trainer(config.trainer)
    except (MmbenchError, AttributeError):  # a stand-in config without a trainer
        return None
    samples = getattr(trainer, "samples_online", None)
    return samples(config) if callable(samples) else None


def full_state_dict(accelerator, policy) -> dict | None:
    """Under FSDP the full state dict (on the main process; other processes get an empty dict),
    gathered by every process; None otherwise (the model saves its own parameters).  Call it on
    EVERY process (quirk 2 above)."""
    if not is_fsdp(accelerator):
        return None
    return accelerator.get_state_dict(policy)
