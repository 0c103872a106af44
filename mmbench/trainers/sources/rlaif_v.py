"""RLAIF-V (`openbmb/RLAIF-V-Dataset`): parquet shards `RLAIF-V-Dataset_NNN.parquet`.

Schema checked against the dataset card,
https://huggingface.co/datasets/openbmb/RLAIF-V-Dataset/blob/main/README.md (dataset_info and
"Data fields"): `ds_name` str, `image` (image feature: a `{bytes, path}` struct in parquet),
`question` str, `chosen` str, `rejected` str, `origin_dataset` str, `origin_split` str,
`idx` str, `image_path` str.
"""

from __future__ import annotations

from mmbench.trainers.sources.base import (
    Candidate,
    ParseOptions,
    SourceFormat,
    answer,
    check_pair,
    prompt_text,
    row_id,
)


def parse(row: dict, index: int, options: ParseOptions) -> list[Candidate]:
    chosen = answer(row.get("chosen"), "chosen", options.need_chosen)
    rejected = answer(row.get("rejected"), "rejected", options.need_rejected)
    check_pair(chosen, rejected)
    return [Candidate(id=row_id(row, index, "idx"), index=index, prompt=prompt_text(row.get("question")),
                      chosen=chosen, rejected=rejected, image=row.get("image") or row.get("image_path"),
                      image_column="image")]


FORMAT = SourceFormat(
    name="rlaif-v",
    summary="question, chosen, rejected and an embedded image per row",
    hub_ids=("openbmb/RLAIF-V-Dataset",),
    card="https://huggingface.co/datasets/openbmb/RLAIF-V-Dataset",
    columns=("image", "question", "chosen", "rejected"),
    detect=lambda cols: {"question", "chosen", "rejected"} <= cols and bool({"image", "image_path"} & cols),
    parse=parse,
)
