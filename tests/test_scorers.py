"""Hand-computed cases for every scorer and aggregator (no model, no data, no network)."""

import math

import pytest

from mmbench.benchmarks import coco_recall, gqa, llava_w, mmhal, mmvet, pope, textvqa
from mmbench.benchmarks.textnorm import (
    normalize_vqa_answer,
    parse_rating,
    parse_score_pair,
    parse_unit_score,
    parse_yes_no_official,
    parse_yes_no_strict,
)


# ---------------------------------------------------------------- POPE

@pytest.mark.parametrize("text, official, strict", [
    ("Yes, there is a dog.", "yes", None),
    ("There is no cat.", "no", None),
    ("yes", "yes", "yes"),
    (" No ", "no", "no"),       # official: split on single spaces keeps "No" as a word
    ("NO", "yes", "no"),        # official rule is case-sensitive: "NO" is not a no-word
    ("Not at all", "yes", None),  # "Not" (capital) does not count either
    ("It is not there", "no", None),
    ("", "yes", None),          # an empty answer is "yes" under the official rule
    ("Yes. But no.", "yes", None),  # only the first sentence is read
    ("no, it is not", "no", None),
])
def test_pope_parses(text, official, strict):
    assert parse_yes_no_official(text) == official
    assert parse_yes_no_strict(text) == strict


def _pope(label, response, split="random", strict=False):
    return pope.score({"answer": label, "split": split}, response, parse="strict" if strict else "official")


def test_pope_metrics_hand_computed():
    # random: TP=2 FP=1 TN=1 FN=0 -> acc 3/4, precision 2/3, recall 1, f1 0.8, yes-ratio 3/4
    # adversarial: TP=1 FP=1 TN=0 FN=1 -> acc 1/3, precision 1/2, recall 1/2, f1 1/2, yes 2/3
    samples = [_pope("yes", "Yes"), _pope("yes", "Yes, there is."), _pope("no", "Yes"), _pope("no", "No"),
               _pope("yes", "yes", "adversarial"), _pope("no", "yes", "adversarial"),
               _pope("yes", "no", "adversarial")]
    m = pope.aggregate(samples)
    assert m["random/accuracy"] == pytest.approx(75.0)
    assert m["random/precision"] == pytest.approx(200 / 3)
    assert m["random/recall"] == pytest.approx(100.0)
    assert m["random/f1"] == pytest.approx(80.0)
    assert m["random/yes_ratio"] == pytest.approx(75.0)
    assert m["adversarial/f1"] == pytest.approx(50.0)
    assert m["adversarial/yes_ratio"] == pytest.approx(200 / 3)
    assert m["f1"] == pytest.approx(65.0)  # mean over the two splits present, not pooled
    assert m["accuracy"] == pytest.approx((75.0 + 100 / 3) / 2)
    assert "popular/f1" not in m


def test_pope_strict_unparsed_counts_in_n_but_no_class():
    samples = [_pope("yes", "Yes.", strict=True), _pope("yes", "yes", strict=True),
               _pope("no", "no", strict=True), _pope("no", "no", strict=True)]
    m = pope.aggregate(samples)
    # "Yes." is neither yes nor no: TP=1, FN=0, TN=2 -> acc 3/4, recall 1, yes-ratio 1/4
    assert m["accuracy"] == pytest.approx(75.0)
    assert m["recall"] == pytest.approx(100.0)
    assert m["yes_ratio"] == pytest.approx(25.0)
    official = pope.aggregate([_pope("yes", "Yes."), _pope("yes", "yes"), _pope("no", "no"), _pope("no", "no")])
    assert official["accuracy"] == pytest.approx(100.0)


# ---------------------------------------------------------------- TextVQA

@pytest.mark.parametrize("a, b", [
    ("Two", "2"), ("the cat", "cat"), ("Cat.", "cat"), ("dont", "don't"), ("A  Dog ", "dog"),
    ("coca-cola", "coca cola"), ("1,000", "1000"), ("3.5", "3.5"), ("yes!", "yes"), ("none", "0"),
])
def test_vqa_normalisation_equates(a, b):
    assert normalize_vqa_answer(a) == normalize_vqa_answer(b)


def test_vqa_normalisation_keeps_distinct_answers_apart():
    assert normalize_vqa_answer("3.5") != normalize_vqa_answer("35")
    assert normalize_vqa_answer("cats") != normalize_vqa_answer("cat")


def test_textvqa_leave_one_out_accuracy():
    # 3 of 10 answers match: the 3 matching folds see 2 others (2/3), the 7 others see 3 (1).
    answers = ["stop"] * 3 + ["go"] * 7
    assert textvqa.vqa_accuracy("Stop", answers) == pytest.approx((3 * 2 / 3 + 7) / 10)
    # 1 of 10 matches: 9 folds see 1 (1/3), the matching fold sees 0.
    assert textvqa.vqa_accuracy("stop", ["stop"] + ["go"] * 9) == pytest.approx(9 * (1 / 3) / 10)
    assert textvqa.vqa_accuracy("two", ["2"] * 10) == 1.0
    assert textvqa.vqa_accuracy("walk", ["go"] * 10) == 0.0
    agg = textvqa.aggregate([textvqa.score({"answers": ["2"] * 10}, "Two"),
                             textvqa.score({"answers": ["go"] * 10}, "stop")])
    assert agg["accuracy"] == pytest.approx(50.0)


# ---------------------------------------------------------------- GQA

def test_gqa_exact_match():
    assert gqa.score({"answer": "yes"}, "Yes.")["correct"] == 1.0
    assert gqa.score({"answer": "left"}, "Left")["correct"] == 1.0
    assert gqa.score({"answer": "red"}, "the red one")["correct"] == 0.0
    assert gqa.aggregate([{"correct": 1.0}, {"correct": 0.0}, {"correct": 1.0}, {"correct": 1.0}]) == {"accuracy": 75.0}


# ---------------------------------------------------------------- CHAIR / recall

def test_chair_plurals_synonyms_and_two_word_names():
    ref = {"objects": ["dog", "person", "bicycle"], "vocabulary": "coco"}
    s = coco_recall.score(ref, "Two dogs and a man ride bikes past a hot dog stand.")
    # mentions: dog, person (man), bicycle (bikes), hot dog -> hot dog is hallucinated, "dog" inside it is not a dog
    assert s == {"gt": 3, "covered": 3, "mentions": 4, "hallucinated": 1}
    only_hot_dog = coco_recall.score({"objects": ["hot dog"], "vocabulary": "coco"}, "A hot dog on a plate.")
    assert only_hot_dog["hallucinated"] == 0 and only_hot_dog["covered"] == 1
    assert coco_recall.score({"objects": ["dog"], "vocabulary": "coco"}, "A hot dog.")["covered"] == 0


def test_chair_aggregate_hand_computed():
    samples = [
        coco_recall.score({"objects": ["cat", "couch"], "vocabulary": "coco"}, "A cat sleeps on a sofa with a remote."),
        coco_recall.score({"objects": ["car", "truck"], "vocabulary": "coco"}, "Cars drive down the street."),
    ]
    # 1: cat, couch(sofa) covered, remote hallucinated; 2: car covered, truck missed.
    m = coco_recall.aggregate(samples)
    assert m["recall"] == pytest.approx(100 * 3 / 4)
    assert m["chair_i"] == pytest.approx(100 * 1 / 4)  # 1 hallucinated of 4 mentions
    assert m["chair_s"] == pytest.approx(50.0)


def test_chair_toilet_seat_is_not_a_chair():
    s = coco_recall.score({"objects": ["toilet"], "vocabulary": "coco"}, "A toilet with the seat up.")
    assert s["hallucinated"] == 0 and s["covered"] == 1


# ---------------------------------------------------------------- MMHal

def test_mmhal_rating_parse():
    assert parse_rating("Looks right.\nRating: 5") == 5
    assert parse_rating("rating: 2 ... final RATING: 2") == 2
    assert parse_rating("Rating: 3 or maybe Rating: 4") is None  # two different ratings
    assert parse_rating("I would give it a five") is None
    assert parse_rating("Rating: 7") is None


def test_mmhal_scoring_excludes_failures():
    ref = lambda t: {"question": "q", "question_type": t, "image_content": [], "gt_answer": "a"}  # noqa: E731
    samples = [mmhal.score(ref("counting"), "r", ["Rating: 6"]), mmhal.score(ref("counting"), "r", ["Rating: 1"]),
               mmhal.score(ref("relation"), "r", ["Rating: 3 and Rating: 4"]), mmhal.score(ref("relation"), "r", ["Rating: 2"])]
    assert samples[2]["failed"]
    m = mmhal.aggregate([s for s in samples if not s.get("failed")])
    assert m["score"] == pytest.approx(3.0)
    assert m["hallucination_rate"] == pytest.approx(100 * 2 / 3)
    assert m["type/counting"] == pytest.approx(3.5) and m["type/relation"] == pytest.approx(2.0)


# ---------------------------------------------------------------- LLaVA-W

def test_llava_w_parse_and_relative_score():
    assert parse_score_pair("8 6\nAssistant 1 is better") == (8.0, 6.0)
    assert parse_score_pair("8, 6") == (8.0, 6.0)
    assert parse_score_pair("Scores: 8 and 6\n8 6") is None  # garbage first line
    assert parse_score_pair("") is None
    ref = lambda c: {"question": "q", "category": c, "caption": "", "gpt_answer": "a"}  # noqa: E731
    scored = [llava_w.score(ref("conv"), "x", ["8 6"]), llava_w.score(ref("conv"), "x", ["10 10"]),
              llava_w.score(ref("detail"), "x", ["Assistant 1: 8\n9 9"]), llava_w.score(ref("detail"), "x", ["5 4"])]
    assert scored[2]["failed"]
    m = llava_w.aggregate([s for s in scored if not s.get("failed")])
    assert m["conv/relative_score"] == pytest.approx(100 * 16 / 18)
    assert m["detail/relative_score"] == pytest.approx(80.0)
    assert m["relative_score"] == pytest.approx(100 * (20 / 3) / (23 / 3))
    assert "complex/relative_score" not in m


# ---------------------------------------------------------------- MM-Vet

def test_mmvet_runs_with_a_failed_run():
    assert parse_unit_score("0.7 because") == 0.7
    assert parse_unit_score("1.3") is None and parse_unit_score("correct") is None
    ref = {"question": "q", "answer": "a <AND> b", "capability": ["rec", "ocr"]}
    item = mmvet.score(ref, "x", ["0.6", "garbage", "1.0"])  # the unparsable run is dropped
    assert item["score"] == pytest.approx(0.8)
    assert mmvet.score(ref, "x", ["nope", "?"])["failed"]
    m = mmvet.aggregate([item, mmvet.score({**ref, "capability": ["math"]}, "x", ["0.0"])])
    assert m["score"] == pytest.approx(40.0)
    assert m["cap/rec"] == pytest.approx(80.0) and m["cap/math"] == 0.0
    assert "cap/spat" not in m


def test_aggregates_of_nothing_are_nan_not_zero():
    assert math.isnan(mmhal.aggregate([])["score"])
