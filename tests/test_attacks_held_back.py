"""A relearning attack on part of the TOFU forget set, on tiny random models: every metric sees only the
held-back records (also those read from TOFU's data files), and metrics relative to the oracle compare with
the oracle under the same attack, on the same records. Step 0 only: nothing trains, the machinery is under test."""
import pytest

from tests.conftest import SHARED_DATA, TINY, compose
from unlearn.data.encode import encode_split
from unlearn.data.tofu import tofu_records
from unlearn.metrics import EvalEnv

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "tofu").is_dir(), reason="shared TOFU copy not present")
METRICS = ("[{name:tofu_rouge,label:ROUGE,splits:[tofu_forget]},{name:forget_quality,label:FQ,splits:[tofu_forget]},"
           "{name:privleak,label:PrivLeak,splits:[forget]}]")
SETTINGS = {"tofu": {"forget_split": "forget01", "limit": 8, "max_new_tokens": 4, "use_chat_template": False}}


@pytest.fixture(scope="module")
def setup():
    from unlearn.models.tiny import build_tiny_model, train_tokenizer

    cfg = compose(TINY + ["data=tofu", "eval=tofu", f"eval.metrics={METRICS}", "eval.attacks=[{name:relearn_forget,steps:[0]}]"])
    records = {"forget": tofu_records(str(SHARED_DATA), "forget01", limit=8), "holdout": tofu_records(str(SHARED_DATA), "holdout01", limit=8)}
    tok = train_tokenizer([t for rs in records.values() for r in rs for t in (r.question, r.text)], 400)
    models = {role: build_tiny_model(cfg.model, len(tok), seed).eval() for seed, role in enumerate(("target", "unlearned", "oracle"))}
    encoded = {name: encode_split(rs, tok, len(tok), False, 8, use_chat_template=False) for name, rs in records.items()}
    return cfg, tok, models, encoded


def attack(setup, reference_cache=None):
    from unlearn.attacks import run_attacks
    from unlearn.stages.evaluate import build_contexts

    cfg, tok, models, encoded = setup
    env = EvalEnv(data_root=str(SHARED_DATA), settings=SETTINGS, original_role="target")
    build_contexts(models, {r: tok for r in models}, {r: encoded for r in models}, {r: {} for r in models}, cfg.eval, env)
    records, per_item = run_attacks(cfg, models, tok, encoded, {}, None, env, reference_cache)
    return {(r["model"], r["metric"]): r for r in records}, per_item


def test_relearning_metrics_from_data_files_see_only_the_held_back_records(setup):
    """TOFU ROUGE reads `<forget_split>_perturbed` rows, not the forget split: it too measures the 4 held-back
    records, not the 8 rows of which 4 were trained on."""
    by, per_item = attack(setup)
    for role in ("target", "unlearned", "oracle"):
        name = f"{role}@relearn_forget:0"
        held = by[(name, "ROUGE")]["details"]["attack"]["measured_on"]
        assert len(held) == 4
        assert by[(name, "ROUGE")]["n"] == len(per_item[name]["tofu_forget"]["ROUGE"]["values"]) == 4
        assert by[(name, "PrivLeak")]["n"] == 4


def test_oracle_relative_metrics_compare_with_the_attacked_oracle_on_the_same_records(setup, tmp_path):
    """`oracle@relearn_forget:0` is the oracle itself on the held-back records: PrivLeak 0 and forget quality 1
    by construction. The other roles compare with it, also when the oracle's records come from the cache."""
    from unlearn.stages.reference_cache import ReferenceCache

    cache = ReferenceCache(tmp_path / "eval", {"batch_size": 8})
    for _ in range(2):  # the second run finds the oracle's attacked records cached
        by, _ = attack(setup, cache)
        oracle = by[("oracle@relearn_forget:0", "PrivLeak")]
        assert oracle["value"] == 0.0 and oracle["details"]["oracle"] == "oracle@relearn_forget:0"
        assert by[("oracle@relearn_forget:0", "FQ")]["value"] == pytest.approx(1.0)
        mine = by[("unlearned@relearn_forget:0", "PrivLeak")]
        assert mine["value"] is not None, mine["details"].get("skipped")
        assert mine["details"]["oracle"] == "oracle@relearn_forget:0"
        assert mine["details"]["auc_oracle"] == pytest.approx(oracle["details"]["auc"])
        assert by[("unlearned@relearn_forget:0", "FQ")]["details"]["oracle"] == "oracle@relearn_forget:0"
    assert "reused_from" in oracle["details"]
