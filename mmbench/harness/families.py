"""Every model-family quirk the adapter and the trainers know about, in one place.

Hugging Face image-text-to-text families agree on `input_ids`/`attention_mask`/`pixel_values` and
differ in everything around them.  Each difference is one small, named function here; the adapter
(`harness/model.py`), the BDHS sampler (`trainers/bdhs.py`) and the training loop
(`trainers/loop.py`) call these instead of testing class or attribute names themselves.

| quirk | families | function |
|---|---|---|
| video processor needs torchvision | Qwen2/2.5/3-VL, LLaVA-OneVision | `load_processor` |
| one image list per prompt at batch > 1 | Gemma 3, Mllama, Idefics3 | `images_argument` |
| processor returns `labels` (PaliGemma: all −100) | PaliGemma | `drop_processor_labels` |
| per-token tensors besides input_ids (`mm_token_type_ids`, `token_type_ids`, `cross_attention_mask`) | Qwen-VL, Gemma 3, PaliGemma, Mllama | `relayout_per_token` |
| M-RoPE positions must come from the unmasked input | Qwen2/2.5/3-VL | `masked_position_ids` |
| the image enters by cross-attention, not by tokens | Mllama | `hide_image` |
| vision tower / projector / language model attribute names differ | all | `model_parts`, `parameter_group` |
| image features can be passed to generate() precomputed, one tensor per image | LLaVA 1.5 | `share_image_features` |
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---- processors ------------------------------------------------------------------------------

# Processors that want `images=[[img], [img], ...]` (one list per prompt); a flat list is
# read as several images of the FIRST prompt (Gemma 3, Mllama) or rejected (Idefics3).
NESTED_IMAGE_PROCESSORS = ("Gemma3Processor", "MllamaProcessor", "Idefics3Processor", "SmolVLMProcessor")


def images_argument(processor, images_per_prompt: list[list]):
    """The `images=` value for a batch: nested per prompt where the processor needs it, else flat."""
    flat = [img for imgs in images_per_prompt for img in imgs]
    if not flat:
        return None
    if type(processor).__name__ in NESTED_IMAGE_PROCESSORS:
        return [list(imgs) for imgs in images_per_prompt]
    return flat


def drop_processor_labels(batch: dict) -> dict:
    """PaliGemma's processor makes `labels` (−100 on the prompt, i.e. everywhere without a suffix);
    they would overwrite mmbench's completion labels, so no processor-made labels survive."""
    batch.pop("labels", None)
    return batch


def image_only_processor_class(cls):
    """`cls` without its video processor: Qwen-VL and OneVision processors take an image, a
    tokenizer AND a video processor, and video processors need torchvision.  The subclass keeps
    the class name (so a saved processor_config still names the real class)."""
    import inspect

    signature = inspect.signature(cls.__init__)
    accepted = set(signature.parameters) - {"self", "video_processor"}

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        kwargs.pop("video_processor", None)
        cls.__init__(self, image_processor, tokenizer, None, **kwargs)

    # to_dict/save_pretrained keep the attributes the signature names: keep the real one's.
    __init__.__signature__ = signature.replace(
        parameters=[p for name, p in signature.parameters.items() if name != "video_processor"])

    @classmethod
    def from_args_and_dict(sub, args, processor_dict: dict, **kwargs):
        # transformers filters the saved kwargs by the code of __init__; filter by the real class's.
        options = {k: v for k, v in {**processor_dict, **kwargs}.items()
                   if k in accepted and k not in ("image_processor", "tokenizer")}
        return sub(*args, **options)

    return type(cls.__name__, (cls,), {"__init__": __init__, "from_args_and_dict": from_args_and_dict,
                                       "__module__": cls.__module__})


def _needs_video_processor(cls) -> bool:
    import inspect

    return "video_processor" in inspect.signature(cls.__init__).parameters


def load_processor(source: str, config: dict, **common):
    """AutoProcessor, or — without torchvision — the image-only variant of the family's processor."""
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    cls = _processor_class(config)
    if cls is not None and _needs_video_processor(cls) and not is_torchvision_available():
        return image_only_processor_class(cls).from_pretrained(source, **common)
    return AutoProcessor.from_pretrained(source, **common)


def _processor_class(config: dict):
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = PROCESSOR_MAPPING_NAMES.get(config.get("model_type"))
    return getattr(transformers, name, None) if isinstance(name, str) else None


# ---- per-token tensors -------------------------------------------------------------------------

# Value of a per-token tensor on tokens appended after the prompt (completions, BDHS prefixes).
# PaliGemma's token_type_ids mark the suffix (causal part) with 1; everywhere else appended text is
# text (0).  `cross_attention_mask` repeats the prompt's last row, as Mllama's generate does.
APPENDED_FILL = {("paligemma", "token_type_ids"): 1}
REPEAT_LAST_ROW = ("cross_attention_mask",)


def per_token_keys(batch: dict, width: int) -> list[str]:
    """Keys of tensors laid out per token (batch, sequence, ...) other than ids and mask; image
    tensors are never per token even when a dimension happens to equal the width."""
    image_like = ("pixel", "image", "grid", "aspect")
    return [k for k, v in batch.items() if k not in ("input_ids", "attention_mask") and hasattr(v, "dim")
            and v.dim() >= 2 and v.shape[1] == width and not any(word in k for word in image_like)]


def relayout_per_token(batch: dict, width: int, prompt_lengths: list[int], new_width: int, offsets: list[int],
                       total_lengths: list[int], model_type: str | None) -> dict:
    """Rebuild every per-token tensor of a RIGHT-padded prompt batch for new rows of `new_width`.

    Row i's prompt (prompt_lengths[i] tokens) is copied to start at offsets[i]; the appended tokens
    up to total_lengths[i] get the family's fill (see APPENDED_FILL); padding gets 0."""
    import torch

    out = {}
    for key in per_token_keys(batch, width):
        old = batch[key]
        new = torch.zeros((old.shape[0], new_width, *old.shape[2:]), dtype=old.dtype, device=old.device)
        fill = APPENDED_FILL.get((model_type, key), 0)
        for row, (n, start, total) in enumerate(zip(prompt_lengths, offsets, total_lengths)):
            new[row, start:start + n] = old[row, :n]
            if key in REPEAT_LAST_ROW and n:
                new[row, start + n:start + total] = old[row, n - 1]
            else:
                new[row, start + n:start + total] = fill
        out[key] = new
    return out


# ---- generation --------------------------------------------------------------------------------
# Model classes whose generate() takes `mm_encoder_outputs` (transformers 5) with one feature
# tensor per image that depends on the image alone (no prompt, no image size).
SHARED_IMAGE_FEATURES = ("LlavaForConditionalGeneration",)


def share_image_features(model, batch: dict, image_keys: list) -> dict:
    """`batch` for generate() with `pixel_values` replaced by the image features, each distinct
    image (`image_keys`, one per row) encoded once: world POPE asks ~15 questions about every image,
    and a sorted batch holds a few images.  generate() itself would call the same
    `get_image_features` on all the batch's pixels; the vision tower treats the images of a batch
    independently, so in float32 on CPU the features are the same bits (tests/test_eval_fastpath.py;
    on a GPU in half precision, like any change of batch, near-ties may differ).  Other classes,
    batches with other inputs, not exactly one image per row or no image twice: `batch` unchanged."""
    pixels = batch.get("pixel_values")
    if (type(model).__name__ not in SHARED_IMAGE_FEATURES or pixels is None
            or set(batch) != {"input_ids", "attention_mask", "pixel_values"}
            or len(pixels) != len(image_keys) or any(key is None for key in image_keys)
            or not getattr(model, "_supports_mm_encoder_outputs", lambda: False)()):
        return batch
    first: dict = {}  # image key -> its first row
    for row, key in enumerate(image_keys):
        first.setdefault(key, row)
    if len(first) == len(image_keys):  # nothing shared: generate() encodes them as usual
        return batch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    encoded = model.get_image_features(pixel_values=pixels[list(first.values())], return_dict=True)
    by_key = dict(zip(first, encoded.pooler_output))
    features = BaseModelOutputWithPooling(pooler_output=[by_key[key] for key in image_keys])
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
            "mm_encoder_outputs": {"image": features}}


# ---- training: one prompt forward shared by every completion -----------------------------------
# Classes whose completions may continue ONE prompt forward through its KV cache (trainers/logps.py,
# `share_prefix`): after the prompt, causal text with 1-D positions.  Each is checked against
# separate rows in tests/families/test_family_encode_once.py.  Not Qwen-VL (3-D rope positions
# that do not advance one per image token; Qwen2.5/3-VL measurably differ), not Mllama (its
# cross-attention states are not in the cache); SmolVLM untested (no tiny builder).
SHARED_PREFIX = ("LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration",
                 "LlavaOnevisionForConditionalGeneration", "Idefics3ForConditionalGeneration",
                 "PaliGemmaForConditionalGeneration", "Gemma3ForConditionalGeneration")


def shares_prefix(model) -> bool:
    return any(cls.__name__ in SHARED_PREFIX for cls in type(_base_model(model)).__mro__)  # FSDP2 subclasses


# ---- BDHS masking ------------------------------------------------------------------------------

def image_token_id(model) -> int | None:
    config = model.config
    return getattr(config, "image_token_id", None) or getattr(config, "image_token_index", None)


def hide_image(model, input_ids, attention, extra: dict, rho_th: float, generator):
    """Hide image content at threshold rho_th; returns a context manager to generate inside.

    Each image unit stays visible iff its draw ρ ~ U(0,1) is ≥ rho_th; `generator` is one torch
    Generator, or one per row (then a row's draws do not depend on its batch).  Units are image tokens
    (a key mask on them, set in `attention` in place), or — for Mllama, whose image enters by
    cross-attention — image tiles: masked in `cross_attention_mask` AND zeroed at the projector
    output, because Mllama lets a row with every tile masked attend to all of them uniformly."""
    import contextlib

    import torch

    cross = extra.get("cross_attention_mask")
    if rho_th <= 0:
        return contextlib.nullcontext()
    per_row = isinstance(generator, (list, tuple))  # one generator per row: draws independent of the batch
    if cross is None:
        image_id = image_token_id(model)
        if image_id is not None and per_row:
            for row, g in enumerate(generator):
                where = (input_ids[row] == image_id).nonzero().squeeze(-1)
                keep = (torch.rand(len(where), generator=g) >= rho_th).to(where.device)
                attention[row, where[~keep]] = 0
        elif image_id is not None:
            keep = torch.rand(input_ids.shape, generator=generator) >= rho_th
            attention[(input_ids == image_id) & ~keep.to(input_ids.device)] = 0
        return contextlib.nullcontext()
    # cross: (batch, tokens, images, tiles); the projector's output: (batch, images, tiles, patches, width)
    if per_row:
        keep = torch.stack([torch.rand(tuple(cross.shape[2:]), generator=g) for g in generator]) >= rho_th
    else:
        keep = torch.rand((cross.shape[0], *cross.shape[2:]), generator=generator) >= rho_th
    keep = keep.to(cross.device)
    extra["cross_attention_mask"] = cross * keep[:, None].to(cross.dtype)
    inner = _base_model(model)
    projector = inner.get_submodule(model_parts(inner).projector[0])

    def zero_hidden(module, args, output):
        return output * keep[..., None, None].to(output.dtype)

    @contextlib.contextmanager
    def hooked():
        handle = projector.register_forward_hook(zero_hidden)
        try:
            yield
        finally:
            handle.remove()

    return hooked()


def masked_position_ids(model, input_ids, unmasked_attention, extra: dict):
    """Explicit position ids for generation with image tokens hidden, or None.

    Most families derive positions from the cumulative attention mask, so hidden image tokens
    simply take no positions (fully hidden = text-only prompt).  Qwen's M-RoPE instead lays the
    image grid out in 3-D; it must see the UNMASKED input or the grid and the tokens disagree."""
    inner = _base_model(model)
    if not hasattr(getattr(inner, "model", None), "get_rope_index"):
        return None
    kwargs = {**extra, "attention_mask": unmasked_attention}
    return inner._prepare_position_ids_for_generation(input_ids, kwargs)


def _base_model(model):
    """The transformers model under DDP and peft wrappers."""
    while True:
        if type(model).__name__ == "DistributedDataParallel":
            model = model.module
        elif hasattr(model, "get_base_model"):
            model = model.get_base_model()
        else:
            return model


# ---- where the parts live ----------------------------------------------------------------------

# Projector pieces that live INSIDE the vision tower (Qwen's patch merger and deepstack mergers).
PROJECTOR_IN_TOWER = ("merger", "deepstack_merger_list")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class ModelParts:
    """Qualified module names (as in `model.named_modules()`) of the three parts."""

    vision_tower: str | None  # None: not found (an unknown family); nothing is treated as vision
    language_model: str | None
    projector: list[str]  # may include sub-modules of the tower and bare parameters (image_newline)


def model_parts(model) -> ModelParts:
    """Find the vision tower and language model by their configs, the projector as the rest.

    The vision tower is the first module whose config is of the model's `vision_config` class, the
    language model the first (outside the tower) whose config is of the `text_config` class;
    every other child of their common parent that holds parameters is projector (projector,
    connector, image_newline), plus the mergers Qwen keeps inside its tower."""
    config = getattr(model, "config", None)
    vision_cls = type(getattr(config, "vision_config", None))
    text_cls = type(getattr(config, "text_config", None))
    tower = language = None
    for name, module in model.named_modules():
        module_cfg = getattr(module, "config", None)
        if tower is None and name and isinstance(module_cfg, vision_cls) and vision_cls is not type(None):
            tower = name
        elif language is None and name and isinstance(module_cfg, text_cls) and text_cls is not type(None) \
                and not name.startswith(f"{tower}."):
            language = name
    if tower is None or language is None:
        return ModelParts(tower, language, [])
    core = _common_parent(tower, language)
    projector = [f"{tower}.{sub}" for sub, _ in model.get_submodule(tower).named_children()
                 if sub in PROJECTOR_IN_TOWER]
    for name, _ in model.named_parameters():
        if core and not name.startswith(f"{core}."):
            continue  # lm_head and other heads belong to the language side
        head = ".".join(name.split(".")[:len(core.split(".")) + 1]) if core else name.split(".")[0]
        if head not in (tower, language) and head not in projector:
            projector.append(head)
    return ModelParts(tower, language, projector)


def _common_parent(a: str, b: str) -> str:
    parts = []
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        parts.append(x)
    return ".".join(parts)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def parameter_group(name: str, parts: ModelParts) -> str:
    """"projector", "vision" (the tower), or "language" for a parameter name."""
    if any(_under(name, p) for p in parts.projector):
        return "projector"
    if parts.vision_tower and _under(name, parts.vision_tower):
        return "vision"
    return "language"


def lora_target_regex(model) -> str:
    """peft `target_modules` regex: the attention/MLP projections of the language model only."""
    language = model_parts(model).language_model
    prefix = re.escape(language) + r"\." if language else ""
    return rf"{prefix}.*\.({'|'.join(LORA_TARGETS)})"
