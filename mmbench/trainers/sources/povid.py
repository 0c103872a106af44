"""POVID (`YiyangAiLab/POVID_preference_data_for_VLLMs`, one JSON list file, and the POVID
repository's DPO JSON).

Schema checked against the hub repo's file listing
(https://huggingface.co/datasets/YiyangAiLab/POVID_preference_data_for_VLLMs: a single
`POVID_preference_data_for_VLLMs.json`, later `..._version_1.json`; the card itself is only a
licence) and the reader in https://github.com/YiyangZhou/POVID `llava/train/train_dpo.py`, which
uses per row: `image` (a COCO file name joined to `--image_folder`), `conversations` (LLaVA turns
`{"from": "human"|"gpt", "value"}`, the human turn carrying `<image>`) for the chosen answer and
`rejected_conversations` (same shape) for the rejected one.  Rows with a plain `chosen`/`rejected`
string beside `conversations` are read too.  Images need `--image-root` (the COCO train2014 folder).
"""

from __future__ import annotations

from mmbench.trainers.sources.base import (
    BadRow,
    Candidate,
    ParseOptions,
    SourceFormat,
    answer,
    check_pair,
    prompt_text,
    row_id,
)


def _turns(value, what: str) -> tuple[str | None, str | None]:
    """(last human turn, last gpt turn) of a LLaVA conversation."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise BadRow(f"`{what}` is not a list of {{from, value}} turns")
    human = [t.get("value") for t in value if str(t.get("from", "")).lower() in ("human", "user")]
    gpt = [t.get("value") for t in value if str(t.get("from", "")).lower() in ("gpt", "assistant")]
    return (human[-1] if human else None), (gpt[-1] if gpt else None)


def _clean_prompt(text) -> str:
    text = prompt_text(text)
    cleaned = text.replace("<image>", "").strip()
    if not cleaned:
        raise BadRow("empty prompt")
    return cleaned


def parse(row: dict, index: int, options: ParseOptions) -> list[Candidate]:
    prompt, chosen = _turns(row.get("conversations"), "conversations")
    if isinstance(row.get("chosen"), str):
        chosen = row["chosen"]
    if row.get("rejected_conversations") is not None:
        _, rejected = _turns(row["rejected_conversations"], "rejected_conversations")
    else:
        rejected = row.get("rejected")
    chosen = answer(chosen, "chosen", options.need_chosen)
    rejected = answer(rejected, "rejected", options.need_rejected)
    check_pair(chosen, rejected)
    image = row.get("image")
    if not isinstance(image, str) or not image:
        raise BadRow("no `image` file name")
    return [Candidate(id=row_id(row, index, "id"), index=index, prompt=_clean_prompt(prompt), chosen=chosen,
                      rejected=rejected, image=image, image_column=None)]


FORMAT = SourceFormat(
    name="povid",
    summary="LLaVA `conversations` + `rejected_conversations`, COCO image names (needs --image-root)",
    hub_ids=("YiyangAiLab/POVID_preference_data_for_VLLMs",),
    card="https://huggingface.co/datasets/YiyangAiLab/POVID_preference_data_for_VLLMs",
    columns=("image", "conversations", "rejected_conversations"),
    detect=lambda cols: "conversations" in cols and bool({"rejected_conversations", "rejected"} & cols),
    parse=parse,
)
