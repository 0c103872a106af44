"""The eval's shortcuts give the same bytes as the long way (issue 16, item 6).

- records with the same input are generated once and share the answer (harness/evaluate.py);
- an image asked about several times in a batch is decoded and encoded once
  (`HFVisionLanguageModel.encode_prompts`, `families.share_image_features`);
- `run_eval` leaves the garbage collector as it found it (harness/eval_api.py).
"""

import gc
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from mmbench.benchmarks import get_benchmark
from mmbench.benchmarks.base import GenerationSettings
from mmbench.harness import families
from mmbench.harness.evaluate import EvalSettings, evaluate_benchmark
from mmbench.harness.generation import GenerationRequest
from mmbench.harness.model import _image_key, load_model
from mmbench.world.tinyllava import tiny_llava_for_tests

COLOURS = [(220, 30, 30), (30, 160, 30), (30, 30, 220), (230, 200, 20)]
OBJECTS = ["square", "circle", "square", "triangle"]  # "square" twice: a question repeated in a split


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny LLaVA and a POPE folder in which the three splits share questions, as POPE's do."""
    root = tmp_path_factory.mktemp("fastpath")
    model = tiny_llava_for_tests(root / "models")
    (root / "data" / "images").mkdir(parents=True)
    (root / "data" / "pope").mkdir()
    for i, colour in enumerate(COLOURS):
        image = Image.new("RGB", (64, 64), "white")
        image.paste(colour, (8 * i, 8, 8 * i + 30, 40))
        image.save(root / "data" / "images" / f"s{i}.png")
    rows = [{"question_id": f"s{i}-{j}", "question": f"Is there a {obj} in the image?", "answer": "yes",
             "image": f"images/s{i}.png", "category": split}
            for split in ("random", "popular", "adversarial") for i in range(len(COLOURS))
            for j, obj in enumerate(OBJECTS[: 2 + (split != "random")])]
    (root / "data" / "pope" / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"model": model, "data": root / "data", "lm": load_model(model)}


def requests(data: Path) -> list[GenerationRequest]:
    shared = Image.open(data / "images" / "s3.png").convert("RGB")  # one PIL object, used twice
    return [GenerationRequest(f"Is there a {obj} in the image?", str(data / "images" / f"s{i % 3}.png"))
            for i, obj in enumerate(OBJECTS * 3)] + [GenerationRequest("what colour is the square ?", shared),
                                                     GenerationRequest("how many shapes are there ?", shared)]


def test_shared_image_features_give_the_same_logits(setup):
    lm = setup["lm"]
    batch_requests = requests(setup["data"])
    batch = lm.encode_prompts(batch_requests)
    keys = [_image_key(r.image) for r in batch_requests]
    shared = families.share_image_features(lm.model, batch, keys)
    assert "pixel_values" not in shared and len(shared["mm_encoder_outputs"]["image"].pooler_output) == len(keys)
    greedy = {**lm._greedy(GenerationSettings(max_new_tokens=6, short_answer=False)), "output_logits": True,
              "return_dict_in_generate": True}
    with torch.inference_mode():
        plain = lm.model.generate(**batch, **greedy)
        fast = lm.model.generate(**shared, **greedy)
    assert torch.equal(plain.sequences, fast.sequences)
    assert len(plain.logits) == len(fast.logits) and all(torch.equal(a, b) for a, b in zip(plain.logits, fast.logits))


def test_shared_image_features_leave_other_batches_alone(setup):
    lm = setup["lm"]
    mixed = [GenerationRequest("describe the image in detail .", None), *requests(setup["data"])[:2]]
    batch = lm.encode_prompts(mixed)
    assert families.share_image_features(lm.model, batch, [_image_key(r.image) for r in mixed]) is batch


def test_adapter_answers_do_not_depend_on_the_shortcuts(setup, monkeypatch):
    lm = setup["lm"]
    settings = GenerationSettings(max_new_tokens=8, short_answer=False)
    fast = lm.generate(requests(setup["data"]), settings, batch_size=5)
    monkeypatch.setattr(families, "SHARED_IMAGE_FEATURES", ())
    alone = [lm.generate([r], settings, batch_size=1)[0] for r in requests(setup["data"])]
    assert fast == alone


class Counting:
    """Wraps the model: records every request it is asked, and dies after `calls` calls."""

    def __init__(self, model, calls=None):
        self.model, self.name, self.left, self.seen = model, model.name, calls, []
        self.render_prompt = model.render_prompt

    def generate(self, requests, *args, **kwargs):
        if self.left == 0:
            raise KeyboardInterrupt("killed")
        self.left = None if self.left is None else self.left - 1
        self.seen += [(r.prompt, str(r.image)) for r in requests]
        return self.model.generate(requests, *args, **kwargs)


def test_identical_inputs_are_generated_once_with_the_same_answer(setup, tmp_path):
    lm, bench = setup["lm"], get_benchmark("pope")
    settings = EvalSettings(data=str(setup["data"]), batch_size=4, chunk=5, max_new_tokens=8)
    counting = Counting(lm)
    evaluate_benchmark(counting, bench, tmp_path / "full", settings)
    samples = [json.loads(x) for x in (tmp_path / "full" / lm.name / "pope" / "samples.jsonl").read_text().splitlines()]
    # 32 records (8 random, 12 popular, 12 adversarial), 8 inputs: 4 images x {square, circle}
    assert len(samples) == 32 and len(counting.seen) == len(set(counting.seen)) == 8
    by_input = {}
    for sample in samples:  # every record's answer is the one it gets generated on its own
        image = str(setup["data"] / "images" / f"{sample['id'].split('/')[1].split('-')[0]}.png")
        request = GenerationRequest(sample["prompt"], image)
        by_input.setdefault((sample["prompt"], image), lm.generate([request], settings.generation(bench), 1)[0])
        assert sample["response"] == by_input[(sample["prompt"], image)]
        assert sample["prompt_rendered"] == lm.render_prompt(request)
    # a run killed at its second generate call and resumed writes the same files
    with pytest.raises(KeyboardInterrupt):
        evaluate_benchmark(Counting(lm, calls=1), bench, tmp_path / "cut", settings)
    evaluate_benchmark(lm, bench, tmp_path / "cut", settings)
    for name in ("samples.jsonl", "results.json"):
        assert (tmp_path / "cut" / lm.name / "pope" / name).read_bytes() == \
            (tmp_path / "full" / lm.name / "pope" / name).read_bytes()


def test_run_eval_restores_the_garbage_collector(setup, tmp_path):
    from mmbench.harness.eval_api import EvalRequest, run_eval

    assert gc.isenabled() and gc.get_freeze_count() == 0
    results = run_eval(EvalRequest(model=str(setup["model"]), benchmarks=[get_benchmark("pope")],
                                   data=str(setup["data"]), out=tmp_path, limit=2, max_new_tokens=4,
                                   show_progress=False))
    assert results["pope"]["n"] == 6
    assert gc.isenabled() and gc.get_freeze_count() == 0
