"""mmbench's own JSONL: `{"id", "image", "prompt", "chosen", "rejected"}` per line (prompt-only
files omit chosen/rejected); image paths are absolute or relative to the file's folder or the
folder above it.  Defined in mmbench/trainers/data.py and docs (no external card)."""

from __future__ import annotations

from mmbench.trainers.sources.base import BadRow, Candidate, ParseOptions, SourceFormat, check_pair


def parse(row: dict, index: int, options: ParseOptions) -> list[Candidate]:
    required = ["id", "prompt", "image", *(["chosen"] if options.need_chosen else []),
                *(["rejected"] if options.need_rejected else [])]
    missing = [k for k in required if not isinstance(row.get(k), str) or not row.get(k).strip()]
    if missing:
        raise BadRow(f"preference row lacks {', '.join(missing)}")
    chosen = row.get("chosen") if isinstance(row.get("chosen"), str) and row.get("chosen").strip() else None
    rejected = row.get("rejected") if isinstance(row.get("rejected"), str) and row.get("rejected").strip() else None
    check_pair(chosen, rejected)
    return [Candidate(id=str(row["id"]), index=index, prompt=row["prompt"], chosen=chosen, rejected=rejected,
                      image=row["image"], image_column=None)]


FORMAT = SourceFormat(
    name="mmbench",
    summary="mmbench's JSONL: id, image (path), prompt, chosen, rejected",
    hub_ids=(),
    card="mmbench/trainers/data.py",
    columns=("id", "image", "prompt", "chosen", "rejected"),
    detect=lambda cols: {"id", "prompt", "image"} <= cols and not ({"completions", "images"} & cols),
    parse=parse,
)
