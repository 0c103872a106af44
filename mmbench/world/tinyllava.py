"""A tiny LLaVA for the generated world: locally trained tokenizer, model and processor.

Everything here is built from configs on this machine — nothing is downloaded.  The model is a
real `LlavaForConditionalGeneration` (tiny CLIP vision tower + tiny Llama), so the harness and the
trainers treat it exactly like a hub LLaVA; only its chat template differs: it renders the question
text BEFORE the image tokens, which is what lets a model this small bind the asked word to image
content (reference/world-notes.md).  The harness stays model-agnostic because the template decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

PAD, BOS, EOS, UNK, IMAGE = "<pad>", "<s>", "</s>", "<unk>", "<image>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, IMAGE)

# Question text first, then the image, then the answer slot.  Text items of a message are joined,
# image items become one <image> placeholder each (the processor expands it to the patch count).
# Assistant turns end with EOS so that a rendered conversation is also a training target.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}{{ ' ASSISTANT:' }}{%- else -%}{{ 'USER:' }}{%- endif -%}"
    "{%- if message['content'] is string -%}{{ ' ' + message['content'] }}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'text' -%}{{ ' ' + item['text'] }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ ' <image>' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{{ eos_token }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ ' ASSISTANT:' }}{%- endif -%}"
)


def train_tokenizer(texts: Iterable[str], extra_words: Iterable[str] = ()):
    """A word-level tokenizer over the world's text, wrapped as `PreTrainedTokenizerFast`.

    Lower-cases, splits on spaces and tabs, keeps each punctuation mark and each run of newlines
    as its own token (so a blank line survives a round trip instead of vanishing).  Every word of
    `texts` and `extra_words` gets an id; anything else maps to <unk>.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[ \t\r\f\v]+"), behavior="removed"),
        pre_tokenizers.Split(Regex(r"\n+|[^\w\s]"), behavior="isolated"),
    ])
    # Join words with spaces, glue punctuation back ("red ." -> "red."), and no spaces around
    # newlines.  WordPiece's cleanup does the punctuation; the prefix never occurs in the vocab.
    tok.decoder = decoders.Sequence([
        decoders.WordPiece(prefix="##", cleanup=True),
        decoders.Fuse(),
        decoders.Replace(" \n", "\n"),
        decoders.Replace("\n ", "\n"),
    ])
    # The chat template's own words must be in the vocabulary too.
    extra = [*extra_words, "USER: ASSISTANT:"]
    # min_frequency=1: the world's vocabulary is closed, every word it prints must be encodable.
    trainer = trainers.WordLevelTrainer(vocab_size=1_000_000, min_frequency=1,
                                        special_tokens=list(SPECIAL_TOKENS))
    tok.train_from_iterator(_chain(texts, extra), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE}, clean_up_tokenization_spaces=False,
    )


def _chain(texts: Iterable[str], extra: list[str]):
    yield from texts
    yield from extra


def build_tiny_llava(tokenizer, *, image_size: int = 64, patch_size: int = 16, vision_width: int = 128,
                     vision_layers: int = 4, text_width: int = 256, text_layers: int = 4, heads: int = 4,
                     seed: int = 0):
    """A randomly initialised `LlavaForConditionalGeneration` (≈5M parameters) and its processor.

    The vision tower's CLS output is dropped ("default" strategy) and its LAST layer is read
    (`vision_feature_layer=-1`, unlike real LLaVA's -2), so every vision layer receives gradients;
    one image yields (image_size / patch_size)² placeholder tokens — 16 at the defaults.
    """
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    vision = CLIPVisionConfig(
        hidden_size=vision_width, intermediate_size=4 * vision_width, num_hidden_layers=vision_layers,
        num_attention_heads=heads, image_size=image_size, patch_size=patch_size, num_channels=3,
        projection_dim=vision_width,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=text_width, intermediate_size=4 * text_width,
        num_hidden_layers=text_layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=1024, pad_token_id=tokenizer.pad_token_id,  # room for 512 new tokens
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        vision_feature_layer=-1, vision_feature_select_strategy="default",
        projector_hidden_act="gelu", image_seq_length=(image_size // patch_size) ** 2,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.eval()

    processor = LlavaProcessor(
        image_processor=_image_processor(image_size), tokenizer=tokenizer, patch_size=patch_size,
        # CLIP adds a CLS token (+1) and the "default" strategy drops it again (-1).
        num_additional_image_tokens=1, vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
    )
    return model, processor


def _image_processor(image_size: int):
    # The PIL backend: torchvision is not a dependency, and the numbers are the same.
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        do_resize=True, size={"shortest_edge": image_size}, do_center_crop=True,
        crop_size={"height": image_size, "width": image_size}, do_rescale=True, do_normalize=True,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], do_convert_rgb=True,
    )


def save_tiny_llava(model, processor, out_dir: Path) -> Path:
    """save_pretrained both halves into one folder (safetensors) that `load_model` reads."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return out_dir


DEFAULT_TEST_TEXTS = (
    "what colour is the square ?", "is there a circle in the image ?", "how many shapes are there ?",
    "describe the image in detail .", "red green blue yellow purple orange", "yes no one two three four",
    "a red square and a blue circle .",
)


def tiny_llava_for_tests(tmp_path: Path, texts: Iterable[str] = DEFAULT_TEST_TEXTS, *, seed: int = 0,
                         name: str = "tiny-llava", **sizes) -> Path:
    """Build and save a very small random LLaVA in a second or two; returns its folder.

    Smaller than the world model by default (2 layers, width 64/64) so test suites stay fast;
    pass `build_tiny_llava` keyword arguments in `sizes` to change that.
    """
    options = {"vision_width": 64, "vision_layers": 2, "text_width": 64, "text_layers": 2, "heads": 2,
               "seed": seed}
    options.update(sizes)
    tokenizer = train_tokenizer(texts)
    model, processor = build_tiny_llava(tokenizer, **options)
    return save_tiny_llava(model, processor, Path(tmp_path) / name)
