"""Where a checkpoint comes from and whether it can be loaded, decided before any weight is read:
a local folder (config.json a JSON object, sound .safetensors headers) or a hub id (one request,
no retries; the local cache when offline), an image-text-to-text architecture, the device and
the dtype.  Every failure is one `MmbenchError` line; `harness/model.py` loads what passes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mmbench.errors import MmbenchError, read_json_object

HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise MmbenchError(f"unknown device {device!r}") from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise MmbenchError(f"device {device!r} asked for but CUDA is not available")
    return device


def resolve_dtype(dtype: str, device: str, config: dict):
    import torch

    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cpu"):
        return torch.float32  # CPUs are slow in half precision, and fp32 keeps batch invariance
    stored = config.get("dtype") or config.get("torch_dtype") or config.get("text_config", {}).get("dtype")
    return getattr(torch, stored) if stored in ("bfloat16", "float16") else torch.float32


def resolve_source(spec: str, trust_remote_code: bool) -> tuple[str, str, dict, bool]:
    """(what to pass to from_pretrained, run name, config dict, local_files_only) — or a clear error."""
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise MmbenchError(f"{spec} is a file; give the model folder")
        config = check_local_files(path, spec, require_weights=False)
        check_architecture(config, spec, trust_remote_code)
        check_local_files(path, spec)
        return str(path), path.resolve().name, config, True
    if not HUB_ID.match(spec) or spec.startswith((".", "~")):
        raise MmbenchError(f"model folder not found: {spec}")
    return _resolve_hub(spec, trust_remote_code)


def check_local_files(path: Path, spec: str, require_weights: bool = True) -> dict:
    """A local checkpoint folder's files, without importing transformers: config.json is a JSON
    object, and every .safetensors file has a sound header.  Returns the config."""
    config = _read_config(path / "config.json", spec)
    if require_weights and not any(path.glob("*.safetensors")):
        raise MmbenchError(f"{spec} has no .safetensors weights (only safetensors are loaded; "
                           "convert the checkpoint with save_pretrained(safe_serialization=True))")
    for weights in sorted(path.glob("*.safetensors")):
        _check_safetensors_header(weights)
    return config


def _check_safetensors_header(path: Path) -> None:
    """A truncated or garbage weights file, found from its header alone (no tensor is read)."""
    import struct

    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            ok = 2 <= length <= size - 8
            if ok:
                header = json.loads(handle.read(length).decode("utf-8"))
                ends = [v.get("data_offsets", [0, 0])[1] for k, v in header.items()
                        if k != "__metadata__" and isinstance(v, dict)]
                ok = isinstance(header, dict) and 8 + length + max(ends, default=0) <= size
    except (OSError, ValueError, AttributeError, TypeError, IndexError, struct.error):
        ok = False
    if not ok:
        raise MmbenchError(f"{path}: not a valid .safetensors file (truncated or corrupt); copy or save it again")


def _resolve_hub(repo: str, trust_remote_code: bool) -> tuple[str, str, dict, bool]:
    import huggingface_hub as hub
    from huggingface_hub import errors

    name = repo.replace("/", "__")
    try:
        # One request, no retries: offline machines get their answer in well under a second.
        info = hub.model_info(repo, timeout=10)
    except (errors.RepositoryNotFoundError, errors.GatedRepoError) as exc:
        raise MmbenchError(f"unknown model {repo!r}: no such local folder or accessible hub repository") from exc
    except Exception as exc:  # network failures come from several libraries' exception trees
        cached = hub.try_to_load_from_cache(repo, "config.json")
        if not isinstance(cached, str):
            raise MmbenchError(f"{repo!r} is not a local folder and the Hugging Face hub is unreachable "
                               f"({first_line(exc)}); pass a local model folder") from exc
        config = _read_config(Path(cached), repo)
        check_architecture(config, repo, trust_remote_code)
        return repo, name, config, True
    files = [s.rfilename for s in (info.siblings or [])]
    if "config.json" not in files:
        raise MmbenchError(f"{repo!r} has no config.json; it is not a transformers model")
    config = _read_config(Path(hub.hf_hub_download(repo, "config.json")), repo)
    check_architecture(config, repo, trust_remote_code)
    if not any(f.endswith(".safetensors") for f in files):
        raise MmbenchError(f"{repo!r} publishes no .safetensors weights (only safetensors are loaded)")
    return repo, name, config, False


def _read_config(path: Path, spec: str) -> dict:
    if not path.is_file():
        raise MmbenchError(f"{spec} has no config.json; it is not a transformers model folder")
    return read_json_object(path)


def check_architecture(config: dict, spec: str, trust_remote_code: bool) -> None:
    """Refuse checkpoints that are not image-text-to-text models before any weight is read."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES as known

    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    # The declared class decides when there is one: the original LLaVA repos say model_type
    # "llava" but hold `LlavaLlamaForCausalLM` weights that transformers' Llava cannot read.
    if any(a in known.values() for a in architectures) or (not architectures and model_type in known):
        return
    auto_map = config.get("auto_map") or {}
    if "AutoModelForImageTextToText" in auto_map:
        if trust_remote_code:
            return
        raise MmbenchError(f"{spec} needs its own code (auto_map); pass trust_remote_code only if you trust it")
    kind = ", ".join(architectures) or model_type or "unknown"
    raise MmbenchError(f"{spec} is not an image-text-to-text model (model_type {model_type!r}, "
                       f"architectures {kind}); give a vision-language checkpoint such as LLaVA")
