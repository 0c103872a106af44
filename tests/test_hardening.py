"""Bad input, as a new user would type it: every case is one line on stderr, the promised exit
code, no traceback, and nothing left in the output folder (issue 14).

One table, run through the real CLI in a subprocess.  Every case fails before a model loads, so
the whole table takes seconds per case at most; the few that import `datasets` or read a model
config are marked slow."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval_fixtures import small_world
from mmbench.world.paths import BASE_MODEL_DIR

NON_UTF8 = b'{"id": "a\xff\xfe"}\n'


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _pope(answer="yes", split="random", **extra) -> dict:
    return {"benchmark": "pope", "id": f"{split}/1", "response": "yes",
            "reference": {"answer": answer, "split": split}, **extra}


def _model_copy(dst: Path, *, weights: bytes | None = None, config: dict | None = None,
                world: bool = True) -> Path:
    dst.mkdir(parents=True)
    for f in BASE_MODEL_DIR.iterdir():
        if f.name == "world_model.json" and not world:
            continue
        if f.name == "model.safetensors" and weights is not None:
            (dst / f.name).write_bytes(weights)
        else:
            shutil.copy(f, dst / f.name)
    if config is not None:
        (dst / "config.json").write_text(json.dumps(config))
    return dst


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Every bad input file, built once; the cases only read them."""
    root = tmp_path_factory.mktemp("inputs")
    world = small_world(root)
    _write(root / "afile", "I am a file, not a folder\n")
    real = (BASE_MODEL_DIR / "model.safetensors").read_bytes()
    _model_copy(root / "garbage_model", weights=b"\x00garbage" * 64)
    _model_copy(root / "truncated_model", weights=real[: len(real) // 2])
    _model_copy(root / "text_only", config={"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    _model_copy(root / "list_config", config=[1, 2])  # type: ignore[arg-type]
    _model_copy(root / "nonworld", world=False)
    # samples files for `score`
    _write(root / "s_empty.jsonl", "")
    _write(root / "s_blank.jsonl", "\n\n")
    _write(root / "s_badjson.jsonl", '{"benchmark": "pope", \n')
    _write(root / "s_nonutf8.jsonl", NON_UTF8)
    _write(root / "s_list.jsonl", "[1, 2]\n")
    _write(root / "s_split.jsonl", _jsonl([_pope(split="everything")]))
    _write(root / "s_maybe.jsonl", _jsonl([_pope(answer="maybe")]))
    _write(root / "s_noresp.jsonl", _jsonl([{k: v for k, v in _pope().items() if k != "response"}]))
    _write(root / "s_good.jsonl", _jsonl([_pope()]))
    _write(root / "s_otherbench.jsonl", _jsonl([{**_pope(), "benchmark": "gqa"}]))
    # benchmark data folders for `eval`
    rows = [json.loads(line) for line in (world / "pope" / "data.jsonl").read_text().splitlines()[:4]]
    for row in rows:
        row["image"] = str(world / "pope" / row["image"]) if (world / "pope" / row["image"]).exists() \
            else str(world / row["image"])
    _write(root / "d_noq" / "pope" / "data.jsonl", _jsonl([{k: v for k, v in r.items() if k != "question"}
                                                           for r in rows]))
    _write(root / "d_noanswer" / "pope" / "data.jsonl", _jsonl([{k: v for k, v in r.items() if k != "answer"}
                                                                for r in rows]))
    _write(root / "d_maybe" / "pope" / "data.jsonl", _jsonl([rows[0], {**rows[1], "answer": "maybe"}]))
    _write(root / "d_empty" / "pope" / "data.jsonl", "")
    _write(root / "d_nonutf8" / "pope" / "data.jsonl", NON_UTF8)
    _write(root / "d_list" / "pope" / "data.json", "[1, 2, 3]")
    # judge prompts
    _write(root / "p_noslot.txt", "Rate this answer to {question} from 0 to 6.\n")
    _write(root / "p_typo.txt", "Q: {question}\nA: {response}\nTruth: {gt_answr}\n")
    _write(root / "p_nonutf8.txt", b"Rate {response} \xff\n")
    # ablation configs
    _write(root / "c_steps.toml", 'max_steps = "ten"\n')
    _write(root / "c_values.yaml", 'values: "abc"\n')
    _write(root / "c_list.yaml", "- 0.1\n- 0.2\n")
    _write(root / "c_train5.toml", "train = 5\n")
    _write(root / "c_lr.toml", '[train]\nlr = "fast"\n')
    _write(root / "c_beta_nan.toml", "[train]\nbeta = nan\n")
    _write(root / "c_unknown.toml", "max_stepz = 3\n")
    _write(root / "c_train_unknown.toml", "[train]\nlearning_rate = 0.1\n")
    _write(root / "c_broken.toml", "max_steps = = 3\n")
    _write(root / "c_nonutf8.toml", b"max_steps = 3 # \xff\n")
    _write(root / "c_bdhs.toml", '[train.bdhs]\nrho_th = "high"\n')
    # preference files for `train` / `data`
    _write(root / "prefs_nonutf8.jsonl", NON_UTF8)
    _write(root / "prefs_list.jsonl", "[1, 2]\n")
    _write(root / "prefs_missing.jsonl", _jsonl([{"id": "a", "prompt": "p", "image": "x.png"}]))
    # run folders for `report`
    _write(root / "r_badmeta" / "m" / "pope" / "results.json", json.dumps({"benchmark": "pope", "metrics": {}}))
    _write(root / "r_badmeta" / "m" / "model.json", "{not json")
    _write(root / "r_list" / "m" / "pope" / "results.json", "[1, 2]")
    _write(root / "r_nonutf8" / "m" / "pope" / "results.json", NON_UTF8)
    (root / "r_empty").mkdir()
    # lmms-eval output folders for `import-lmms`
    _write(root / "l_badjson" / "x_results.json", "{oops")
    _write(root / "l_list" / "x_results.json", "[]")
    _write(root / "l_nonutf8" / "x_results.json", NON_UTF8)
    (root / "l_empty").mkdir()
    return root


#  (id, arguments, exit code, a word the one stderr line must contain)
CASES = [
    # eval
    ("eval-limit-abc", "eval --limit abc", 2, "--limit"),
    ("eval-limit-0", "eval --limit 0 --data {world} --out {out}", 2, "--limit"),
    ("eval-limit-negative", "eval --limit -1 --data {world} --out {out}", 2, "--limit"),
    ("eval-batch-size-0", "eval --batch-size 0", 2, "--batch-size"),
    ("eval-max-new-tokens-0", "eval --max-new-tokens 0", 2, "--max-new-tokens"),
    ("eval-unknown-option", "eval --bogus", 2, "--bogus"),
    ("eval-unknown-benchmark", "eval --benchmarks popee --data {world} --out {out}", 2, "pope"),
    ("eval-empty-benchmarks", "eval --benchmarks , --data {world} --out {out}", 2, "benchmark"),
    ("eval-name-dotdot", "eval --data {world} --benchmarks pope --name ../../x --out {out}", 2, "--name"),
    ("eval-name-absolute", "eval --data {world} --benchmarks pope --name /abs --out {out}", 2, "--name"),
    ("eval-engine-unknown", "eval --engine vllm --out {out}", 2, "engine"),
    ("eval-missing-checkpoint", "eval {in}/no_such_model --data {world} --out {out}", 2, "not found"),
    ("eval-misspelled-checkpoint-before-judge", "eval checkpoints/bse --benchmarks mmhal --out {out}", 2,
     "not found"),
    ("eval-checkpoint-is-file", "eval {in}/afile --data {world} --out {out}", 2, "file"),
    ("eval-out-is-file", "eval --data {world} --benchmarks pope --out {in}/afile", 2, "file"),
    ("eval-out-below-file", "eval --data {world} --benchmarks pope --out {in}/afile/runs", 2, "file"),
    ("eval-data-missing", "eval --data {in}/no_data --benchmarks pope --out {out}", 2, "not found"),
    ("eval-pope-missing-question", "eval --data {in}/d_noq --benchmarks pope --out {out}", 2, "row 1"),
    ("eval-pope-missing-answer", "eval --data {in}/d_noanswer --benchmarks pope --out {out}", 2, "row 1"),
    ("eval-pope-label-maybe", "eval --data {in}/d_maybe --benchmarks pope --out {out}", 2, "row 2"),
    ("eval-empty-data", "eval --data {in}/d_empty --benchmarks pope --out {out}", 2, "no"),
    ("eval-data-not-utf8", "eval --data {in}/d_nonutf8 --benchmarks pope --out {out}", 2, "UTF-8"),
    ("eval-data-not-objects", "eval --data {in}/d_list --benchmarks pope --out {out}", 2, "object"),
    ("eval-judge-prompt-no-response-slot", "eval --data {world} --benchmarks mmhal --judge-model m "
     "--judge-base-url http://127.0.0.1:9 --judge-prompt {in}/p_noslot.txt --out {out}", 2, "{{response}}"),
    ("eval-judge-prompt-unknown-slot", "eval --data {world} --benchmarks mmhal --judge-model m "
     "--judge-base-url http://127.0.0.1:9 --judge-prompt {in}/p_typo.txt --out {out}", 2, "gt_answr"),
    ("eval-judge-prompt-not-utf8", "eval --data {world} --benchmarks mmhal --judge-model m "
     "--judge-base-url http://127.0.0.1:9 --judge-prompt {in}/p_nonutf8.txt --out {out}", 2, "UTF-8"),
    ("eval-judge-prompt-missing", "eval --data {world} --benchmarks mmhal --judge-model m "
     "--judge-prompt {in}/nope.txt --out {out}", 2, "not found"),
    ("eval-judge-url-not-http", "eval --data {world} --benchmarks mmhal --judge-model m "
     "--judge-base-url ftp://user:SECRET@host --out {out}", 2, "http"),
    ("eval-garbage-safetensors", "eval {in}/garbage_model --data {world} --benchmarks pope --out {out}", 2,
     "safetensors"),
    ("eval-truncated-safetensors", "eval {in}/truncated_model --data {world} --benchmarks pope --out {out}",
     2, "safetensors"),
    ("eval-text-only-checkpoint", "eval {in}/text_only --data {world} --benchmarks pope --out {out}", 2,
     "image-text-to-text"),
    ("eval-config-not-object", "eval {in}/list_config --data {world} --benchmarks pope --out {out}", 2,
     "object"),
    ("eval-device-unknown", "eval --data {world} --benchmarks pope --device tpu9 --out {out}", 2, "device"),
    # score
    ("score-empty-file", "score pope {in}/s_empty.jsonl", 2, "empty"),
    ("score-blank-lines", "score pope {in}/s_blank.jsonl", 2, "empty"),
    ("score-missing-file", "score pope {in}/nope.jsonl", 2, "not found"),
    ("score-invalid-json", "score pope {in}/s_badjson.jsonl", 2, ":1:"),
    ("score-not-utf8", "score pope {in}/s_nonutf8.jsonl", 2, "UTF-8"),
    ("score-line-not-object", "score pope {in}/s_list.jsonl", 2, "object"),
    ("score-pope-unknown-split", "score pope {in}/s_split.jsonl", 2, "split"),
    ("score-pope-label-maybe", "score pope {in}/s_maybe.jsonl", 2, "maybe"),
    ("score-missing-response", "score pope {in}/s_noresp.jsonl", 2, "response"),
    ("score-other-benchmark", "score pope {in}/s_otherbench.jsonl", 2, "gqa"),
    ("score-unknown-benchmark", "score popee {in}/s_good.jsonl", 2, "pope"),
    ("score-out-is-folder", "score pope {in}/s_good.jsonl --out {in}", 2, "folder"),
    ("score-rejudge-unjudged", "score pope {in}/s_good.jsonl --rejudge", 2, "judge"),
    ("score-samples-is-folder", "score pope {in}", 2, "{in}"),
    # inspect
    ("inspect-n-negative", "inspect pope -n -1 --data {world}", 2, "-n"),
    ("inspect-unknown-benchmark", "inspect popular --data {world}", 2, "pope"),
    # train
    ("train-beta-nan", "train dpo --beta nan --out {out}/ck", 2, "--beta"),
    ("train-lr-nan", "train dpo --lr nan --out {out}/ck", 2, "--lr"),
    ("train-lr-zero", "train dpo --lr 0 --out {out}/ck", 2, "--lr"),
    ("train-gamma-inf", "train bdhs --gamma inf --out {out}/ck", 2, "--gamma"),
    ("train-p-out-of-range", "train mixed-dpo --p 1.5 --out {out}/ck", 2, "--p"),
    ("train-save-every-0", "train dpo --save-every 0 --out {out}/ck", 2, "--save-every"),
    ("train-limit-0", "train dpo --limit 0 --out {out}/ck", 2, "--limit"),
    ("train-limit-negative", "train dpo --limit -5 --out {out}/ck", 2, "--limit"),
    ("train-max-steps-abc", "train dpo --max-steps ten", 2, "--max-steps"),
    ("train-batch-not-multiple", "train dpo --batch-size 3 --grad-accum 2 --out {out}/ck", 2, "--grad-accum"),
    ("train-unknown-trainer", "train dpoo --out {out}/ck", 2, "dpo"),
    ("train-out-is-file", "train dpo --out {in}/afile --data {in}/prefs_missing.jsonl", 2, "file"),
    ("train-prefs-not-utf8", "train dpo --data {in}/prefs_nonutf8.jsonl --out {out}/ck", 2, "UTF-8"),
    ("train-prefs-row-not-object", "train dpo --data {in}/prefs_list.jsonl --out {out}/ck", 2, "object"),
    ("train-prefs-missing-fields", "train dpo --data {in}/prefs_missing.jsonl --out {out}/ck", 2, ":1:"),
    # ablate
    ("ablate-values-repeat", "ablate gamma --values 1,1 --out {out}/abl", 2, "repeat"),
    ("ablate-values-not-numbers", "ablate gamma --values a,b --out {out}/abl", 2, "--values"),
    ("ablate-values-out-of-range", "ablate p --values 0,2 --out {out}/abl", 2, "[0, 1]"),
    ("ablate-values-nan", "ablate p --values nan --out {out}/abl", 2, "--values"),
    ("ablate-unknown-knob", "ablate beta --out {out}/abl", 2, "knob"),
    ("ablate-point-outside", "ablate gamma --values 0,1 --point 5 --out {out}/abl", 2, "--point"),
    ("ablate-limit-0", "ablate gamma --limit 0 --out {out}/abl", 2, "--limit"),
    ("ablate-toml-max-steps-text", "ablate gamma --config {in}/c_steps.toml --out {out}/abl", 2, "max_steps"),
    ("ablate-yaml-values-text", "ablate gamma --config {in}/c_values.yaml --out {out}/abl", 2, "values"),
    ("ablate-yaml-top-level-list", "ablate gamma --config {in}/c_list.yaml --out {out}/abl", 2, "list"),
    ("ablate-toml-train-number", "ablate gamma --config {in}/c_train5.toml --out {out}/abl", 2, "train"),
    ("ablate-toml-train-lr-text", "ablate gamma --config {in}/c_lr.toml --out {out}/abl", 2, "train.lr"),
    ("ablate-toml-train-beta-nan", "ablate gamma --config {in}/c_beta_nan.toml --out {out}/abl", 2, "beta"),
    ("ablate-toml-unknown-key", "ablate gamma --config {in}/c_unknown.toml --out {out}/abl", 2, "max_stepz"),
    ("ablate-toml-train-unknown-key", "ablate gamma --config {in}/c_train_unknown.toml --out {out}/abl", 2,
     "learning_rate"),
    ("ablate-toml-bdhs-text", "ablate gamma --config {in}/c_bdhs.toml --out {out}/abl", 2, "rho_th"),
    ("ablate-toml-unparsable", "ablate gamma --config {in}/c_broken.toml --out {out}/abl", 2, "parse"),
    ("ablate-toml-not-utf8", "ablate gamma --config {in}/c_nonutf8.toml --out {out}/abl", 2, "UTF-8"),
    ("ablate-config-missing", "ablate gamma --config {in}/nope.toml --out {out}/abl", 2, "not found"),
    ("ablate-out-is-file", "ablate gamma --out {in}/afile", 2, "file"),
    # report
    ("report-missing-folder", "report {in}/no_runs --replicates 0", 2, "not found"),
    ("report-model-json-malformed", "report {in}/r_badmeta --out {out}/rep --replicates 0", 2, "model.json"),
    ("report-results-json-list", "report {in}/r_list --out {out}/rep --replicates 0", 2, "results.json"),
    ("report-results-not-utf8", "report {in}/r_nonutf8 --out {out}/rep --replicates 0", 2, "results.json"),
    ("report-no-results", "report {in}/r_empty --out {out}/rep --replicates 0", 2, "results.json"),
    ("report-out-is-file", "report {in}/r_list --out {in}/afile --replicates 0", 2, "file"),
    ("report-replicates-negative", "report {in}/r_list --out {out}/rep --replicates -1", 2, "--replicates"),
    # import-lmms
    ("import-lmms-invalid-json", "import-lmms {in}/l_badjson --out {out}", 2, "x_results.json"),
    ("import-lmms-results-list", "import-lmms {in}/l_list --out {out}", 2, "object"),
    ("import-lmms-not-utf8", "import-lmms {in}/l_nonutf8 --out {out}", 2, "UTF-8"),
    ("import-lmms-empty-folder", "import-lmms {in}/l_empty --out {out}", 2, "results"),
    ("import-lmms-missing-folder", "import-lmms {in}/no_such --out {out}", 2, "not found"),
    ("import-lmms-name-escapes", "import-lmms {in}/l_empty --name ../x --out {out}", 2, "--name"),
    ("import-lmms-out-is-file", "import-lmms {in}/l_empty --out {in}/afile", 2, "file"),
    # world
    ("world-build-out-is-file", "world build --small --out {in}/afile", 2, "file"),
    ("world-pretrain-steps-too-few", "world pretrain --steps 1 --out {out}/m", 2, "--steps"),
    ("world-pretrain-no-cuda", "world pretrain --device cuda:0 --out {out}/m", 2, "CUDA is not available"),
    ("world-pretrain-unknown-device", "world pretrain --device gpu --out {out}/m", 2, "unknown device"),
    ("world-build-seed-text", "world build --seed abc", 2, "--seed"),
    # data
    ("data-inspect-missing", "data inspect {in}/no_prefs.jsonl", 2, "not found"),
    ("data-inspect-not-utf8", "data inspect {in}/prefs_nonutf8.jsonl", 2, "UTF-8"),
    ("data-inspect-n-negative", "data inspect {in}/prefs_list.jsonl -n -1", 2, "-n"),
    ("data-convert-out-is-folder", "data convert {in}/prefs_missing.jsonl {in}", 2, "folder"),
    ("data-convert-unknown-format", "data convert {in}/prefs_missing.jsonl {out}/p.jsonl --data-format xyz",
     2, "xyz"),
]
# Every case starts a Python process (1-3 s each on 2 cores). The fast tier keeps one or two of
# each command and kind of failure; the slow tier (CI runs both) runs the rest.
FAST = {"eval-limit-abc", "eval-unknown-benchmark", "eval-missing-checkpoint", "eval-garbage-safetensors",
        "eval-pope-label-maybe", "eval-judge-prompt-unknown-slot", "score-invalid-json", "score-not-utf8",
        "score-pope-unknown-split", "inspect-unknown-benchmark", "train-beta-nan", "train-unknown-trainer",
        "train-prefs-missing-fields", "ablate-values-out-of-range", "ablate-unknown-knob",
        "ablate-toml-unknown-key", "ablate-yaml-top-level-list", "report-missing-folder",
        "report-results-json-list", "import-lmms-invalid-json", "world-build-out-is-file",
        "data-inspect-not-utf8", "data-convert-unknown-format"}
SLOW = {case[0] for case in CASES} - FAST
assert FAST <= {case[0] for case in CASES} and len({case[0] for case in CASES}) == len(CASES)


def _env(root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "AZURE", "MMBENCH_DEBUG"))}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               MMBENCH_CACHE=str(root / "cache"), HF_HOME=str(root / "hf"), TRANSFORMERS_VERBOSITY="error",
               HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false", PYTHONWARNINGS="ignore",
               OMP_NUM_THREADS="1")
    return env


def tree_hash(root: Path) -> dict[str, str]:
    """Every file under root (path -> content hash)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmbench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("Loading weights")]


def _prepare(case, inputs: Path, base: Path) -> dict:
    case_id, command, _code, needle = case
    work = base / case_id / "work"
    (work / "checkpoints" / "base").mkdir(parents=True)  # `checkpoints/bse` is a typo of a real path
    out = work / "out"
    fill = {"in": str(inputs), "world": str(inputs / "world"), "out": str(out)}
    return {"args": [a.format(**fill) for a in command.split()], "needle": needle.format(**fill), "work": work,
            "out": out, "env": _env(base / case_id), "before": tree_hash(work)}


@pytest.fixture(scope="module")
def outcomes(request, inputs, tmp_path_factory) -> dict:
    """Run the selected cases as subprocesses, a few at a time (they mostly wait on imports)."""
    from concurrent.futures import ThreadPoolExecutor

    selected = {item.callspec.params["case_id"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_bad_input_is_one_line" and hasattr(item, "callspec")}
    base = tmp_path_factory.mktemp("cases")
    before_inputs = tree_hash(inputs)
    prepared = {case[0]: _prepare(case, inputs, base) for case in CASES if case[0] in selected}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {cid: pool.submit(run_cli, p["args"], p["work"], p["env"]) for cid, p in prepared.items()}
        results = {cid: {**prepared[cid], "result": f.result()} for cid, f in futures.items()}
    for r in results.values():
        r["after"] = tree_hash(r["work"])
    results["_inputs_unchanged"] = tree_hash(inputs) == before_inputs
    return results


@pytest.mark.parametrize("case_id,command,code,needle", [
    pytest.param(*case, marks=pytest.mark.slow) if case[0] in SLOW else case for case in CASES
], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line(outcomes, case_id, command, code, needle):
    run = outcomes[case_id]
    result, needle, out = run["result"], run["needle"], run["out"]
    lines = _stderr_lines(result.stderr)
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert needle in lines[0], lines[0]
    assert "SECRET" not in result.stderr + result.stdout
    assert run["after"] == run["before"], "files were written under --out"
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*")), list(out.rglob("*"))
    assert outcomes["_inputs_unchanged"], "an input file was changed"


@pytest.mark.slow
def test_offline_non_world_checkpoint_names_data_world(inputs, tmp_path):
    """No --data, a checkpoint that is not a world model, no network: one line naming --data."""
    result = run_cli(["eval", str(inputs / "nonworld"), "--benchmarks", "pope", "--out", str(tmp_path / "out")],
                     tmp_path, _env(tmp_path))
    lines = _stderr_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "--data world" in lines[0] and "Traceback" not in result.stderr
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


@pytest.mark.slow  # quick tier < 2 min on 2 cores; CI runs it
def test_nan_never_trains(inputs, tmp_path):
    """`train --beta nan` stops at once: exit 2, one line, no checkpoint and no partial run."""
    out = tmp_path / "ck"
    for option in ("--beta", "--lr"):
        result = run_cli(["train", "dpo", option, "nan", "--max-steps", "1", "--out", str(out)], tmp_path,
                         _env(tmp_path))
        assert result.returncode == 2, result.stderr[-2000:]
        assert len(_stderr_lines(result.stderr)) == 1 and option in result.stderr
        assert not out.exists() and not list(tmp_path.glob("ck*")), list(tmp_path.iterdir())


def test_unexpected_error_is_one_line_and_debug_shows_traceback(tmp_path, monkeypatch):
    """The boundary: anything unexpected is one line and exit 1; --debug / MMBENCH_DEBUG=1 show it."""
    from mmbench import cli

    def boom(*_a, **_k):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr("mmbench.harness.scoring.score_file", boom)
    samples = _write(tmp_path / "s.jsonl", _jsonl([_pope()]))
    for argv, debug in ((["score", "pope", str(samples)], False), (["--debug", "score", "pope", str(samples)], True),
                        (["score", "pope", str(samples), "--debug"], True)):
        monkeypatch.delenv("MMBENCH_DEBUG", raising=False)
        if debug:
            with pytest.raises(RuntimeError):
                cli.main(argv)
            continue
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 1
    monkeypatch.setenv("MMBENCH_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["score", "pope", str(samples)])


def test_unexpected_error_message(tmp_path, monkeypatch, capsys):
    from mmbench import cli

    monkeypatch.delenv("MMBENCH_DEBUG", raising=False)
    monkeypatch.setattr("mmbench.harness.scoring.score_file", lambda *a, **k: {}["missing"])
    samples = _write(tmp_path / "s.jsonl", _jsonl([_pope()]))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["score", "pope", str(samples)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert len(err.strip().splitlines()) == 1 and "--debug" in err and "KeyError" in err


def test_disk_full_and_read_only_writes_are_one_line(tmp_path, monkeypatch):
    """OSError from a write (disk full here) is an MmbenchError naming the file; no temp file stays."""
    import errno

    from mmbench.errors import MmbenchError
    from mmbench.harness import runfiles

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runfiles.os, "fsync", full)
    with pytest.raises(MmbenchError, match="No space left on device"):
        runfiles.atomic_write_json(tmp_path / "r" / "results.json", {"a": 1})
    assert list((tmp_path / "r").iterdir()) == []


def test_run_files_follow_the_umask_and_stale_temp_files_are_swept(tmp_path):
    from mmbench.harness.runfiles import atomic_write_json, sweep_stale_tmp

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "m" / "pope" / "results.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "m" / "pope" / "results.json").stat().st_mode & 0o777 == 0o644
    stale = _write(tmp_path / "m" / "pope" / ".samples.jsonl.abc123.tmp", "half")
    assert sweep_stale_tmp(tmp_path / "m") == 1 and not stale.exists()
    assert (tmp_path / "m" / "pope" / "results.json").exists()


def test_csv_cells_cannot_be_formulas():
    import pandas as pd

    from mmbench.reports.leaderboard import csv_safe

    frame = pd.DataFrame({"model": ["=cmd|' /C calc'!A0", "@SUM(1)", "+1+1", "-x", "\tx", "\rx", "ok", "-1.5"],
                          "f1": [-1.0, 2, 3, 4, 5, 6, 7, 8]})
    text = csv_safe(frame).to_csv(index=False)
    rows = text.splitlines()[1:]
    assert all(r.startswith(("'", '"\'')) for r in rows[:4]), rows
    assert "ok,7.0" in text and "-1.5,8.0" in text and "-1.0" in text  # numbers stay numbers


def test_saved_urls_carry_no_credentials(tmp_path):
    from mmbench.ablate import AblationConfig, public_config
    from mmbench.trainers.config import TrainConfig

    url = "http://user:SECRET@judge.local:8000/v1?api_key=SECRET"
    saved = TrainConfig(annotator_base_url=url).to_public_dict()
    assert "SECRET" not in json.dumps(saved) and saved["annotator_base_url"] == "http://judge.local:8000/v1"
    config = AblationConfig(knob="p", out=str(tmp_path / "abl"), train={"annotator_base_url": url})
    assert "SECRET" not in json.dumps(public_config(config))
