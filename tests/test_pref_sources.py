"""Preference sources: every published layout (fixtures written here in the exact schemas of the
dataset cards), every access form, `mmbench data inspect|convert`, bad rows, subsets, laziness and a
short BDHS training through the CLI for each source."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmbench.errors import MmbenchError
from mmbench.trainers.data import load_preference_source, load_preferences
from mmbench.trainers.sources import load_source


@pytest.fixture(autouse=True)
def _quiet_datasets():
    import datasets

    datasets.disable_progress_bars()


COLOURS = [(220, 30, 30), (30, 30, 220), (30, 200, 30), (230, 220, 40)]
NAMES = ["red", "blue", "green", "yellow"]


def png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), COLOURS[i % 4]).save(buffer, format="PNG")
    return buffer.getvalue()


def answers(i: int) -> tuple[str, str]:
    return f"the square is {NAMES[i % 4]} .", f"the square is {NAMES[(i + 1) % 4]} ."


# ---- fixture writers: one per published schema -----------------------------------------------
def _features(kind: str):
    import datasets as ds

    string = ds.Value("string")
    if kind == "rlaif-v":
        return ds.Features({"ds_name": string, "image": ds.Image(), "question": string, "chosen": string,
                            "rejected": string, "origin_dataset": string, "origin_split": string, "idx": string,
                            "image_path": string})
    if kind == "rlhf-v":
        return ds.Features({"ds_name": string, "image": ds.Image(), "text": string, "origin_dataset": string,
                            "origin_split": string, "idx": ds.Value("int64"), "image_path": string})
    if kind == "trl":
        message = [{"content": [{"text": string, "type": string}], "role": string}]
        return ds.Features({"chosen": message, "rejected": message, "images": ds.Sequence(ds.Image()),
                            "prompt": message})
    if kind == "vlfeedback":
        rating = {"Rating": string, "Rationale": string}
        return ds.Features({"id": string, "prompt": string, "models": ds.Sequence(string),
                            "completions": ds.Sequence({"annotations": {"Helpfulness": rating,
                                                                        "Ethical Considerations": rating,
                                                                        "Visual Faithfulness": rating},
                                                        "model": string, "response": string}),
                            "img_path": string})
    raise KeyError(kind)


def rlaif_rows(n: int, start: int = 0) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        chosen, rejected = answers(i)
        rows.append({"ds_name": "RLAIF-V", "image": {"bytes": png(i), "path": f"{i}.png"},
                     "question": "what colour is the square ?", "chosen": chosen, "rejected": rejected,
                     "origin_dataset": "COCO", "origin_split": json.dumps({"type": "qa"}), "idx": f"rlaif-{i}",
                     "image_path": f"coco/{i}.png"})
    return rows


def rlhf_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        chosen, rejected = answers(i)
        text = json.dumps({"question": "what colour is the square ?", "chosen": chosen, "rejected": rejected})
        rows.append({"ds_name": "RLHF-V", "image": {"bytes": png(i), "path": f"{i}.png"}, "text": text,
                     "origin_dataset": "VQA", "origin_split": "{}", "idx": i, "image_path": f"img/{i}.png"})
    return rows


def _message(role: str, text: str, image: bool = False) -> list[dict]:
    content = ([{"text": None, "type": "image"}] if image else []) + [{"text": text, "type": "text"}]
    return [{"content": content, "role": role}]


def trl_rows(n: int, extra_images: int | None = None) -> list[dict]:
    rows = []
    for i in range(n):
        chosen, rejected = answers(i)
        images = [{"bytes": png(i), "path": None}]
        if extra_images is not None and i == extra_images:
            images = images * 2
        rows.append({"chosen": _message("assistant", chosen), "rejected": _message("assistant", rejected),
                     "images": images, "prompt": _message("user", "what colour is the square ?", image=True)})
    return rows


def vlf_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        chosen, rejected = answers(i)
        responses = [chosen, rejected, f"a {NAMES[(i + 2) % 4]} square .", "i can not tell ."]
        ratings = [("5", "5", "5"), ("2", "3", "4"), ("3", "2", "3"), ("N/A", "N/A", "N/A")]
        if i == 1:  # every rated completion ties: no pair, dropped
            ratings = [("4", "4", "4")] * 3 + [("N/A", "N/A", "N/A")]
        completions = [{"annotations": {"Helpfulness": {"Rating": h, "Rationale": "r"},
                                        "Ethical Considerations": {"Rating": e, "Rationale": "r"},
                                        "Visual Faithfulness": {"Rating": v, "Rationale": "r"}},
                        "model": f"model-{k}", "response": responses[k]} for k, (h, v, e) in enumerate(ratings)]
        rows.append({"id": f"vlf-{i}", "prompt": "what colour is the square ?",
                     "models": [c["model"] for c in completions], "completions": completions,
                     "img_path": f"svit-{i}.jpg"})
    return rows


def write_parquet(kind: str, rows: list[dict], path: Path) -> Path:
    import datasets

    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=_features(kind)).to_parquet(str(path))
    return path


def save_to_disk(kind: str, rows: list[dict], folder: Path) -> Path:
    import datasets

    datasets.Dataset.from_list(rows, features=_features(kind) if kind != "povid" else None).save_to_disk(str(folder))
    return folder


def make_rlaif(root: Path, n: int = 6) -> Path:
    """A snapshot of openbmb/RLAIF-V-Dataset: shards RLAIF-V-Dataset_00N.parquet."""
    folder = root / "RLAIF-V-Dataset"
    write_parquet("rlaif-v", rlaif_rows(n // 2), folder / "RLAIF-V-Dataset_000.parquet")
    write_parquet("rlaif-v", rlaif_rows(n - n // 2, start=n // 2), folder / "RLAIF-V-Dataset_001.parquet")
    (folder / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n")
    return folder


def make_rlhf(root: Path, n: int = 6) -> Path:
    folder = root / "RLHF-V-Dataset"
    write_parquet("rlhf-v", rlhf_rows(n), folder / "RLHF-V-Dataset.parquet")
    return folder


def make_trl(root: Path, n: int = 6, extra_images: int | None = None) -> Path:
    folder = root / "rlaif-v_formatted"
    write_parquet("trl", trl_rows(n, extra_images), folder / "data" / "train-00000-of-00001.parquet")
    write_parquet("trl", trl_rows(2), folder / "data" / "test-00000-of-00001.parquet")
    return folder


def make_vlf(root: Path, n: int = 6) -> Path:
    """A snapshot of MMInstruction/VLFeedback with merged_images.zip unzipped."""
    folder = root / "VLFeedback"
    (folder / "merged_images").mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (32, 32), COLOURS[i % 4]).save(folder / "merged_images" / f"svit-{i}.jpg")
    (folder / "vlfeedback_80k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in vlf_rows(n)))
    (folder / "instruction_source.jsonl").write_text(json.dumps({"id": "vlf-0", "source": "svit"}) + "\n")
    return folder


def povid_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        chosen, rejected = answers(i)
        rows.append({"id": f"povid-{i}", "image": f"COCO_train2014_{i:012d}.jpg",
                     "conversations": [{"from": "human", "value": "<image>\nwhat colour is the square ?"},
                                       {"from": "gpt", "value": chosen}],
                     "rejected_conversations": [{"from": "human", "value": "<image>\nwhat colour is the square ?"},
                                                {"from": "gpt", "value": rejected}]})
    return rows


def make_povid(root: Path, n: int = 6) -> tuple[Path, Path]:
    """(snapshot folder with POVID_preference_data_for_VLLMs.json, COCO image folder)."""
    folder, coco = root / "POVID", root / "coco" / "train2014"
    folder.mkdir(parents=True)
    coco.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (32, 32), COLOURS[i % 4]).save(coco / f"COCO_train2014_{i:012d}.jpg")
    (folder / "POVID_preference_data_for_VLLMs.json").write_text(json.dumps(povid_rows(n)))
    return folder, coco


def make_mmbench(root: Path, n: int = 6) -> Path:
    (root / "mm" / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        Image.new("RGB", (32, 32), COLOURS[i % 4]).save(root / "mm" / "images" / f"{i}.png")
        chosen, rejected = answers(i)
        rows.append({"id": f"ex{i}", "image": f"images/{i}.png", "prompt": "what colour is the square ?",
                     "chosen": chosen, "rejected": rejected})
    path = root / "mm" / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def essence(examples) -> list[tuple]:
    """What must not depend on the access form: id, texts and the image's content."""
    return [(e.id, e.prompt, e.chosen, e.rejected, Image.open(e.image).convert("RGB").getpixel((0, 0)))
            for e in examples]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from mmbench.cli import main

    capsys.readouterr()  # drop what fixture writing printed
    old = sys.argv
    sys.argv = ["mmbench", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- each source through each access form ----------------------------------------------------
@pytest.mark.parametrize("kind,hub_id", [("rlaif-v", "openbmb/RLAIF-V-Dataset"), ("rlhf-v", "openbmb/RLHF-V-Dataset"),
                                         ("trl", "HuggingFaceH4/rlaif-v_formatted")])
def test_parquet_sources_read_alike_from_files_snapshot_save_to_disk_and_hub(kind, hub_id, tmp_path, monkeypatch):
    import datasets

    make = {"rlaif-v": make_rlaif, "rlhf-v": make_rlhf, "trl": make_trl}[kind]
    snapshot = make(tmp_path)
    cache = tmp_path / "cache"
    from_snapshot = load_source(snapshot, image_cache=cache)
    assert from_snapshot.format == kind and len(from_snapshot.examples) == 6
    shards = sorted(p for p in snapshot.rglob("*.parquet") if "test" not in p.name)
    from_file = load_source(shards[0], image_cache=cache)
    assert essence(from_file.examples) == essence(from_snapshot.examples)[:len(from_file.examples)]
    rows = {"rlaif-v": rlaif_rows(6), "rlhf-v": rlhf_rows(6), "trl": trl_rows(6)}[kind]
    disk = save_to_disk(kind, rows, tmp_path / "disk")
    from_disk = load_source(disk, image_cache=cache)
    assert essence(from_disk.examples) == essence(from_snapshot.examples)
    calls = []

    def fake_load_dataset(name, *args, **kwargs):
        calls.append((name, args, kwargs))
        return datasets.load_from_disk(str(disk))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    from_hub = load_source(hub_id, image_cache=cache)
    assert calls == [(hub_id, (), {"split": "train"})]
    assert essence(from_hub.examples) == essence(from_snapshot.examples)
    # Embedded images land once in the cache, named by content hash.
    assert len(list(cache.iterdir())) == 4 and all(p.suffix == ".png" for p in cache.iterdir())


def test_rlaif_v_prompt_is_the_question_and_ids_come_from_idx(tmp_path):
    examples = load_source(make_rlaif(tmp_path), image_cache=tmp_path / "c").examples
    assert [e.id for e in examples] == [f"rlaif-{i}" for i in range(6)]
    assert examples[0].prompt == "what colour is the square ?" and examples[0].chosen == "the square is red ."


def test_povid_needs_image_root_and_reads_conversations(tmp_path):
    folder, coco = make_povid(tmp_path)
    with pytest.raises(MmbenchError, match=r"POVID_preference_data_for_VLLMs.json row 0: image not found"):
        load_source(folder)
    result = load_source(folder, image_root=coco)
    first = result.examples[0]
    assert result.format == "povid" and first.id == "povid-0" and first.prompt == "what colour is the square ?"
    assert (first.chosen, first.rejected) == answers(0) and first.image == coco / "COCO_train2014_000000000000.jpg"
    single = load_source(folder / "POVID_preference_data_for_VLLMs.json", image_root=coco)
    assert essence(single.examples) == essence(result.examples)
    disk = save_to_disk("povid", povid_rows(6), tmp_path / "disk")
    assert essence(load_source(disk, image_root=coco).examples) == essence(result.examples)


def test_vlfeedback_pairs_best_and_all(tmp_path):
    folder = make_vlf(tmp_path)
    best = load_source(folder)
    assert best.format == "vlfeedback" and best.dropped_ties == 1  # row 1: all rated completions tie
    assert any("instruction_source.jsonl" in note for note in best.notes)
    assert [e.id for e in best.examples] == [f"vlf-{i}" for i in (0, 2, 3, 4, 5)]
    for e in best.examples:
        assert e.chosen == answers(int(e.id.split("-")[1]))[0]  # mean 5 beats every other
        assert e.rejected != e.chosen and e.rejected != "i can not tell ."  # unrated: never ranked
    again = load_source(folder)
    assert [e.rejected for e in again.examples] == [e.rejected for e in best.examples]  # seeded
    every = load_source(folder, pairs="all")
    # 3 rated completions with distinct means give 3 pairs per row; the tied row gives none.
    assert len(every.examples) == 5 * 3 and "vlf-0#0>1" in {e.id for e in every.examples}
    # `datasets` stores a sequence of dicts as a struct of lists: the loader reads both shapes.
    columns = [dict(r, completions={k: [c[k] for c in r["completions"]] for k in r["completions"][0]})
               for r in vlf_rows(6)]
    disk = save_to_disk("vlfeedback", columns, tmp_path / "disk")
    assert essence(load_source(disk, image_root=folder / "merged_images").examples) == essence(best.examples)


def test_trl_rows_with_several_images_are_refused_with_a_count(tmp_path):
    folder = make_trl(tmp_path, extra_images=2)
    with pytest.raises(MmbenchError, match=r"row 2: 2 images .*only rows with exactly one image"):
        load_source(folder)
    result = load_source(folder, skip_bad_rows=True, image_cache=tmp_path / "c")
    assert len(result.examples) == 5 and result.skipped == 1


def test_mmbench_jsonl_matches_the_strict_reader(tmp_path):
    path = make_mmbench(tmp_path)
    assert load_preference_source(str(path), quiet=True) == load_preferences(path)


# ---- detection, overrides and errors ---------------------------------------------------------
def test_unknown_layout_names_columns_and_formats(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(MmbenchError) as info:
        load_source(path)
    message = str(info.value)
    assert "\n" not in message and "answer, question" in message and "rlaif-v" in message and "vlfeedback" in message


def test_data_format_override_and_did_you_mean(tmp_path):
    folder = make_rlaif(tmp_path)
    assert load_source(folder, data_format="rlaif-v", image_cache=tmp_path / "c").format == "rlaif-v"
    with pytest.raises(MmbenchError, match="did you mean 'rlaif-v'"):
        load_source(folder, data_format="rlaifv")
    with pytest.raises(MmbenchError, match="--data-format trl expects columns"):
        load_source(folder, data_format="trl")


def test_bad_rows_are_named_or_skipped_with_a_count(tmp_path):
    rows = rlaif_rows(5)
    rows[1]["rejected"] = rows[1]["chosen"]
    rows[3]["chosen"] = ""
    path = write_parquet("rlaif-v", rows, tmp_path / "bad" / "RLAIF-V-Dataset_000.parquet")
    with pytest.raises(MmbenchError, match=r"RLAIF-V-Dataset_000.parquet row 1: chosen and rejected answers are "
                                           r"identical \(2 bad rows in all"):
        load_source(path)
    result = load_source(path, skip_bad_rows=True, image_cache=tmp_path / "c")
    assert [e.id for e in result.examples] == ["rlaif-0", "rlaif-2", "rlaif-4"] and result.skipped == 2


def test_missing_embedded_image_is_a_bad_row(tmp_path):
    rows = rlaif_rows(3)
    gone = tmp_path / "nowhere.png"
    gone.write_bytes(png(0))
    rows[2]["image"] = {"bytes": None, "path": str(gone)}
    path = write_parquet("rlaif-v", rows, tmp_path / "x" / "RLAIF-V-Dataset_000.parquet")
    gone.unlink()
    with pytest.raises(MmbenchError, match=r"row 2: image not found: \S*nowhere.png$"):
        load_source(path, image_cache=tmp_path / "c")
    assert len(load_source(path, skip_bad_rows=True, image_cache=tmp_path / "c").examples) == 2


def test_prompt_only_use_of_every_source(tmp_path):
    folder, coco = make_povid(tmp_path)
    for source, extra in ((make_rlaif(tmp_path), {}), (make_vlf(tmp_path), {}), (folder, {"image_root": coco})):
        examples = load_source(source, need_chosen=False, need_rejected=False, image_cache=tmp_path / "c",
                               **extra).examples
        assert len(examples) == 6 and all(e.prompt and e.image.is_file() for e in examples)


# ---- subsets and laziness --------------------------------------------------------------------
def test_subset_is_seeded_and_identical_across_runs(tmp_path):
    folder = make_rlaif(tmp_path, n=20)
    one = load_source(folder, subset=5, subset_seed=3, image_cache=tmp_path / "c")
    two = load_source(folder, subset=5, subset_seed=3, image_cache=tmp_path / "c")
    other = load_source(folder, subset=5, subset_seed=4, image_cache=tmp_path / "c")
    ids = [e.id for e in one.examples]
    assert ids == [e.id for e in two.examples] and ids != [e.id for e in other.examples] and len(ids) == 5
    assert ids == sorted(ids, key=lambda x: int(x.split("-")[1]))  # kept in source order
    with pytest.raises(MmbenchError, match="--subset 50 asks for more than the 20 usable"):
        load_source(folder, subset=50)


def test_a_subset_reads_only_its_own_images(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from mmbench.trainers import sources

    folder = tmp_path / "big"
    for shard in range(4):  # 4 shards x 50 rows, each with embedded image bytes
        write_parquet("rlaif-v", rlaif_rows(50, start=shard * 50), folder / f"RLAIF-V-Dataset_00{shard}.parquet")
    reads, written = [], []
    real_read, real_write = pq.ParquetFile.read_row_group, sources.write_image

    def spy_read(self, group, columns=None, **kwargs):
        reads.append(tuple(columns or ()))
        return real_read(self, group, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy_read)
    monkeypatch.setattr(sources, "write_image", lambda data, cache: written.append(data) or real_write(data, cache))
    result = load_source(folder, subset=5, subset_seed=0, image_cache=tmp_path / "c")
    assert len(result.examples) == 5 and len(written) == 5
    text_reads = [cols for cols in reads if cols != ("image",)]
    assert len(text_reads) == 4 and not any(c.endswith(".bytes") or c == "image" for cols in text_reads for c in cols)
    assert len([cols for cols in reads if cols == ("image",)]) <= 4  # only shards holding a picked row


def test_limit_stops_reading_early(tmp_path):
    path = make_mmbench(tmp_path)
    with path.open("a") as handle:
        handle.write("not json\n")
    assert len(load_source(path, limit=3).examples) == 3  # the broken last line is never read


# ---- mmbench data inspect / convert ----------------------------------------------------------
def _sources(tmp_path) -> dict[str, tuple[Path, list[str]]]:
    povid, coco = make_povid(tmp_path)
    return {"rlaif-v": (make_rlaif(tmp_path), []), "rlhf-v": (make_rlhf(tmp_path), []),
            "trl": (make_trl(tmp_path), []), "vlfeedback": (make_vlf(tmp_path), []),
            "povid": (povid, ["--image-root", str(coco)]), "mmbench": (make_mmbench(tmp_path), [])}


def test_data_inspect_shows_every_source(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "mmcache"))
    for kind, (source, extra) in _sources(tmp_path).items():
        code, out, err = run_cli(["data", "inspect", str(source), "-n", "2", *extra], capsys)
        assert code == 0, err
        assert f"format: {kind}" in out and "chosen" in out and "length in words" in out, out
        assert "prompt:   what colour is the square ?" in out


def test_data_inspect_renders_through_the_base_chat_template(tmp_path, capsys, monkeypatch):
    from mmbench.world.paths import shipped_base_model

    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "mmcache"))
    code, out, err = run_cli(["data", "inspect", str(make_rlaif(tmp_path)), "-n", "1", "--base",
                              str(shipped_base_model())], capsys)
    assert code == 0, err
    assert "length in tokens over 6 examples" in out and "prompt:   what colour" not in out  # templated


def test_data_convert_writes_mmbench_jsonl_that_trains_alike(tmp_path, capsys):
    for kind, (source, extra) in _sources(tmp_path).items():
        out = tmp_path / "converted" / kind / "train.jsonl"
        code, _, err = run_cli(["data", "convert", str(source), str(out), *extra], capsys)
        assert code == 0, err
        original = load_preference_source(str(source), quiet=True, image_cache=tmp_path / "c",
                                           image_root=extra[1] if extra else None)
        converted = load_preferences(out)
        assert essence(converted) == essence(original), kind
        if kind in ("rlaif-v", "rlhf-v", "trl"):  # embedded images were extracted beside the JSONL
            assert all(e.image.parent == out.parent / "images" for e in converted)


def test_data_convert_subset(tmp_path, capsys):
    out = tmp_path / "sub" / "train.jsonl"
    code, _, err = run_cli(["data", "convert", str(make_rlaif(tmp_path, n=20)), str(out), "--subset", "4",
                            "--subset-seed", "7"], capsys)
    assert code == 0, err
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    expected = load_source(tmp_path / "RLAIF-V-Dataset", subset=4, subset_seed=7, image_cache=tmp_path / "c")
    assert ids == [e.id for e in expected.examples]


def _malformed(kind: str, tmp_path: Path) -> Path:
    folder = tmp_path / f"bad-{kind}"
    if kind == "rlaif-v":
        rows = rlaif_rows(2)
        rows[1]["chosen"] = ""
        return write_parquet(kind, rows, folder / "RLAIF-V-Dataset_000.parquet")
    if kind == "rlhf-v":
        rows = rlhf_rows(2)
        rows[1]["text"] = "{not json"
        return write_parquet(kind, rows, folder / "RLHF-V-Dataset.parquet")
    if kind == "trl":
        return make_trl(folder, extra_images=0)
    if kind == "vlfeedback":
        rows = vlf_rows(2)
        rows[0]["completions"][0]["response"] = ""
        folder.mkdir()
        (folder / "vlfeedback_80k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return folder
    if kind == "povid":
        rows = povid_rows(2)
        rows[1]["rejected_conversations"] = "oops"
        folder.mkdir()
        (folder / "POVID_preference_data_for_VLLMs.json").write_text(json.dumps(rows))
        return folder
    folder.mkdir()
    (folder / "prefs.jsonl").write_text(json.dumps({"id": "a", "image": "x.png", "prompt": "p", "chosen": "c"}) + "\n")
    return folder / "prefs.jsonl"


@pytest.mark.parametrize("kind", ["rlaif-v", "rlhf-v", "trl", "vlfeedback", "povid", "mmbench"])
def test_malformed_fixture_is_one_line_and_exit_2(kind, tmp_path, capsys):
    source = _malformed(kind, tmp_path)
    for command in (["data", "inspect", str(source)], ["data", "convert", str(source), str(tmp_path / "o.jsonl")]):
        code, _, err = run_cli(command, capsys)
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and " row " in lines[0] or ":1:" in lines[0], err


def test_unknown_layout_through_the_cli(tmp_path, capsys):
    path = tmp_path / "odd.parquet"
    import datasets

    datasets.Dataset.from_list([{"a": 1, "b": "x"}]).to_parquet(str(path))
    code, _, err = run_cli(["data", "inspect", str(path)], capsys)
    assert code == 2 and "columns (a, b)" in err and len(err.strip().splitlines()) == 1


def test_train_config_validates_the_new_options(tmp_path):
    from mmbench.trainers.config import TrainConfig

    with pytest.raises(MmbenchError, match="did you mean 'vlfeedback'"):
        TrainConfig(data_format="vlfeedbak").validate()
    with pytest.raises(MmbenchError, match="--subset must be at least 1"):
        TrainConfig(subset=0).validate()
    with pytest.raises(MmbenchError, match="--pairs must be best or all"):
        TrainConfig(pairs="some").validate()
    with pytest.raises(MmbenchError, match="--image-root is not a folder"):
        TrainConfig(image_root=str(tmp_path / "none")).validate()


def test_ablate_passes_the_data_options_to_every_point(tmp_path):
    from mmbench.ablate import resolve_config, train_config

    config = resolve_config("gamma", None, {"data": "openbmb/RLAIF-V-Dataset", "subset": 5000, "subset_seed": 2,
                                            "data_format": "rlaif-v", "out": str(tmp_path)})
    train = train_config(config, 0.5, 1)
    assert (train.subset, train.subset_seed, train.data_format, train.pairs) == (5000, 2, "rlaif-v", "best")


# ---- short trainings through the CLI ---------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["rlaif-v", "rlhf-v", "trl", "vlfeedback", "povid", "mmbench"])
def test_train_bdhs_runs_on_every_source(kind, tmp_path, capsys, monkeypatch):
    import torch

    from mmbench.trainers import bdhs

    # A stand-in sentence embedder: the bundled one takes seconds to load and is tested elsewhere.
    monkeypatch.setattr(bdhs, "load_embedder", lambda name: lambda texts: torch.nn.functional.normalize(
        torch.stack([torch.tensor([float(len(t)) + 1.0, float(t.count(" ")) + 1.0]) for t in texts]), dim=-1))
    source, extra = _sources(tmp_path)[kind]
    out = tmp_path / "ckpt"
    code, _, err = run_cli(["train", "bdhs", "--data", str(source), "--max-steps", "2", "--batch-size", "2",
                                   "--out", str(out), "--subset", "4", "--subset-seed", "1", *extra], capsys)
    assert code == 0, err[-3000:]
    assert (out / "model.safetensors").exists() and len((out / "log.jsonl").read_text().splitlines()) == 2
    ids = json.loads((tmp_path / "ckpt.subset-ids.json").read_text())
    assert ids["subset"] == 4 and ids["subset_seed"] == 1 and len(ids["ids"]) == 4
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["subset"] == 4 and saved["data"] == str(source)
