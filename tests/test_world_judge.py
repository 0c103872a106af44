"""The scene-grounded judge and pairwise annotator on a small built world."""

from __future__ import annotations

import json

import pytest

from mmbench.benchmarks import get_benchmark, load_records
from mmbench.benchmarks.textnorm import parse_rating, parse_score_pair, parse_unit_score
from mmbench.harness.judging import JudgeRequest, PairwiseItem
from mmbench.world.build import SMALL, build_world
from mmbench.world.scene_judge import SceneJudge, ScenePairwiseAnnotator, assess, mmhal_rating, verdict
from mmbench.world.scenes import KINDS, read_scenes

JUDGED = ("mmhal", "mmhal_v", "llava_w", "mmvet")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("w") / "world", seed=5, size=SMALL, progress=False)


def _request(name, record, response):
    bench = get_benchmark(name)
    return JudgeRequest(
        benchmark=name,
        sample_id=record.id,
        messages=bench.judge.build_messages(record.reference, response, bench.judge.default_template),
        context={"benchmark": name, "id": record.id, "reference": record.reference, "response": response},
    )


def _truth(name, reference):
    if name == "mmvet":
        return " and ".join(p.split("<OR>")[0].strip() for p in reference["answer"].split("<AND>"))
    return reference["gt_answer"] if name.startswith("mmhal") else reference["gpt_answer"]


def _absent(scene):
    partners = [p for _, p in scene.broken_pairs()]
    return (partners or [k for k in KINDS if not scene.of(k)])[0]


def _value(name, text):
    if name.startswith("mmhal"):
        return parse_rating(text)
    if name == "llava_w":
        return parse_score_pair(text)[1]
    return parse_unit_score(text)


@pytest.mark.parametrize("name", JUDGED)
def test_ground_truth_is_rated_above_a_hallucinated_answer(world, name):
    judge = SceneJudge(world)
    scenes = read_scenes(world / "scenes" / "heldout.jsonl")
    records = load_records(get_benchmark(name), world)
    good = [_truth(name, r.reference) for r in records]
    bad = [
        f"{g} There is also a yellow {_absent(scenes[r.id.split('-')[0]])} in the top left."
        for g, r in zip(good, records)
    ]
    good_out = judge.judge([_request(name, r, g) for r, g in zip(records, good)], None)
    bad_out = judge.judge([_request(name, r, b) for r, b in zip(records, bad)], None)
    for record, g, b in zip(records, good_out, bad_out):
        assert _value(name, g) > _value(name, b), (record.id, g, b)
    assert (
        judge.judge([_request(name, r, g) for r, g in zip(records, good)], None) == good_out
    )  # deterministic


def test_verdicts_use_the_llm_judge_formats(world):
    scenes = read_scenes(world / "scenes" / "heldout.jsonl")
    record = load_records(get_benchmark("mmhal"), world)[0]
    scene = scenes[record.id.split("-")[0]]
    text = verdict("mmhal", record.reference, record.reference["gt_answer"], scene)
    assert text.splitlines()[-1] == "Rating: 6" and parse_rating(text) == 6
    llava = load_records(get_benchmark("llava_w"), world)[0]
    pair = verdict("llava_w", llava.reference, "I am not sure.", scenes[llava.id.split("-")[0]])
    assert parse_score_pair(pair) == (10.0, 1.0)
    assert (
        parse_unit_score(
            verdict(
                "mmvet",
                {"question": "What colour is it?", "answer": "zebra", "capability": ["rec"]},
                "no idea",
                scene,
            )
        )
        == 0.0
    )


def test_mmhal_rubric_levels(world):
    scenes = read_scenes(world / "scenes" / "heldout.jsonl")
    rows = [json.loads(x) for x in (world / "mmhal" / "data.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["question_type"] == "attribute")
    scene = scenes[row["image_id"]]
    first = row["gt_answer"].split(". ")[0] + "."
    missing = _absent(scene)
    assert mmhal_rating(assess(row["gt_answer"], row["gt_answer"], row["question"], scene)) == 6
    assert mmhal_rating(assess(first, row["gt_answer"], row["question"], scene)) == 5
    assert mmhal_rating(assess("I cannot tell.", row["gt_answer"], row["question"], scene)) == 3
    assert (
        mmhal_rating(assess(f"{first} A {missing} is next to it.", row["gt_answer"], row["question"], scene))
        == 2
    )
    assert mmhal_rating(assess(f"There is a {missing}.", row["gt_answer"], row["question"], scene)) == 0


def test_unknown_scene_or_missing_context_gives_no_verdict(world):
    judge = SceneJudge(world)
    request = JudgeRequest(
        benchmark="mmhal",
        sample_id="x",
        messages=[],
        context={"benchmark": "mmhal", "id": "h99999-0", "reference": {}, "response": "hi"},
    )
    assert judge.judge(
        [request, JudgeRequest(benchmark="mmhal", sample_id="h00000-0", messages=[])], None
    ) == [None, None]


def test_annotator_prefers_chosen_over_rejected_and_ties_are_none(world):
    annotator = ScenePairwiseAnnotator(world)
    rows = [json.loads(x) for x in (world / "prefs" / "train.jsonl").read_text().splitlines()]
    forward = annotator.prefer(
        [PairwiseItem(r["prompt"], r["chosen"], r["rejected"], context={"id": r["id"]}) for r in rows]
    )
    backward = annotator.prefer(
        [PairwiseItem(r["prompt"], r["rejected"], r["chosen"], context={"id": r["id"]}) for r in rows]
    )
    assert forward == [0] * len(rows) and backward == [1] * len(rows)
    # Without a reference (only the scene), fewer false claims still wins.
    no_ref = annotator.prefer(
        [
            PairwiseItem(r["prompt"], r["rejected"], r["chosen"], context={"scene": r["id"].split("-")[0]})
            for r in rows
        ]
    )
    assert no_ref.count(1) >= 0.9 * len(rows) and 0 not in no_ref
    row = rows[0]
    assert annotator.prefer(
        [
            PairwiseItem(row["prompt"], row["chosen"], row["chosen"], context={"id": row["id"]}),
            PairwiseItem(row["prompt"], "a", "b", context={}),
        ]
    ) == [None, None]


def test_preference_rows_are_hallucinations_of_the_chosen_answer(world):
    rows = [json.loads(x) for x in (world / "prefs" / "train.jsonl").read_text().splitlines()]
    prompts = [json.loads(x) for x in (world / "prefs" / "prompts.jsonl").read_text().splitlines()]
    scenes = read_scenes(world / "scenes" / "prefs.jsonl")
    assert [p["id"] for p in prompts] == [r["id"] for r in rows]
    for row in rows:
        scene = scenes[row["id"].split("-")[0]]
        question = row["prompt"].split("\n")[0]
        assert not assess(row["chosen"], row["chosen"], question, scene).false
        assert assess(row["rejected"], row["chosen"], question, scene).false, row
        assert (world / row["image"]).exists()
    assert any(r["corruption"] == "partner" for r in rows)


def test_text_judge_reads_only_the_annotation_and_the_standard_answer():
    """MMHal's text judge knows the annotated (visible) kinds and the standard answer; naming a
    small, faint object the annotator left out is a hallucination to it, not to MMHal-V's judge."""
    from mmbench.world.scenes import Obj, Scene

    star = Obj("star", "red", 0, False, 24, 0, 0, 1.0)
    faint_moon = Obj("moon", "blue", 3, True, 12, 0, 0, 0.1)
    scene = Scene(id="h00001", noise_seed=0, objects=(star, faint_moon))
    assert scene.annotated_kinds() == ["star"] and scene.kinds() == ["star", "moon"]
    reference = {"question": "What colour is the star?", "question_type": "attribute",
                 "image_content": scene.annotated_kinds(), "gt_answer": "The star is red."}
    answer = "The star is red. There is a blue moon in the bottom right."
    text, vision = (parse_rating(verdict(name, reference, answer, scene)) for name in ("mmhal", "mmhal_v"))
    assert vision == 6 and text < 3  # true for the image, unsupported by the annotation
    # both agree when the answer stays within what the annotation and the standard answer say
    plain = "The star is red."
    assert parse_rating(verdict("mmhal", reference, plain, scene)) == parse_rating(
        verdict("mmhal_v", reference, plain, scene))
    # a kind the standard answer names is known to the text judge even if the annotator missed it
    named = {**reference, "gt_answer": "The star is red. A faint blue moon is in the bottom right."}
    assert parse_rating(verdict("mmhal", named, answer, scene)) >= 3


def test_text_judge_cannot_check_attributes_the_standard_answer_leaves_out():
    from mmbench.world.scenes import Obj, Scene

    star = Obj("star", "red", 0, False, 24, 0, 0, 1.0)
    heart = Obj("heart", "red", 1, False, 24, 0, 0, 1.0)
    scene = Scene(id="h00002", noise_seed=0, objects=(star, heart))
    reference = {"question": "What colour is the star?", "question_type": "attribute",
                 "image_content": scene.annotated_kinds(), "gt_answer": "The star is red."}
    wrong_heart = "The star is red. The heart is green."  # the heart is red: only the image shows it
    assert parse_rating(verdict("mmhal_v", reference, wrong_heart, scene)) < 3
    assert parse_rating(verdict("mmhal", reference, wrong_heart, scene)) >= 3
    wrong_star = "The star is blue."  # the standard answer says red: both judges catch it
    assert parse_rating(verdict("mmhal", reference, wrong_star, scene)) < 3
    assert parse_rating(verdict("mmhal_v", reference, wrong_star, scene)) < 3
