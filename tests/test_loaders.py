"""Loaders on fixture files in each benchmark's official format, written by the test, with
tiny generated images; plus hub-snapshot parquet and save_to_disk folders."""

import json

import pytest
from PIL import Image

from mmbench.benchmarks import get_benchmark, load_records
from mmbench.errors import MmbenchError


def _image(path, colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def _jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_pope_official_files(tmp_path):
    for split in ("random", "adversarial"):
        _jsonl(tmp_path / f"coco_pope_{split}.json", [
            {"question_id": i, "image": f"COCO_val2014_{i}.jpg", "text": f"Is there a dog{i} in the image?",
             "label": "yes" if i % 2 else "no"} for i in range(3)])
    for i in range(3):
        _image(tmp_path / "val2014" / f"COCO_val2014_{i}.jpg")
    records = load_records(get_benchmark("pope"), tmp_path)
    assert len(records) == 6
    assert {r.reference["split"] for r in records} == {"random", "adversarial"}
    first = records[0]
    assert first.prompt == "Is there a dog0 in the image?\nAnswer the question using a single word or phrase."
    assert first.image.name == "COCO_val2014_0.jpg"
    assert load_records(get_benchmark("pope"), tmp_path, limit=2).__len__() == 4  # per split


def test_mmhal_official_template(tmp_path):
    rows = [{"question_type": "counting", "question_topic": "animal", "image_id": "abc",
             "image_src": "https://example.org/x/abc.jpg", "image_content": ["Dog", "Cat"],
             "question": "How many animals?", "gt_answer": "Two.", "model_answer": ""}]
    (tmp_path / "response_template.json").write_text(json.dumps(rows))
    _image(tmp_path / "images" / "abc.jpg")
    (record,) = load_records(get_benchmark("mmhal"), tmp_path)
    assert record.reference == {"question": "How many animals?", "question_type": "counting",
                                "image_content": ["Dog", "Cat"], "gt_answer": "Two."}
    assert record.image.name == "abc.jpg"
    (record_v,) = load_records(get_benchmark("mmhal_v"), tmp_path)
    assert record_v.reference == record.reference


def test_llava_w_three_official_files(tmp_path):
    _jsonl(tmp_path / "questions.jsonl", [{"question_id": 0, "image": "001.jpg", "text": "What is this?",
                                           "category": "conv"}])
    _jsonl(tmp_path / "context.jsonl", [{"id": "001", "image": "001.jpg", "caption": "A red bus."}])
    _jsonl(tmp_path / "answers_gpt4.jsonl", [{"question_id": 0, "text": "A bus."}])
    _image(tmp_path / "images" / "001.jpg")
    (record,) = load_records(get_benchmark("llava_w"), tmp_path)
    assert record.reference == {"question": "What is this?", "category": "conv", "caption": "A red bus.",
                                "gpt_answer": "A bus."}


def test_textvqa_gqa_mmvet_official(tmp_path):
    tv = tmp_path / "textvqa"
    (tv).mkdir()
    (tv / "TextVQA_0.5.1_val.json").write_text(json.dumps({"dataset_name": "textvqa", "data": [
        {"question_id": 7, "question": "What does the sign say?", "image_id": "img7",
         "answers": ["stop"] * 10, "ocr_tokens": ["STOP"]}]}))
    _image(tv / "train_images" / "img7.jpg")
    (record,) = load_records(get_benchmark("textvqa"), tmp_path)  # DIR/<benchmark>/ is found
    assert record.reference == {"answers": ["stop"] * 10} and record.image.name == "img7.jpg"

    gq = tmp_path / "gqa"
    gq.mkdir()
    (gq / "testdev_balanced_questions.json").write_text(json.dumps(
        {"201": {"imageId": "n1", "question": "Is the cup left of the plate?", "answer": "yes"}}))
    _image(gq / "images" / "n1.jpg")
    (record,) = load_records(get_benchmark("gqa"), tmp_path)
    assert record.id == "201" and record.reference == {"answer": "yes"}

    mv = tmp_path / "mmvet"
    mv.mkdir()
    (mv / "mm-vet.json").write_text(json.dumps({"v1_0": {"imagename": "v1_0.png", "capability": ["ocr", "math"],
                                                          "question": "What is 2+3?", "answer": "5<OR>five"}}))
    _image(mv / "images" / "v1_0.png")
    (record,) = load_records(get_benchmark("mmvet"), tmp_path)
    assert record.id == "v1_0" and record.reference["capability"] == ["ocr", "math"]


def test_coco_recall_maps_annotations_through_synonyms(tmp_path):
    _jsonl(tmp_path / "coco_recall" / "data.jsonl", [{"image_id": 5, "image": "a.jpg",
                                                      "gt_object": ["men", "bike", "dog"]}])
    _image(tmp_path / "coco_recall" / "images" / "a.jpg")
    (record,) = load_records(get_benchmark("coco_recall"), tmp_path)
    assert record.reference == {"objects": ["bicycle", "dog", "person"], "vocabulary": "coco"}
    assert record.prompt == "Please describe this image in detail."


def test_hub_snapshot_parquet_and_save_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {"question_id": ["1", "2"], "question": ["Is there a cat in the image?", "Is there a dog in the image?"],
            "answer": ["yes", "no"], "category": ["adversarial", "adversarial"],
            "image": [Image.new("RGB", (8, 8), (0, 0, 255)), Image.new("RGB", (8, 8), (0, 255, 0))]}
    features = datasets.Features({"question_id": datasets.Value("string"), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string"), "category": datasets.Value("string"),
                                  "image": datasets.Image()})
    ds = datasets.Dataset.from_dict(rows, features=features)
    snapshot = tmp_path / "snapshot" / "Full"
    snapshot.mkdir(parents=True)
    ds.to_parquet(str(snapshot / "adversarial-00000-of-00001.parquet"))
    records = load_records(get_benchmark("pope"), tmp_path / "snapshot")
    assert [r.reference for r in records] == [{"answer": "yes", "split": "adversarial"},
                                              {"answer": "no", "split": "adversarial"}]
    assert records[0].image.size == (8, 8)

    datasets.DatasetDict({"adversarial": ds}).save_to_disk(str(tmp_path / "saved"))
    again = load_records(get_benchmark("pope"), tmp_path / "saved")
    assert [r.id for r in again] == [r.id for r in records]


def test_clear_errors(tmp_path):
    with pytest.raises(MmbenchError, match="not found"):
        load_records(get_benchmark("gqa"), tmp_path / "missing")
    (tmp_path / "gqa").mkdir()
    with pytest.raises(MmbenchError, match="no parquet"):
        load_records(get_benchmark("gqa"), tmp_path)
    _jsonl(tmp_path / "gqa" / "q.jsonl", [{"id": "1", "question": "q?", "imageId": "x"}])
    with pytest.raises(MmbenchError, match="image not found: x.jpg"):
        load_records(get_benchmark("gqa"), tmp_path)
    _image(tmp_path / "gqa" / "images" / "x.jpg")
    with pytest.raises(MmbenchError, match="answer"):
        load_records(get_benchmark("gqa"), tmp_path)
