"""TRL's vision preference format (`HuggingFaceH4/rlaif-v_formatted`, `trl-lib/rlaif-v`).

Schema checked against the dataset card,
https://huggingface.co/datasets/HuggingFaceH4/rlaif-v_formatted/blob/main/README.md
(dataset_info and its conversion snippet): `images` a sequence of images (`{bytes, path}`
structs in parquet), `prompt` a list of messages `{role, content: [{type, text}]}` (the user turn
holds `{"type": "image"}` and the question), `chosen` and `rejected` lists with one assistant
message each; splits `train` and `test` under `data/`.  Plain-string prompt/chosen/rejected are
accepted too.  Exactly one image per row is supported; other rows are refused (counted).
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


def message_text(value, role: str | None) -> str | None:
    """The text of the last message (of `role`, when given) of a chat-message list."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise BadRow("a message list was expected")
    messages = [m for m in value if isinstance(m, dict) and (role is None or m.get("role") == role)]
    if not messages:
        return None
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    parts = [p.get("text") for p in content or [] if isinstance(p, dict) and p.get("type") == "text"]
    return "".join(p for p in parts if p) or None


def parse(row: dict, index: int, options: ParseOptions) -> list[Candidate]:
    images = row.get("images")
    count = len(images) if isinstance(images, list) else 0
    if count != 1:
        raise BadRow(f"{count} images (only rows with exactly one image are supported)")
    chosen = answer(message_text(row.get("chosen"), "assistant"), "chosen", options.need_chosen)
    rejected = answer(message_text(row.get("rejected"), "assistant"), "rejected", options.need_rejected)
    check_pair(chosen, rejected)
    prompt = prompt_text(message_text(row.get("prompt"), "user"))
    return [Candidate(row_id(row, index, "id"), index, prompt, chosen, rejected, images[0], "images", 0)]


FORMAT = SourceFormat(
    name="trl",
    summary="TRL vision DPO: `images` list and chat-message prompt/chosen/rejected",
    hub_ids=("HuggingFaceH4/rlaif-v_formatted", "trl-lib/rlaif-v"),
    card="https://huggingface.co/datasets/HuggingFaceH4/rlaif-v_formatted",
    columns=("images", "prompt", "chosen", "rejected"),
    detect=lambda cols: {"images", "prompt"} <= cols,
    parse=parse,
)
