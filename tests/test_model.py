"""The HF model adapter on tiny LLaVAs built inside the tests (no hub, a few seconds each)."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image, ImageDraw

from mmbench.benchmarks.base import GenerationSettings
from mmbench.errors import MmbenchError
from mmbench.harness.generation import GenerationRequest
from mmbench.harness.model import HFVisionLanguageModel, load_model
from mmbench.world.tinyllava import tiny_llava_for_tests

LONG = GenerationSettings(max_new_tokens=24, short_answer=False)
SHORT = GenerationSettings(max_new_tokens=6, short_answer=True)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return tiny_llava_for_tests(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def tiny(tiny_path):
    return load_model(tiny_path)


def _image(i: int) -> Image.Image:
    img = Image.new("RGB", (64, 64), "white")
    colour = [(220, 30, 30), (30, 180, 30), (30, 30, 220), (230, 210, 20)][i % 4]
    ImageDraw.Draw(img).ellipse([4 * (i % 5), 3 * (i % 7), 40 + i % 9, 44], fill=colour)
    return img


def _mixed_requests() -> list[GenerationRequest]:
    words = ["what", "colour", "is", "the", "square", "?", "is", "there", "a", "red", "circle", "in", "the", "image", "?", "describe", "the", "image"]
    # Prompts of 2..20 words; every third without an image.
    return [GenerationRequest(" ".join(words[: 2 + (5 * i) % 19]), None if i % 3 == 2 else _image(i))
            for i in range(11)]


def test_round_trip_through_load_model(tiny_path, tiny):
    assert isinstance(tiny, HFVisionLanguageModel)
    assert tiny.name == tiny_path.name
    assert type(tiny.model).__name__ == "LlavaForConditionalGeneration"
    # "auto": float32 for a float32 checkpoint, on the GPU when there is one.
    assert tiny.model.dtype == torch.float32
    assert tiny.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    # Same tokenizer after the round trip: every word of a sentence is known and decodes back.
    ids = tiny.tokenizer("What colour is the square?", add_special_tokens=False)["input_ids"]
    assert tiny.tokenizer.unk_token_id not in ids
    assert tiny.tokenizer.decode(ids) == "what colour is the square?"
    out = tiny.generate([GenerationRequest("is there a circle ?", _image(0))], SHORT)
    assert isinstance(out[0], str)


def test_the_image_expands_to_sixteen_tokens_after_the_question(tiny):
    request = GenerationRequest("what colour is the square ?", _image(1))
    text = tiny.render_prompt(request)
    assert text.index("what colour is the square ?") < text.index("<image>") < text.index("ASSISTANT:")
    ids = tiny.encode_prompts([request])["input_ids"][0].tolist()
    image_id = tiny.model.config.image_token_id
    question = tiny.tokenizer("square ?", add_special_tokens=False)["input_ids"]
    positions = [i for i, t in enumerate(ids) if t == image_id]
    assert len(positions) == 16 and positions == list(range(positions[0], positions[0] + 16))
    assert ids.index(question[0]) < positions[0]
    assert ids[0] == tiny.tokenizer.bos_token_id and ids.count(tiny.tokenizer.bos_token_id) == 1
    text_only = tiny.render_prompt(GenerationRequest("what colour ?"))
    assert "<image>" not in text_only


def test_responses_do_not_depend_on_batch_size(tiny):
    requests = _mixed_requests()
    one = tiny.generate(requests, LONG, batch_size=1)
    eight = tiny.generate(requests, LONG, batch_size=8)
    sixteen = tiny.generate(requests, LONG, batch_size=16)
    assert one == eight == sixteen
    assert len(set(one)) > 1  # the prompts really differ, not a degenerate constant


def test_responses_depend_on_the_image(tiny):
    prompt = "describe the image"
    outs = {tiny.generate([GenerationRequest(prompt, _image(i))], LONG)[0] for i in range(4)}
    outs.add(tiny.generate([GenerationRequest(prompt)], LONG)[0])
    assert len(outs) > 1


def _successor_model(path, chain: dict[str, str]) -> None:
    """Rewrite a saved tiny LLaVA so that the next token depends only on the current one.

    Attention and MLP outputs are zeroed, so the last hidden state is the current token's
    (one-hot) embedding; lm_head then maps it to `chain[token]`, or EOS.
    """
    lm = load_model(path)
    tok, model = lm.tokenizer, lm.model
    text = model.model.language_model
    vocab, width = model.lm_head.weight.shape
    assert vocab <= width
    with torch.no_grad():
        for layer in text.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        text.embed_tokens.weight.copy_(torch.eye(vocab, width))
        head = torch.zeros(vocab, width)
        for i in range(vocab):
            nxt = chain.get(tok.convert_ids_to_tokens(i), tok.eos_token)
            head[tok.convert_tokens_to_ids(nxt), i] = 50.0
        model.lm_head.weight.copy_(head)
    model.save_pretrained(path)


def test_long_answers_run_past_a_blank_line(tmp_path):
    texts = ["one two three .", "first line\n\nsecond line", "describe the image ."]
    path = tiny_llava_for_tests(tmp_path, texts, text_width=128)
    _successor_model(path, {":": "one", "one": "\n\n", "\n\n": "two", "two": "three", "three": "."})
    lm = load_model(path)
    requests = [GenerationRequest("describe the image .", _image(0)), GenerationRequest("describe the image .")]
    assert lm.generate(requests, LONG) == ["one\n\ntwo three.", "one\n\ntwo three."]
    # max_new_tokens bounds short answers; special tokens and spaces are stripped.
    assert lm.generate(requests[:1], GenerationSettings(max_new_tokens=3, short_answer=True)) == ["one\n\ntwo"]


def test_encode_completions_labels_only_the_answer(tiny):
    requests = [GenerationRequest("what colour is the square ?", _image(2)), GenerationRequest("is there a circle ?")]
    completions = [tiny.completion_ids("red ."), tiny.completion_ids("yes")]
    assert completions[1][-1] == tiny.tokenizer.eos_token_id
    batch = tiny.encode_completions(requests, completions)
    for row, (n, comp) in enumerate(zip(batch["prompt_lengths"], completions)):
        labels = batch["labels"][row]
        assert batch["input_ids"][row, n:n + len(comp)].tolist() == comp
        assert labels[n:n + len(comp)].tolist() == comp
        assert (labels[:n] == -100).all() and (labels[n + len(comp):] == -100).all()
        assert batch["attention_mask"][row].sum() == n + len(comp)
    # The prompt part matches what generation is given (up to padding side).
    prompt = tiny.encode_prompts(requests[:1])["input_ids"][0].tolist()
    assert batch["input_ids"][0, :batch["prompt_lengths"][0]].tolist() == prompt
    assert batch["pixel_values"].shape[0] == 1
    logits = tiny.model(**{k: v for k, v in batch.items() if k not in ("labels", "prompt_lengths")}).logits
    assert logits.shape[:2] == batch["input_ids"].shape


def test_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(MmbenchError, match="not found"):
        load_model(tmp_path / "nope")
    with pytest.raises(MmbenchError, match="not found"):
        load_model("./no/such/model/folder")


def test_text_only_checkpoint_is_refused_before_loading(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    with pytest.raises(MmbenchError, match="not an image-text-to-text model") as err:
        load_model(tmp_path / "llama")
    assert "\n" not in str(err.value)


def test_folder_without_safetensors_is_refused(tmp_path, tiny_path):
    folder = tmp_path / "no-weights"
    shutil.copytree(tiny_path, folder)
    (folder / "model.safetensors").unlink()
    (folder / "model.bin").write_bytes(b"not loaded")
    with pytest.raises(MmbenchError, match="safetensors"):
        load_model(folder)


def test_unknown_hub_id_offline_is_a_clear_error(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "model_info", offline)
    with pytest.raises(MmbenchError, match="hub is unreachable"):
        load_model("no-such-org/no-such-model")


def test_bad_dtype_and_device_are_errors(tiny_path):
    with pytest.raises(MmbenchError, match="dtype"):
        load_model(tiny_path, dtype="float8")
    with pytest.raises(MmbenchError, match="device"):
        load_model(tiny_path, device="nonsense")


def test_checkpoint_with_missing_weights_is_refused(tmp_path, tiny_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "partial"
    shutil.copytree(tiny_path, folder)
    weights = load_file(folder / "model.safetensors")
    dropped = next(k for k in weights if "multi_modal_projector" in k)
    del weights[dropped]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(MmbenchError, match="missing"):
        load_model(folder)


def test_original_llava_repo_format_is_refused(tmp_path, tiny_path):
    import json

    folder = tmp_path / "orig"
    shutil.copytree(tiny_path, folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["LlavaLlamaForCausalLM"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(MmbenchError, match="LlavaLlamaForCausalLM"):
        load_model(folder)
