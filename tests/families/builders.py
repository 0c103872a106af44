"""Tiny random-weight checkpoints of every supported family, built from config on this machine.

Each builder returns (model, processor) made with the family's REAL model and processor classes
(PIL image processors: torchvision is not installed) and a word-level tokenizer trained locally
on the given texts, with the family's special tokens and a chat template shaped like the hub's.
`build_checkpoint` saves both halves as safetensors into one folder that `load_model` reads.
"""

from __future__ import annotations

from pathlib import Path

from mmbench.harness.families import image_only_processor_class

IMAGE = 32  # pixels; every family resizes the world's images to this
WIDTH, HEADS = 32, 2  # text width and heads (head_dim 16)
VISION = 32  # vision tower width

# Chat templates shaped like the hub ones (one user turn, images before the text, generation prompt).
_IMG_THEN_TEXT = ("{%- for item in message['content'] -%}{%- if item['type'] == 'image' -%}{IMG}{%- endif -%}"
                  "{%- endfor -%}{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}"
                  "{{ item['text'] }}{%- endif -%}{%- endfor -%}")


def _template(head: str, user: str, image: str, end: str, assistant: str, bos: bool = False) -> str:
    body = _IMG_THEN_TEXT.replace("{IMG}", "{{ '" + image + "' }}")
    return (("{{- bos_token -}}" if bos else "") + head + "{%- for message in messages -%}"
            "{%- if message['role'] == 'user' -%}{{ '" + user + "' }}" + body + "{{ '" + end + "' }}"
            "{%- else -%}{{ '" + assistant + "' }}{%- for item in message['content'] -%}"
            "{{ item['text'] }}{%- endfor -%}{{ '" + end + "' }}{%- endif -%}{%- endfor -%}"
            "{%- if add_generation_prompt -%}{{ '" + assistant + "' }}{%- endif -%}")


QWEN_TEMPLATE = _template("{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}",
                          "<|im_start|>user\\n", "<|vision_start|><|image_pad|><|vision_end|>",
                          "<|im_end|>\\n", "<|im_start|>assistant\\n")


def word_tokenizer(texts, specials: list[str], *, bos: str, eos: str, pad: str, unk: str = "<unk>",
                   attrs: dict | None = None):
    """A lower-casing word-level tokenizer whose vocabulary covers `texts`; specials come first."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token=unk))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[ \t\r\f\v]+"), behavior="removed"),
        pre_tokenizers.Split(Regex(r"\n+|[^\w\s]"), behavior="isolated")])
    tok.decoder = decoders.Sequence([decoders.WordPiece(prefix="##", cleanup=True), decoders.Fuse()])
    words = ["system you are a helpful assistant user model \n \n\n : ."]
    special = list(dict.fromkeys([pad, bos, eos, unk, *specials]))
    tok.train_from_iterator([*texts, *words], trainer=trainers.WordLevelTrainer(
        vocab_size=1_000_000, min_frequency=1, special_tokens=special))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                   unk_token=unk, extra_special_tokens=attrs or {},
                                   clean_up_tokenization_spaces=False)


def _ids(tok, **names) -> dict:
    return {key: tok.convert_tokens_to_ids(token) for key, token in names.items()}


def _special(tok) -> dict:
    return {"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}


def _llama(tok, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tok), hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1,
                       num_attention_heads=HEADS, num_key_value_heads=HEADS, max_position_embeddings=512,
                       tie_word_embeddings=False, **_special(tok), **extra)


def _clip(**extra):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=VISION, intermediate_size=2 * VISION, num_hidden_layers=1,
                            num_attention_heads=HEADS, image_size=IMAGE, patch_size=8, projection_dim=VISION, **extra)


def _siglip(**extra):
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(hidden_size=VISION, intermediate_size=2 * VISION, num_hidden_layers=1,
                              num_attention_heads=HEADS, image_size=IMAGE, patch_size=8, **extra)


_NORM = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}


def llava(texts):
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = word_tokenizer(texts, ["<image>"], bos="<s>", eos="</s>", pad="<pad>", attrs={"image_token": "<image>"})
    config = LlavaConfig(vision_config=_clip(), text_config=_llama(tok), vision_feature_layer=-1,
                         image_token_index=tok.convert_tokens_to_ids("<image>"), image_seq_length=16,
                         tie_word_embeddings=False)
    proc = LlavaProcessor(CLIPImageProcessorPil(size={"shortest_edge": IMAGE}, crop_size=IMAGE, **_NORM), tok,
                          patch_size=8, num_additional_image_tokens=1, vision_feature_select_strategy="default",
                          chat_template=_template("", "USER: ", "<image>\\n", " ", "ASSISTANT:", bos=True))
    return LlavaForConditionalGeneration(config), proc


def llava_next(texts):
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    tok = word_tokenizer(texts, ["<image>", "[INST]", "[/INST]"], bos="<s>", eos="</s>", pad="<pad>",
                         attrs={"image_token": "<image>"})
    pins = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE], [2 * IMAGE, IMAGE]]
    config = LlavaNextConfig(vision_config=_clip(), text_config=_llama(tok), image_grid_pinpoints=pins,
                             vision_feature_layer=-1, image_token_index=tok.convert_tokens_to_ids("<image>"),
                             tie_word_embeddings=False)
    image = LlavaNextImageProcessorPil(size={"shortest_edge": IMAGE}, crop_size=IMAGE, image_grid_pinpoints=pins,
                                       **_NORM)
    proc = LlavaNextProcessor(image, tok, patch_size=8, num_additional_image_tokens=1,
                              vision_feature_select_strategy="default",
                              chat_template=_template("", "[INST] ", "<image>\\n", " ", "[/INST]", bos=True))
    return LlavaNextForConditionalGeneration(config), proc


def _qwen2_text(tok):
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=len(tok), hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1,
                       num_attention_heads=HEADS, num_key_value_heads=1, max_position_embeddings=512,
                       tie_word_embeddings=False, **_special(tok))


_QWEN_SPECIALS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                  "<|video_pad|>", "<|endoftext|>"]


def _qwen_tok(texts, extra=()):
    return word_tokenizer(texts, [*_QWEN_SPECIALS, *extra], bos="<|endoftext|>", eos="<|im_end|>",
                          pad="<|endoftext|>")


def llava_onevision(texts):
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionProcessor,
    )
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    tok = _qwen_tok(texts, ["<image>", "<video>"])
    tok.bos_token = None
    pins = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE]]
    config = LlavaOnevisionConfig(vision_config=_siglip(), text_config=_qwen2_text(tok), image_grid_pinpoints=pins,
                                  vision_feature_layer=-1, image_token_index=tok.convert_tokens_to_ids("<image>"),
                                  video_token_index=tok.convert_tokens_to_ids("<video>"), tie_word_embeddings=False)
    image = LlavaOnevisionImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, image_grid_pinpoints=pins, **_NORM)
    proc = image_only_processor_class(LlavaOnevisionProcessor)(image, tok, num_image_tokens=16,
                                   vision_feature_select_strategy="full",
                                   chat_template=_template("", "<|im_start|>user ", "<image>\\n", "<|im_end|>\\n",
                                                           "<|im_start|>assistant\\n"))
    return LlavaOnevisionForConditionalGeneration(config), proc


def _qwen_image(patch: int):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    pixels = (2 * patch) ** 2  # 2x2 patches -> one merged token... times 4 below
    return Qwen2VLImageProcessorPil(min_pixels=4 * pixels, max_pixels=4 * pixels, patch_size=patch, merge_size=2,
                                    temporal_patch_size=2, **_NORM)


def _qwen_ids(tok):
    return _ids(tok, image_token_id="<|image_pad|>", video_token_id="<|video_pad|>",
                vision_start_token_id="<|vision_start|>", vision_end_token_id="<|vision_end|>")


def _mrope_text(tok, **extra) -> dict:
    return dict(vocab_size=len(tok), hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1,
                num_attention_heads=HEADS, num_key_value_heads=1, max_position_embeddings=512,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], **extra},
                **_special(tok))


def qwen2_vl(texts):
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    tok = _qwen_tok(texts)
    vision = {"depth": 1, "embed_dim": VISION, "hidden_size": WIDTH, "num_heads": HEADS, "patch_size": 8, "mlp_ratio": 2}
    config = Qwen2VLConfig(text_config=_mrope_text(tok), vision_config=vision, tie_word_embeddings=False,
                           **_qwen_ids(tok))
    proc = image_only_processor_class(Qwen2VLProcessor)(_qwen_image(8), tok, chat_template=QWEN_TEMPLATE)
    return Qwen2VLForConditionalGeneration(config), proc


def qwen2_5_vl(texts):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    tok = _qwen_tok(texts)
    vision = {"depth": 2, "hidden_size": VISION, "out_hidden_size": WIDTH, "intermediate_size": 2 * VISION, "num_heads": HEADS,
                  "patch_size": 8, "window_size": 32, "fullatt_block_indexes": [1]}
    config = Qwen2_5_VLConfig(text_config=_mrope_text(tok), vision_config=vision, tie_word_embeddings=False,
                              **_qwen_ids(tok))
    proc = image_only_processor_class(Qwen2_5_VLProcessor)(_qwen_image(8), tok, chat_template=QWEN_TEMPLATE)
    return Qwen2_5_VLForConditionalGeneration(config), proc


def qwen3_vl(texts):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor

    tok = _qwen_tok(texts)
    vision = {"depth": 2, "hidden_size": VISION, "out_hidden_size": WIDTH, "intermediate_size": 2 * VISION, "num_heads": HEADS,
                  "patch_size": 16, "num_position_embeddings": 16, "deepstack_visual_indexes": [0]}
    # Two text layers: deepstack features enter after layer 0, and must reach the answer's logits.
    text = {**_mrope_text(tok, mrope_interleaved=True), "head_dim": WIDTH // HEADS, "num_hidden_layers": 2}
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=False, **_qwen_ids(tok))
    proc = image_only_processor_class(Qwen3VLProcessor)(_qwen_image(16), tok, chat_template=QWEN_TEMPLATE)
    return Qwen3VLForConditionalGeneration(config), proc


def idefics3(texts):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    rows = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tok = word_tokenizer(texts, ["<|im_start|>", "<image>", "<fake_token_around_image>", "<end_of_utterance>",
                                 "<global-img>", *rows], bos="<|im_start|>", eos="<end_of_utterance>",
                         pad="<|endoftext|>")
    vision = {"hidden_size": VISION, "intermediate_size": 2 * VISION, "num_hidden_layers": 1, "num_attention_heads": HEADS,
                  "image_size": IMAGE, "patch_size": 8}
    config = Idefics3Config(vision_config=vision, text_config=_llama(tok), scale_factor=2, tie_word_embeddings=False,
                            image_token_id=tok.convert_tokens_to_ids("<image>"))
    image = Idefics3ImageProcessorPil(size={"longest_edge": IMAGE}, max_image_size={"longest_edge": IMAGE},
                                      do_image_splitting=False, **_NORM)
    proc = Idefics3Processor(image, tok, image_seq_len=4,
                             chat_template=_template("{{ '<|im_start|>' }}", "User:", "<image>", "<end_of_utterance>\\n",
                                                     "Assistant:"))
    return Idefics3ForConditionalGeneration(config), proc


def _gemma_text(tok, cls_name="GemmaConfig", **extra):
    import transformers

    return getattr(transformers, cls_name)(
        vocab_size=len(tok), hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=1,
        num_attention_heads=HEADS, num_key_value_heads=1, head_dim=WIDTH // HEADS, max_position_embeddings=512,
        **_special(tok), **extra)


def paligemma(texts):
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PaliGemmaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tok = word_tokenizer(texts, ["<image>"], bos="<bos>", eos="<eos>", pad="<pad>", attrs={"image_token": "<image>"})
    image = SiglipImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, **_NORM)
    image.image_seq_length = 16
    proc = PaliGemmaProcessor(image, tok, chat_template=_template("", "", "<image>", "", ""))  # adds loc/seg tokens
    config = PaliGemmaConfig(vision_config=_siglip(), text_config=_gemma_text(tok), projection_dim=WIDTH,
                             image_token_index=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=False)
    return PaliGemmaForConditionalGeneration(config), proc


def gemma3(texts):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    tok = word_tokenizer(texts, ["<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
                                 "<image_soft_token>"], bos="<bos>", eos="<end_of_turn>", pad="<pad>",
                         attrs={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                                "image_token": "<image_soft_token>"})
    text = _gemma_text(tok, "Gemma3TextConfig", sliding_window=64, layer_types=["full_attention"])
    config = Gemma3Config(text_config=text, vision_config=_siglip(), mm_tokens_per_image=4, tie_word_embeddings=False,
                          **_ids(tok, boi_token_index="<start_of_image>", eoi_token_index="<end_of_image>",
                                 image_token_index="<image_soft_token>"))
    image = Gemma3ImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, **_NORM)
    proc = Gemma3Processor(image, tok, image_seq_length=4,
                           chat_template=_template("", "<start_of_turn>user\\n", "<start_of_image>",
                                                   "<end_of_turn>\\n", "<start_of_turn>model\\n", bos=True))
    return Gemma3ForConditionalGeneration(config), proc


def mllama(texts):
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaProcessor
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    tok = word_tokenizer(texts, ["<|begin_of_text|>", "<|image|>", "<|python_tag|>", "<|start_header_id|>",
                                 "<|end_header_id|>", "<|eot_id|>", "<|finetune_right_pad_id|>"],
                         bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|finetune_right_pad_id|>")
    vision = {"hidden_size": VISION, "intermediate_size": 2 * VISION, "num_hidden_layers": 1, "num_global_layers": 1,
                  "attention_heads": HEADS, "image_size": IMAGE, "patch_size": 8, "max_num_tiles": 1,
                  "intermediate_layers_indices": [0], "vision_output_dim": 2 * VISION, "supported_aspect_ratios": [[1, 1]]}
    text = dict(vocab_size=len(tok), hidden_size=WIDTH, intermediate_size=2 * WIDTH, num_hidden_layers=2,
                num_attention_heads=HEADS, num_key_value_heads=1, cross_attention_layers=[1],
                max_position_embeddings=512, tie_word_embeddings=False, **_special(tok))
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<|image|>"),
                          tie_word_embeddings=False)
    image = MllamaImageProcessorPil(size={"height": IMAGE, "width": IMAGE}, max_image_tiles=1, **_NORM)
    header = "<|start_header_id|>{}<|end_header_id|>\\n\\n"
    proc = MllamaProcessor(image, tok, chat_template=_template("", header.format("user"), "<|image|>", "<|eot_id|>",
                                                               header.format("assistant"), bos=True))
    return MllamaForConditionalGeneration(config), proc


FAMILIES = {f.__name__: f for f in (llava, llava_next, llava_onevision, qwen2_vl, qwen2_5_vl, qwen3_vl, idefics3,
                                    paligemma, gemma3, mllama)}


def build_checkpoint(family: str, texts, out: Path, seed: int = 0) -> Path:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, processor = FAMILIES[family](list(texts))
        # Zero-initialised paths would keep the image out of a random model: Gemma 3's projection
        # weight and Mllama's cross-attention gates start at 0 (trained checkpoints are not 0).
        for name, parameter in model.named_parameters():
            if ("gate" in name or "mm_input_projection" in name) and not parameter.detach().any():
                parameter.data.normal_(0.0, 0.5)
    tok = processor.tokenizer
    for key, value in _special(tok).items():
        setattr(model.generation_config, key, value)
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out
