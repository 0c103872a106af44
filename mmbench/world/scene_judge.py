"""A judge that reads the scene graph instead of calling a model: the embedded world's stand-in
for the GPT judges, writing verdicts in the same text formats so the same parsers score them.

How an answer is assessed (deterministic, no network):
- hallucination = a claim the scene contradicts (an absent object, a wrong colour, count,
  size, position, relation or word; for yes/no and computed numbers, a contradiction of the
  reference answer), read with the world vocabulary as CHAIR reads object words;
- informativeness = coverage of the reference answer's claims: its first sentence is what was
  asked (primary), the rest grounds it (supporting).
MMHal: the official rubric on those two axes (6 = all primary and supporting claims, no
hallucination; 5 = all primary; 4 = some; 3 = none; 2/1/0 the same three levels with a
hallucination).  LLaVA-W: 1-10 per answer from coverage minus 3 per false claim, reference
first.  MM-Vet: the share of <AND> parts matched (any <OR> alternative), halved on a
hallucination.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mmbench.harness.judging import JudgeRequest, PairwiseItem
from mmbench.world.claims import Fact, QuestionContext, extract_facts, norm_word, question_context
from mmbench.world.scenes import Scene, read_scenes, with_objects
from mmbench.world.truth import entailed, false_claims, is_true

JUDGE_MODEL = "world-scene-judge-v2"  # v2: MMHal judged on the annotation only
ANNOTATOR_MODEL = "world-scene-annotator-v1"
_SCENE_ID = re.compile(r"(?<![A-Za-z0-9])([htp]\d{5,})")
_SUFFIX = re.compile(r"\n?Answer the question using a single word or phrase\.?\s*$")


def scene_id_of(any_id: str) -> str | None:
    match = _SCENE_ID.search(str(any_id))
    return match.group(1) if match else None


@dataclass(frozen=True)
class Assessment:
    false: tuple[Fact, ...]  # contradicted claims
    primary: float  # share of the reference's first-sentence claims covered
    support: float  # share of its other claims covered (1.0 when it has none)
    true_claims: int  # claims the scene confirms (helpfulness without a reference)
    has_support: bool = False  # whether the reference has supporting claims at all

    @property
    def partly(self) -> bool:
        """Covers at least something the reference says."""
        return self.primary > 0 or (self.has_support and self.support > 0)

    @property
    def hallucinated(self) -> bool:
        return bool(self.false)


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if s.strip()]


def _coverable(facts: set[Fact]) -> set[Fact]:
    # Combined descriptions only sharpen the hallucination check; coverage counts single claims.
    return {f for f in facts if f[0] != "thing"}


def reference_claims(reference: str, ctx: QuestionContext) -> tuple[set[Fact], set[Fact]]:
    parts = _sentences(reference)
    primary = _coverable(extract_facts(parts[0], ctx)) if parts else set()
    support = _coverable(extract_facts(" ".join(parts[1:]), ctx)) - primary if len(parts) > 1 else set()
    return (primary, support) if primary else (support, set())


def _coverage(claims: set[Fact], answer: set[Fact]) -> float:
    return sum(entailed(f, answer) for f in claims) / len(claims) if claims else 1.0


def assess(response: str, reference: str, question: str, scene: Scene) -> Assessment:
    ctx = question_context(_SUFFIX.sub("", question), scene)
    primary, support = reference_claims(reference, ctx)
    answer = extract_facts(response, ctx)
    wrong = false_claims(answer, scene, primary | support)
    true_claims = sum(is_true(f, scene) is True for f in answer)
    if not primary:  # nothing to compare with: informative if it says anything true
        cover = 1.0 if true_claims else 0.0
        return Assessment(tuple(wrong), cover, cover, true_claims)
    return Assessment(
        tuple(wrong),
        _coverage(primary, answer),
        _coverage(support, answer),
        true_claims,
        has_support=bool(support),
    )


# ---------------------------------------------------------------- verdict texts


def _where(row, col) -> str:
    return " ".join(
        x for x in ({0: "top", 1: "bottom"}.get(row, ""), {0: "left", 1: "right"}.get(col, "")) if x
    )


def _say(fact: Fact) -> str:
    """A claim in words, for the explanation line."""
    kind = fact[0]
    if kind == "obj":
        return f"a {fact[1]}"
    if kind == "thing":
        desc = " ".join(x for x in (fact[3], fact[2], fact[1]) if x)
        return f"a {desc}" + (f" in the {_where(fact[4], fact[5])}" if _where(fact[4], fact[5]) else "")
    if kind in ("colour", "size"):
        return f"a {fact[2]} {fact[1]}"
    if kind == "pos":
        return f"a {fact[1]} in the {_where(fact[2], fact[3]) or 'image'}"
    if kind == "wordpos":
        return f"text in the {_where(fact[1], fact[2])}"
    if kind == "rel":
        return f"the {fact[1]} {fact[2]} the {fact[3]}"
    if kind == "count":
        return f"{fact[3]} {' '.join(x for x in (fact[2], fact[1] or 'shape') if x)}(s)"
    if kind == "absent":
        return f"no {fact[1]}"
    if kind == "word":
        return f'the text "{fact[1]}"'
    return f"the answer {fact[1]}"


def _explain(a: Assessment) -> str:
    if a.false:
        wrong = "; ".join(_say(f) for f in a.false[:3])
        head = f"The answer claims {wrong}, which the image does not support."
    else:
        head = "Every claim in the answer agrees with the image."
    if a.primary == 1 and a.support == 1:
        tail = "It covers the question and the details that support the answer."
    elif a.primary == 1:
        tail = "It answers the question but leaves out supporting details."
    elif a.partly:
        tail = "It answers only part of the question."
    else:
        tail = "It does not answer the question."
    return f"{head} {tail}"


def mmhal_rating(a: Assessment) -> int:
    informative = 2 if a.primary == 1 else 1 if a.partly else 0
    if a.hallucinated:
        return informative  # 2 very, 1 somewhat, 0 not informative
    return 6 if informative == 2 and a.support == 1 else 3 + informative


def mmhal_verdict(a: Assessment) -> str:
    return f"{_explain(a)}\nRating: {mmhal_rating(a)}"


def llava_points(a: Assessment) -> int:
    quality = (2 * a.primary + a.support) / 3 if a.has_support else a.primary
    return max(1, min(10, round(1 + 9 * quality) - 3 * len(a.false)))


def llava_verdict(reference: Assessment, answer: Assessment) -> str:
    return (
        f"{llava_points(reference)} {llava_points(answer)}\n"
        f"Assistant 1: {_explain(reference)} Assistant 2: {_explain(answer)}"
    )


def _alternative_met(alternative: str, answer: set[Fact], response: str, ctx: QuestionContext) -> bool:
    wanted = extract_facts(alternative, ctx)
    if wanted and all(entailed(f, answer) for f in wanted):
        return True
    words = norm_tokens(alternative)
    said = norm_tokens(response)
    return bool(words) and any(said[i : i + len(words)] == words for i in range(len(said) - len(words) + 1))


def norm_tokens(text: str) -> list[str]:
    return [norm_word(t) for t in text.split() if norm_word(t)]


def mmvet_score(reference: dict, response: str, scene: Scene) -> float:
    ctx = question_context(reference["question"], scene)
    parts = [
        [alt.strip() for alt in part.split("<OR>") if alt.strip()]
        for part in reference["answer"].split("<AND>")
    ]
    answer = extract_facts(response, ctx)
    expected = set().union(*(extract_facts(alt, ctx) for part in parts for alt in part))
    met = sum(any(_alternative_met(alt, answer, response, ctx) for alt in part) for part in parts)
    score = met / len(parts) if parts else 0.0
    if false_claims(answer, scene, expected):
        score /= 2
    return round(score, 1)


def annotation_view(scene: Scene, image_content: Sequence[str], standard_answer: str) -> Scene:
    """What MMHal's text-only judge knows of an image: the annotated kinds' visible objects, and
    the kinds its standard answer names.  A true mention of a small, faint object the annotator
    left out reads as a hallucination to it — as GPT-4 reading MMHal's incomplete annotations
    does — while the vision judge (MMHal-V) sees the whole scene."""
    listed, named = set(image_content), _named_kinds(standard_answer)
    return with_objects(scene, [o for o in scene.objects
                                if (o.kind in listed and not o.hard) or o.kind in named])


def _named_kinds(text: str) -> set[str]:
    words = set(re.findall(r"[a-z]+", text.lower()))
    return words | {w[:-1] for w in words if w.endswith("s")}


def text_judge_assess(response: str, reference: dict, scene: Scene) -> Assessment:
    """MMHal's text judge: what exists is read from the annotation (`annotation_view`); a
    colour, size, position, count, relation or printed word can only be checked where the
    standard answer describes it — elsewhere the judge cannot tell, and lets it pass."""
    gt = reference["gt_answer"]
    view = annotation_view(scene, reference.get("image_content") or [], gt)
    found = assess(response, gt, reference["question"], view)
    named, quoted = _named_kinds(gt), '"' in gt

    def checkable(fact: Fact) -> bool:
        if fact[0] in ("obj", "absent", "answer", "number"):
            return True
        if fact[0] in ("word", "wordpos"):
            return quoted
        kinds = [fact[1], fact[3]] if fact[0] == "rel" else [fact[1]]
        return all(k is None or k in named for k in kinds)

    return replace(found, false=tuple(f for f in found.false if checkable(f)))


def verdict(benchmark: str, reference: dict, response: str, scene: Scene) -> str | None:
    """The raw judge text for one sample of a judged world benchmark."""
    if benchmark == "mmhal":  # the text judge: annotation + standard answer only
        return mmhal_verdict(text_judge_assess(response, reference, scene))
    if benchmark == "mmhal_v":  # the vision judge sees the image
        return mmhal_verdict(assess(response, reference["gt_answer"], reference["question"], scene))
    if benchmark == "llava_w":
        ref = assess(reference["gpt_answer"], reference["gpt_answer"], reference["question"], scene)
        return llava_verdict(ref, assess(response, reference["gpt_answer"], reference["question"], scene))
    if benchmark == "mmvet":
        return f"{mmvet_score(reference, response, scene):.1f}"
    return None


# ---------------------------------------------------------------- judge and annotator


class _Scenes:
    """Scene graphs of a built world, loaded file by file on first use."""

    def __init__(self, world_dir: str | Path):
        self.world_dir = Path(world_dir)
        self._loaded: dict[str, dict[str, Scene]] = {}

    def get(self, any_id: str) -> Scene | None:
        sid = scene_id_of(any_id)
        if sid is None:
            return None
        name = {"h": "heldout", "p": "prefs", "t": "train"}[sid[0]]
        if name not in self._loaded:
            path = self.world_dir / "scenes" / f"{name}.jsonl"
            self._loaded[name] = read_scenes(path) if path.exists() else {}
        return self._loaded[name].get(sid)


class SceneJudge:
    """`Judge` for world data: reads `JudgeRequest.context` ({"benchmark", "id", "reference",
    "response"}) and the scene the id names; None when it has no such scene."""

    model = JUDGE_MODEL

    def __init__(self, world_dir: str | Path):
        self.scenes = _Scenes(world_dir)

    def judge(
        self, requests: Sequence[JudgeRequest], parse: Callable[[str], Any] | None = None
    ) -> list[str | None]:
        out: list[str | None] = []
        for request in requests:
            ctx = request.context or {}
            scene = self.scenes.get(str(ctx.get("id", request.sample_id)))
            if scene is None or "reference" not in ctx or "response" not in ctx:
                out.append(None)
                continue
            out.append(
                verdict(ctx.get("benchmark", request.benchmark), ctx["reference"], ctx["response"], scene)
            )
        return out


class ScenePairwiseAnnotator:
    """`PairwiseAnnotator` for world prompts: fewer contradicted claims wins, then more of the
    reference covered (or, without one, more true claims); equal on both is a tie (None).

    `PairwiseItem.context` names the scene with "id" (a prompt id such as "p00012-1") or
    "scene"; "reference" is optional — for ids of `prefs/prompts.jsonl` it is looked up."""

    model = ANNOTATOR_MODEL

    def __init__(self, world_dir: str | Path):
        self.world_dir = Path(world_dir)
        self.scenes = _Scenes(world_dir)
        self._references: dict[str, str] | None = None

    def _reference(self, prompt_id: str | None) -> str | None:
        if self._references is None:
            from mmbench.world.training_sets import read_jsonl

            path = self.world_dir / "prefs" / "prompts.jsonl"
            self._references = {r["id"]: r["reference"] for r in read_jsonl(path)} if path.exists() else {}
        return self._references.get(prompt_id) if prompt_id else None

    def rank_key(self, response: str, question: str, reference: str | None, scene: Scene) -> tuple:
        if reference:
            a = assess(response, reference, question, scene)
            return (len(a.false), -round(a.primary + a.support, 6))
        a = assess(response, "", question, scene)
        return (len(a.false), -a.true_claims)

    def prefer(self, items: Sequence[PairwiseItem]) -> list[int | None]:
        out: list[int | None] = []
        for item in items:
            ctx = item.context or {}
            key = str(ctx.get("scene") or ctx.get("id") or "")
            scene = self.scenes.get(key)
            if scene is None:
                out.append(None)
                continue
            question = str(ctx.get("question") or item.prompt)
            reference = ctx.get("reference") or self._reference(ctx.get("id"))
            a = self.rank_key(item.response_a, question, reference, scene)
            b = self.rank_key(item.response_b, question, reference, scene)
            out.append(0 if a < b else 1 if b < a else None)
        return out


SceneAnnotator = ScenePairwiseAnnotator  # short name

__all__ = [
    "SceneAnnotator",
    "SceneJudge",
    "ScenePairwiseAnnotator",
    "assess",
    "mmhal_rating",
    "scene_id_of",
    "verdict",
]
