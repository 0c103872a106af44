"""RLHF-V (`openbmb/RLHF-V-Dataset`): one parquet file `RLHF-V-Dataset.parquet`.

Schema checked against the dataset card,
https://huggingface.co/datasets/openbmb/RLHF-V-Dataset/blob/main/README.md (dataset_info and
"Data fields"): `ds_name` str, `image` (image feature, `{bytes, path}` in parquet), `text` str —
"Preference data. Each data item contains a dict with the keys question, chosen, and rejected"
(stored as a JSON string) — `origin_dataset` str, `origin_split` str, `idx` int64,
`image_path` str.
"""

from __future__ import annotations

import json

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


def parse(row: dict, index: int, options: ParseOptions) -> list[Candidate]:
    text = row.get("text")
    if isinstance(text, str):
        try:
            text = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadRow(f"`text` is not valid JSON ({exc.msg})") from None
    if not isinstance(text, dict):
        raise BadRow("`text` does not hold a {question, chosen, rejected} object")
    chosen = answer(text.get("chosen"), "chosen", options.need_chosen)
    rejected = answer(text.get("rejected"), "rejected", options.need_rejected)
    check_pair(chosen, rejected)
    return [Candidate(id=row_id(row, index, "idx"), index=index, prompt=prompt_text(text.get("question")),
                      chosen=chosen, rejected=rejected, image=row.get("image") or row.get("image_path"),
                      image_column="image")]


FORMAT = SourceFormat(
    name="rlhf-v",
    summary="an embedded image and `text`, a JSON string with question, chosen and rejected",
    hub_ids=("openbmb/RLHF-V-Dataset",),
    card="https://huggingface.co/datasets/openbmb/RLHF-V-Dataset",
    columns=("image", "text"),
    detect=lambda cols: "text" in cols and bool({"image", "image_path"} & cols) and "question" not in cols,
    parse=parse,
)
