"""Hugging Face image-text-to-text models behind the `Generator` protocol.

`load_model` checks what it is given before touching any weights (`harness/checkpoint.py`: a missing folder, a text-only
checkpoint or a checkpoint without safetensors fails in a second with a one-line `MmbenchError`),
then loads `AutoModelForImageTextToText` + its processor.  The families in `harness/families.py`
(LLaVA 1.5/1.6/OneVision, Qwen2/2.5/3-VL, Idefics3/SmolVLM, PaliGemma, Gemma 3, Mllama) are tested
on tiny checkpoints (tests/families); their quirks live in that module, not here.

Generation is greedy, batched with LEFT padding, and sorted by prompt length so that batches waste
little padding; responses come back in input order and do not depend on the batch size (in
float32 — half precision on a GPU can flip near-tied tokens between batch sizes).  Nothing but EOS
or `max_new_tokens` ends an answer: no stop strings, so long answers run past blank lines.

For trainers the adapter also exposes `model`, `processor`, `encode_prompts` (the exact inputs
generation uses) and `encode_completions` (prompt + completion token ids with answer-only labels).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmbench.benchmarks.base import GenerationSettings
from mmbench.errors import MmbenchError
from mmbench.harness import families
from mmbench.harness.checkpoint import first_line, resolve_device, resolve_dtype, resolve_source
from mmbench.harness.generation import GenerationRequest

DTYPES = ("auto", "float32", "bfloat16", "float16")
IGNORE_INDEX = -100  # label value the loss skips (prompt and padding positions)


def load_model(path_or_hub_id: str | Path, *, dtype: str = "auto", device: str = "auto",
               trust_remote_code: bool = False) -> HFVisionLanguageModel:
    """Load a local folder or hub id as an `HFVisionLanguageModel` (safetensors weights only).

    dtype "auto" is float32 on CPU and the checkpoint's half-precision dtype (if it has one) on
    a GPU; device "auto" is "cuda" when available, else "cpu".
    """
    if dtype not in DTYPES:
        raise MmbenchError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    device = resolve_device(device)
    source, name, config, local_only = resolve_source(str(path_or_hub_id), trust_remote_code)
    torch_dtype = resolve_dtype(dtype, device, config)

    from transformers import AutoModelForImageTextToText

    common = {"trust_remote_code": trust_remote_code, "local_files_only": local_only}
    try:
        processor = families.load_processor(source, config, **common)
        with quiet_loading():
            model, info = AutoModelForImageTextToText.from_pretrained(
                source, dtype=torch_dtype, use_safetensors=True, output_loading_info=True, **common)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        raise MmbenchError(f"could not load {path_or_hub_id}: {first_line(exc)}") from exc
    except Exception as exc:  # safetensors' own error class: a truncated or garbage weights file
        if type(exc).__name__ != "SafetensorError":
            raise
        raise MmbenchError(f"could not load {path_or_hub_id}: a .safetensors file is corrupt or truncated "
                           f"({first_line(exc)})") from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing:  # randomly initialised weights would be scored as if they were the model
        raise MmbenchError(f"{path_or_hub_id}: {len(missing)} weights missing from the checkpoint "
                           f"(e.g. {', '.join(missing[:3])})")
    if getattr(processor, "tokenizer", None) is None or not getattr(processor, "chat_template", None):
        raise MmbenchError(f"{path_or_hub_id}: its processor has no tokenizer or no chat template")
    model.to(device).eval()
    return HFVisionLanguageModel(model, processor, name=name)


class HFVisionLanguageModel:
    """A loaded model + processor: `generate` for the eval runner, encoders for trainers."""

    def __init__(self, model, processor, name: str):
        self.model = model
        self.processor = processor
        self.name = name
        tok = processor.tokenizer
        # Some checkpoints ship no pad token; EOS is the usual stand-in and is never scored.
        self.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self._rendered: dict[tuple, str] = {}  # render_prompt's results (a benchmark repeats prompts)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def device(self):
        return self.model.device

    # ---- prompts ---------------------------------------------------------------------------
    def render_prompt(self, request: GenerationRequest) -> str:
        """The prompt text after the chat template (image placeholder not yet expanded)."""
        # Remembered (the eval runner renders each prompt twice): the text depends on the prompt,
        # whether there is an image and the template only.  Bounded: trainers render many prompts.
        template = getattr(self.processor, "chat_template", None)
        key = (request.prompt, request.image is not None, template) if isinstance(template, str) else None
        if key in self._rendered:
            return self._rendered[key]
        content: list[dict] = [{"type": "image"}] if request.image is not None else []
        content.append({"type": "text", "text": request.prompt})
        messages = [{"role": "user", "content": content}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if key is not None:
            self._rendered = self._rendered if len(self._rendered) < 4096 else {}
            self._rendered[key] = text
        return text

    def encode_prompts(self, requests: Sequence[GenerationRequest], padding_side: str = "left") -> dict:
        """Tensors for a batch of prompts (input_ids, attention_mask, pixel_values when any image).

        With left padding every prompt ends at column `input_ids.shape[1]`, which is where
        generated (or appended completion) tokens start.
        """
        texts = [self.render_prompt(r) for r in requests]
        decoded: dict = {}  # each image decoded once per batch (world POPE: ~15 questions per image)
        for r in requests:
            if r.image is not None and _image_key(r.image) not in decoded:
                decoded[_image_key(r.image)] = _load_image(r.image)
        images = families.images_argument(
            self.processor, [[decoded[_image_key(r.image)]] if r.image is not None else [] for r in requests])
        bos = self.tokenizer.bos_token
        # A template that writes BOS itself must not get a second one from the tokenizer.
        add_special = not (bos is not None and texts and texts[0].startswith(bos))
        batch = self.processor(text=texts, images=images, padding=True, padding_side=padding_side,
                               add_special_tokens=add_special, return_tensors="pt")
        batch = families.drop_processor_labels(dict(batch))
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in batch.items()}

    def completion_ids(self, text: str, add_eos: bool = True) -> list[int]:
        """Token ids of an answer as the model would write it after the prompt (then EOS)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        eos = self.tokenizer.eos_token_id
        return [*ids, eos] if add_eos and eos is not None else list(ids)

    def encode_completions(self, requests: Sequence[GenerationRequest],
                           completions: Sequence[Sequence[int]]) -> dict:
        """Prompt + completion ids, RIGHT padded, with labels only on completion tokens.

        Returns the model inputs plus `labels` (IGNORE_INDEX elsewhere) and `prompt_lengths`
        (real prompt tokens per row).  Completions are token ids, never re-tokenised text, so
        policy and reference score exactly the same tokens.
        """
        if len(requests) != len(completions):
            raise ValueError("one completion per request")
        return self.completion_rows(self.encode_prompts(requests, padding_side="right"), [completions])

    def completion_rows(self, prompt_batch: dict, columns: Sequence[Sequence[Sequence[int]]]) -> dict:
        """Rows [column 0's completions, column 1's, ...] after ONE encoded prompt batch.

        `prompt_batch` is `encode_prompts(requests, padding_side="right")` (the processor ran once:
        images are decoded and processed once per example); each column holds one completion per
        request.  Image tensors are repeated per column — processor outputs are either one entry
        per row or images in row order, so k stacked copies describe k stacked copies of the
        requests.  Same outputs as `encode_completions` on the repeated requests."""
        import torch

        k = len(columns)
        ids, mask = prompt_batch["input_ids"], prompt_batch["attention_mask"]
        n_req = ids.shape[0]
        if any(len(c) != n_req for c in columns):
            raise ValueError("one completion per request in every column")
        prompt_lengths = mask.sum(dim=1).tolist() * k
        completions = [c for column in columns for c in column]
        rest = {key: v for key, v in prompt_batch.items() if key not in ("input_ids", "attention_mask")}
        per_token = set(families.per_token_keys(prompt_batch, ids.shape[1]))
        batch = {key: (torch.cat([v] * k) if hasattr(v, "dim") and v.dim() > 0 else
                       list(v) * k if isinstance(v, (list, tuple)) else v) if k > 1 else v
                 for key, v in rest.items()}
        ids_cpu = ids.cpu()
        width = max(n + len(c) for n, c in zip(prompt_lengths, completions))
        rows = len(completions)
        input_ids = torch.full((rows, width), self.pad_token_id, dtype=ids.dtype)
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        attention = torch.zeros_like(input_ids)
        for row, (n, comp) in enumerate(zip(prompt_lengths, completions)):
            comp_t = torch.as_tensor(list(comp), dtype=ids.dtype)
            input_ids[row, :n] = ids_cpu[row % n_req, :n]
            input_ids[row, n:n + len(comp)] = comp_t
            labels[row, n:n + len(comp)] = comp_t
            attention[row, :n + len(comp)] = 1
        out = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
        out = {key: v.to(self.device) for key, v in out.items()}
        totals = [n + len(c) for n, c in zip(prompt_lengths, completions)]
        # Per-token tensors (mm_token_type_ids, token_type_ids, cross_attention_mask) follow the ids.
        per_token_batch = {key: batch[key] for key in per_token}
        relaid = families.relayout_per_token({**per_token_batch, "input_ids": ids}, ids.shape[1], prompt_lengths,
                                             width, [0] * rows, totals, self.model.config.model_type)
        images = {key: v for key, v in batch.items() if key not in per_token}
        return {**images, **relaid, **out, "prompt_lengths": prompt_lengths}

    # ---- generation ------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest], settings: GenerationSettings,
                 batch_size: int = 8) -> list[str]:
        """Greedy responses, one per request, in input order; special tokens and spaces stripped."""
        import torch

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        requests = list(requests)
        # Longest first: similar lengths share a batch, and an out-of-memory shows up at once.
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].prompt))
        responses: list[str] = [""] * len(requests)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = self.encode_prompts([requests[i] for i in chunk], padding_side="left")
            keys = [_image_key(requests[i].image) for i in chunk]
            with torch.inference_mode():  # each image encoded once per batch, where the family allows it
                inputs = families.share_image_features(self.model, batch, keys)
                out = self.model.generate(**inputs, **self._greedy(settings))
            new = out[:, batch["input_ids"].shape[1]:]
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            for i, text in zip(chunk, texts):
                responses[i] = text.strip()
        return responses

    def _greedy(self, settings: GenerationSettings) -> dict:
        # Explicit settings override whatever sampling defaults the checkpoint ships with.
        # Short and long answers differ only in max_new_tokens; neither has stop strings.
        return {"max_new_tokens": settings.max_new_tokens, "do_sample": False, "num_beams": 1,
                "temperature": None, "top_p": None, "top_k": None, "pad_token_id": self.pad_token_id}


# ---- helpers ---------------------------------------------------------------------------------
def _image_key(image: Any):
    """Identity of a request's image within one batch (a path, or the PIL object)."""
    return None if image is None else image if isinstance(image, (str, os.PathLike)) else id(image)


def _load_image(image: Any):
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    try:
        with Image.open(image) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise MmbenchError(f"cannot read image {image}: {first_line(exc)}") from exc


@contextmanager
def quiet_loading():
    """No "Loading weights" / "Writing model shards" bar per model load or save (every command
    loads one or two) unless --verbose / MMBENCH_VERBOSE=1; hub download bars are left as they were."""
    if os.environ.get("MMBENCH_VERBOSE", "").strip().lower() not in ("", "0", "false", "no"):
        yield
        return
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    hub_was_off = hub_utils.are_progress_bars_disabled()
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    if not hub_was_off:
        hub_utils.enable_progress_bars()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
