"""The world's tiny LLaVA: tokenizer, processor and model built locally, saved and reloaded."""

from __future__ import annotations

import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer

from mmbench.world.tinyllava import IMAGE, build_tiny_llava, save_tiny_llava, train_tokenizer

TEXTS = ["What colour is the square?", "A red square, and a blue circle.", "first line\n\nsecond line"]


def test_tokenizer_round_trips_and_splits_punctuation(tmp_path):
    tok = train_tokenizer(TEXTS, extra_words=["triangle"])
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for t in (tok, loaded):
        ids = t("A RED Square, and a Triangle?", add_special_tokens=False)["input_ids"]
        assert t.convert_ids_to_tokens(ids) == ["a", "red", "square", ",", "and", "a", "triangle", "?"]
        assert t.decode(ids) == "a red square, and a triangle?"
        assert t.convert_tokens_to_ids(IMAGE) != t.unk_token_id
        assert t(f"is it {IMAGE} red", add_special_tokens=False)["input_ids"][2] == t.convert_tokens_to_ids(IMAGE)
        assert t("zebra", add_special_tokens=False)["input_ids"] == [t.unk_token_id]
        assert t.decode(t("first line\n\nsecond line", add_special_tokens=False)["input_ids"]) == \
            "first line\n\nsecond line"
        assert {t.pad_token, t.bos_token, t.eos_token, t.unk_token} == {"<pad>", "<s>", "</s>", "<unk>"}
        # The chat template's words are in the vocabulary, whatever the texts were.
        assert t.unk_token_id not in t("USER: ASSISTANT:", add_special_tokens=False)["input_ids"]
    assert loaded.get_vocab() == tok.get_vocab()


def test_default_model_is_about_five_million_parameters_with_sixteen_image_tokens(tmp_path):
    tok = train_tokenizer(TEXTS)
    model, processor = build_tiny_llava(tok)
    n = sum(p.numel() for p in model.parameters())
    assert 4.5e6 < n < 6e6
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}],
        add_generation_prompt=True, tokenize=False)
    assert text == "<s>USER: What colour? <image> ASSISTANT:"
    batch = processor(text=[text], images=[image], add_special_tokens=False, return_tensors="pt")
    assert (batch["input_ids"] == model.config.image_token_id).sum() == 16
    assert batch["pixel_values"].shape == (1, 3, 64, 64)
    with torch.no_grad():
        # A mismatch between placeholders and image features would raise here.
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(tok))

    save_tiny_llava(model, processor, tmp_path / "m")
    reloaded = AutoProcessor.from_pretrained(tmp_path / "m")
    again = reloaded(text=[text], images=[image], add_special_tokens=False, return_tensors="pt")
    assert torch.equal(again["input_ids"], batch["input_ids"])
    assert torch.equal(again["pixel_values"], batch["pixel_values"])
    # An assistant turn ends with EOS, so rendered conversations double as training targets.
    convo = [{"role": "user", "content": [{"type": "text", "text": "q"}]},
             {"role": "assistant", "content": [{"type": "text", "text": "red"}]}]
    assert reloaded.apply_chat_template(convo, tokenize=False) == "<s>USER: q ASSISTANT: red</s>"
