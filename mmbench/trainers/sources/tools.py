"""`mmbench data inspect` and `mmbench data convert`."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from mmbench.errors import MmbenchError
from mmbench.trainers.sources import FORMATS, load_source


def _tokenizer(base: str | None):
    """(unit, count function, processor): the base's tokenizer when given, else whitespace words."""
    if not base:
        return "words", lambda text: len(text.split()), None
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(base, local_files_only=Path(base).is_dir())
    except (OSError, ValueError, KeyError) as exc:
        raise MmbenchError(f"could not load the processor of {base}: {str(exc).splitlines()[0]}") from None
    tokenizer = getattr(processor, "tokenizer", processor)
    return "tokens", lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]), processor


def _render(processor, prompt: str, has_image: bool) -> str:
    """The prompt through the chat template, as `HFVisionLanguageModel.render_prompt` builds it."""
    content = ([{"type": "image"}] if has_image else []) + [{"type": "text", "text": prompt}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)


def _stats(values: list[int]) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (f"min {ordered[0]}, median {statistics.median(ordered):g}, mean {statistics.fmean(ordered):.1f}, "
            f"p95 {p95}, max {ordered[-1]}")


def _short(text: str | None, width: int = 300) -> str:
    if text is None:
        return "—"
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[:width] + f"… ({len(text)} chars)"


def inspect_source(source: str, *, base: str | None = None, n: int = 3, stats_rows: int = 1000,
                   prompt_only: bool = False, echo=print, **options) -> dict:
    """Print the detected format, row count, `n` rows as the model sees them and length statistics."""
    need = not prompt_only
    result = load_source(source, need_chosen=need, need_rejected=need, limit=n, scan_all=True, **options)
    unit, count, processor = _tokenizer(base)
    fmt = FORMATS[result.format]
    echo(f"source: {result.label}")
    echo(f"format: {fmt.name} — {fmt.summary} (schema: {fmt.card})")
    echo(f"rows: {result.rows}; usable examples: {result.usable}"
         + (f"; {result.skipped} bad rows skipped" if result.skipped else "")
         + (f"; {result.dropped_ties} rows without a pair (ties)" if result.dropped_ties else ""))
    for note in result.notes:
        echo(f"note: {note}")
    for example in result.examples:
        prompt = _render(processor, example.prompt, example.image is not None) if processor else example.prompt
        echo(f"--- {example.id}")
        echo(f"image:    {example.image}")
        echo(f"prompt:   {_short(prompt)}")
        if need:
            echo(f"chosen:   {_short(example.chosen)}")
            echo(f"rejected: {_short(example.rejected)}")
    sample = result.candidates[:stats_rows]
    stats = {}
    if need and sample:
        stats = {name: [count(getattr(c, name)) for c in sample if getattr(c, name)] for name in ("chosen", "rejected")}
        echo(f"length in {unit} over {len(sample)} examples" + (f" (tokenizer of {base})" if base else "") + ":")
        for name, values in stats.items():
            echo(f"  {name:<9}{_stats(values)}")
    return {"format": result.format, "rows": result.rows, "usable": result.usable, "stats": stats,
            "shown": [e.id for e in result.examples]}


def convert_source(source: str, out: Path, *, images: Path | None = None, limit: int | None = None,
                   subset: int | None = None, prompt_only: bool = False, **options):
    """Write mmbench's JSONL; embedded images are extracted to `images` (default: OUT's folder
    /images), named by content hash.  Image files already on disk are referenced, not copied."""
    out = Path(out)
    if out.suffix != ".jsonl":
        raise MmbenchError(f"{out}: the output must be a .jsonl file")
    folder = out.parent
    images = Path(images) if images else folder / "images"
    need = not prompt_only
    result = load_source(source, need_chosen=need, need_rejected=need, limit=limit, subset=subset,
                         image_cache=images, **options)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for example in result.examples:
            image = Path(example.image).resolve()
            try:
                shown = str(image.relative_to(folder.resolve()))
            except ValueError:
                shown = str(image)
            row = {"id": example.id, "image": shown, "prompt": example.prompt}
            if need:
                row.update(chosen=example.chosen, rejected=example.rejected)
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return out, len(result.examples), result
