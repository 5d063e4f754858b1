"""The attack battery: each attack changes what it should and nothing else."""
import math
import pytest
import torch
from omegaconf import OmegaConf

from unlearn.attacks.battery import worst_case
from unlearn.attacks.perturb import paraphrased_records, token_variant, tofu_paraphrases
from unlearn.attacks.quantize import group_size_for, quantized_copy
from unlearn.attacks.relearn import relearned_copies, split_forget
from unlearn.data.encode import EncodedSplit
from unlearn.errors import ConfigError

from tests.conftest import CONF, SHARED_DATA, TINY, compose


def tiny_llama(seed=0, hidden=256):
    """Random Llama with rows of 256 and 512 inputs: groups of 128 and a tied LM head."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=97, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=True, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def linear_names(model):
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"]


@pytest.mark.parametrize("bits", [4, 8])
def test_quantization_error_is_within_the_round_to_nearest_bound(bits):
    model = tiny_llama()
    before = state(model)
    attacked = quantized_copy(model, bits)
    for k, v in model.state_dict().items():  # the input model is untouched
        assert torch.equal(before[k], v), k
    levels = 2 ** bits
    for name in linear_names(model):
        w = before[f"{name}.weight"]
        q = attacked.get_submodule(name).weight.detach()
        group = group_size_for(w.shape[1], bits)
        W, Q = (w.reshape(-1, group), q.reshape(-1, group)) if group else (w, q)
        if bits == 4:  # asymmetric min-max: step (max - min) / 15, the range always containing 0
            step = (W.amax(1, keepdim=True).clamp(min=0) - W.amin(1, keepdim=True).clamp(max=0)) / (levels - 1)
        else:  # symmetric absmax per output channel: step absmax / 127
            step = W.abs().amax(1, keepdim=True) / (levels / 2 - 1)
        err = (W - Q).abs()
        assert (err <= step / 2 * (1 + 1e-4) + 1e-7).all(), f"{name}: error {(err / step).max():.3f} steps > half a step"
        assert err.max() > step.max() / 8, f"{name}: weights barely moved; not quantized to {bits} bits"
        distinct = max(len(torch.unique(row)) for row in Q)
        assert distinct <= levels, f"{name}: {distinct} distinct values in a group, more than {levels}"
    # Nothing but the quantized Linear weights changes: embeddings (= tied LM head), norms.
    for k, v in attacked.state_dict().items():
        if not any(k == f"{n}.weight" for n in linear_names(model)):
            assert torch.equal(before[k], v), k


def test_hqq_quantizes_to_four_bits_with_no_larger_error_than_rtn():
    model = tiny_llama()
    rtn, hqq = quantized_copy(model, 4, "rtn"), quantized_copy(model, 4, "hqq")
    name = linear_names(model)[0]
    w = model.get_submodule(name).weight.detach()
    group = group_size_for(w.shape[1], 4)
    q = hqq.get_submodule(name).weight.detach()
    assert max(len(torch.unique(row)) for row in q.reshape(-1, group)) <= 16
    err = {k: (m.get_submodule(name).weight.detach() - w).pow(2).mean().item() for k, m in (("rtn", rtn), ("hqq", hqq))}
    assert err["hqq"] <= err["rtn"] * 1.05, err


def random_split(n=6, length=12, vocab=97, prefix=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (n, length), generator=g).tolist()
    return EncodedSplit([f"r{i}" for i in range(n)], ids, [prefix] * n)


def trainer_cfg():
    return compose(["trainer.progress_bar=false"]).trainer


def test_relearning_trains_copies_and_leaves_the_input_bit_identical():
    model = tiny_llama(hidden=64)
    before = state(model)
    params = {"lr": 1e-2, "batch_size": 2}
    copies = relearned_copies(model, 0, random_split(), [0, 2, 5], params, trainer_cfg(), seed=0)
    for k, v in model.state_dict().items():
        assert torch.equal(before[k], v), f"relearning changed the input model's {k}"
    assert copies[0] is model
    changed = [k for k, v in copies[2].state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "two relearning steps changed no weight"
    assert any(not torch.equal(copies[2].state_dict()[k], copies[5].state_dict()[k]) for k in changed)
    # The step-2 snapshot of a 5-step run is the model after exactly 2 steps.
    alone = relearned_copies(model, 0, random_split(), [2], params, trainer_cfg(), seed=0)[2]
    for k, v in alone.state_dict().items():
        torch.testing.assert_close(v, copies[2].state_dict()[k])


def test_forget_split_for_relearning_is_disjoint_and_keeps_ids():
    forget = random_split(n=8)
    train, held = split_forget(forget, 0.5, seed=3)
    assert len(train) == 4 and len(held) == 4
    assert set(train.record_ids).isdisjoint(held.record_ids)
    assert sorted(train.record_ids + held.record_ids) == sorted(forget.record_ids)
    for split in (train, held):
        for rid, ids in zip(split.record_ids, split.input_ids):
            assert ids == forget.input_ids[forget.record_ids.index(rid)]
    assert split_forget(forget, 0.5, seed=3)[1].record_ids == held.record_ids  # seeded


@pytest.mark.parametrize("variant", ["shift_-2", "shift_-9", "truncate_2", "replace_2"])
def test_prompt_variants_keep_ids_and_change_only_the_prompt(variant):
    """Every variant is scored on exactly the clean continuation: a longer text to reproduce (the old
    shift_-k) raised EM_len by k for every model, which the worst case read as recovered knowledge."""
    split = random_split(n=5, length=12, prefix=5)
    out = token_variant(split, variant, vocab_size=97, seed=0, special_ids=[0, 1, 2])
    assert out.record_ids == split.record_ids
    for ids, p, new, q in zip(split.input_ids, split.prefix_lens, out.input_ids, out.prefix_lens):
        assert 1 <= q < len(new)
        assert new[q:] == ids[p:], f"{variant} changed the text to reproduce"
        if variant == "shift_-2":  # the prompt ends 2 tokens early; those 2 are cut out, not scored
            assert new == ids[:p - 2] + ids[p:] and q == p - 2
        elif variant == "shift_-9":  # more than the prompt: one prompt token is kept
            assert new == ids[:1] + ids[p:] and q == 1
        elif variant == "truncate_2":
            assert new == ids[2:] and q == p - 2
        else:
            assert new[p:] == ids[p:] and q == p
            assert sum(a != b for a, b in zip(new[:p], ids[:p])) == 2
            assert not {0, 1, 2} & {t for t, o in zip(new, ids) if t != o}


def test_tofu_paraphrase_keeps_ids_and_answers():
    from unlearn.data.tofu import tofu_records

    data = OmegaConf.create({"forget_split": "forget01"})
    records = tofu_records(str(SHARED_DATA), "forget01", limit=5)
    out = paraphrased_records(records, tofu_paraphrases(data, str(SHARED_DATA)))
    assert [r.id for r in out] == [r.id for r in records]
    assert [r.text for r in out] == [r.text for r in records]
    assert all(a.question != b.question for a, b in zip(out, records))


def test_worst_case_is_the_per_item_maximum_over_variants():
    results = {"original": {"forget": {"EM_len": {"ids": ["a", "b"], "values": [3, 0]}}},
               "shift_2": {"forget": {"EM_len": {"ids": ["a", "b"], "values": [1, 5]}}}}
    eval_cfg = OmegaConf.create({"metrics": [{"name": "exact_match", "label": "EM_len", "splits": ["forget"]}]})
    identity = {"name": "perturb", "kind": "perturb", "variant": "perturb", "params": {}, "role": "unlearned"}
    records, items = worst_case(results, identity, "unlearned@perturb", eval_cfg)
    assert records[0]["value"] == 4.0 and items["forget"]["EM_len"]["values"] == [3, 5]
    assert records[0]["details"]["worst_variant"] == ["original", "shift_2"]
    bad = dict(results, shift_2={"forget": {"EM_len": {"ids": ["b", "a"], "values": [1, 5]}}})
    with pytest.raises(ConfigError, match="lost the record ids"):
        worst_case(bad, identity, "unlearned@perturb", eval_cfg)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF / "attack").glob("*.yaml")))
def test_every_attack_file_resolves_and_validates(name):
    from unlearn.attacks import validate_attacks
    from unlearn.attacks.specs import resolve

    validate_attacks(compose(TINY + [f"eval.attacks=[{name}]"]))
    assert resolve(name)["kind"] in ("quantize", "relearn", "perturb")


@pytest.mark.parametrize("attacks, message", [
    ("[int5]", "attack 'int5' is unknown"),
    ("[{name:int4,bits:3}]", "bits=3"),
    ("[{name:relearn_forget,fraction:1.0}]", "fraction=1.0"),
    ("[{name:int4,group:64}]", "has no key"),
    ("[{name:perturb,variants:[twist_2]}]", "variant 'twist_2' is unknown"),
    ("[{name:perturb,variants:[shift_2]}]", "shift_2 would put part of the text to reproduce into the prompt"),
])
def test_bad_attack_configs_fail_before_any_model_loads(attacks, message):
    from unlearn.workflows.run_pipeline import validate_config

    cfg = compose(TINY + [f"eval.attacks={attacks}"])
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


@pytest.mark.slow
def test_battery_attacks_copies_of_every_role_and_reuses_the_fixed_ones(tiny_setup, tmp_path):
    from unlearn.attacks import run_attacks
    from unlearn.metrics import EvalEnv
    from unlearn.stages.evaluate import build_contexts
    from unlearn.stages.reference_cache import ReferenceCache

    cfg = compose(TINY + ["eval.attacks=[int4,{name:relearn_forget,steps:[0,2]},perturb]",
                          "eval.metrics=[{name:ma,label:MA,positions:all,splits:[forget]},{name:exact_match,label:EM_len,splits:[forget]}]"])
    s = tiny_setup
    models = {"target": s["target"], "unlearned": s["base"], "oracle": s["oracle"]}
    before = {role: state(m) for role, m in models.items()}
    cache = ReferenceCache(tmp_path / "eval", {"batch_size": 8})

    def battery():
        env = EvalEnv(original_role="target")
        build_contexts(models, {r: s["tokenizer"] for r in models}, {r: s["encoded"] for r in models}, {r: {} for r in models},
                       cfg.eval, env)
        return run_attacks(cfg, models, s["tokenizer"], s["encoded"], {}, None, env, cache)

    records, per_item = battery()
    for role, model in models.items():  # attacks work on copies
        assert all(torch.equal(before[role][k], v) for k, v in model.state_dict().items()), role
    by = {(r["model"], r["metric"]): r for r in records}
    forget_ids = s["encoded"]["forget"].record_ids
    held = per_item["oracle@relearn_forget:2"]["forget"]["MA"]["ids"]
    assert len(held) == len(forget_ids) // 2 and set(held) < set(forget_ids)
    for role in models:
        assert by[(f"{role}@int4", "MA")]["details"]["attack"]["role"] == role
        assert by[(f"{role}@relearn_forget:2", "MA")]["n"] == len(held)
        assert per_item[f"{role}@relearn_forget:0"]["forget"]["MA"]["ids"] == held
        worst = per_item[f"{role}@perturb"]["forget"]["EM_len"]
        clean = per_item[f"{role}@perturb:original"]["forget"]["EM_len"]
        assert worst["ids"] == clean["ids"] == forget_ids
        assert all(w >= c for w, c in zip(worst["values"], clean["values"]))

    again = {(r["model"], r["metric"]): r for r in battery()[0]}
    for (name, metric), record in again.items():
        role = name.split("@")[0]
        if not name.endswith("@perturb"):  # measured records (the worst case is computed from their items)
            assert ("reused_from" in record["details"]) == (role != "unlearned"), name
        assert record["value"] == by[(name, metric)]["value"], name


def test_durability_table_pairs_each_attack_with_its_clean_baseline_and_the_oracle():
    import pandas as pd

    from unlearn.reporting.durability import durability_table, worst_case as worst_attack

    job = {"job": "0", "method": "emso", "model_name": "m", "data": "d", "seed": 0, "knob": None, "strength": 1, "variant": ""}
    values = {"unlearned": 0.3, "oracle": 0.2, "target": 0.9,  # clean, full forget set
              "unlearned@int4": 0.35, "oracle@int4": 0.21, "target@int4": 0.88,
              "unlearned@relearn_forget:0": 0.25, "oracle@relearn_forget:0": 0.1, "target@relearn_forget:0": 0.9,
              "unlearned@relearn_forget:50": 0.8, "oracle@relearn_forget:50": 0.15, "target@relearn_forget:50": 0.9}
    records = pd.DataFrame([{**job, "role": role, "split": "forget", "metric": "MA", "value": v} for role, v in values.items()])
    table = durability_table(records).set_index("attack")
    assert table.loc["int4", "unlearned_clean"] == 0.3  # the clean evaluation
    assert table.loc["relearn_forget:50", "unlearned_clean"] == 0.25  # step 0 on the same held-back records
    assert table.loc["relearn_forget:50", "excess"] == pytest.approx(0.8 - 0.15)
    assert table.loc["int4", "target_attacked"] == 0.88
    worst = worst_attack(table.reset_index(), {"MA": "lower"})
    assert list(worst.worst_attack) == ["relearn_forget:50"]


def test_durability_worst_case_follows_each_metrics_declared_direction():
    """PrivLeak (better: zero in conf/report.yaml): INT4 leaves the unlearned model 30 points below the
    attacked oracle (it recognizes the forget set), relearning 5 above: INT4 is the worse attack, though
    its excess is the smaller number. MA (better: lower): the larger excess is the worse one."""
    import pandas as pd

    from unlearn.reporting.durability import durability_table, forget_directions, worst_case as worst_attack

    job = {"job": "0", "method": "ga", "model_name": "m", "data": "d", "seed": 0, "knob": None, "strength": 1, "variant": ""}
    values = {"PrivLeak": {"unlearned@int4": -30.0, "oracle@int4": 0.0, "unlearned@relearn_forget:10": 5.0,
                           "oracle@relearn_forget:10": 0.0},
              "MA": {"unlearned@int4": 0.3, "oracle@int4": 0.2, "unlearned@relearn_forget:10": 0.6,
                     "oracle@relearn_forget:10": 0.2}}
    records = pd.DataFrame([{**job, "role": role, "split": "forget", "metric": metric, "value": v}
                            for metric, by_role in values.items() for role, v in by_role.items()])
    directions = forget_directions(OmegaConf.load(CONF / "report.yaml").columns)
    assert directions["PrivLeak"] == "zero" and directions["MA"] == "lower"
    worst = worst_attack(durability_table(records), directions).set_index("metric")
    assert worst.loc["PrivLeak", "worst_attack"] == "int4" and worst.loc["PrivLeak", "excess"] == -30.0
    assert worst.loc["MA", "worst_attack"] == "relearn_forget:10"


def test_durability_excess_interval_is_over_each_seeds_own_excess():
    """Seeds whose oracle and unlearned model move together: the interval is over the paired per-seed
    excesses (0.30, 0.32, 0.34 here), not the spread of either side."""
    import pandas as pd
    from scipy.stats import t

    from unlearn.reporting.durability import durability_table

    rows = []
    for seed, (unlearned, oracle) in enumerate([(0.5, 0.2), (0.72, 0.4), (0.94, 0.6)]):
        job = {"job": f"{seed}", "method": "ga", "model_name": "m", "data": "d", "seed": seed, "knob": None, "strength": 1, "variant": ""}
        for role, v in {"unlearned": unlearned - 0.1, "unlearned@int4": unlearned, "oracle@int4": oracle, "target@int4": 0.9}.items():
            rows.append({**job, "role": role, "split": "forget", "metric": "MA", "value": v})
    row = durability_table(pd.DataFrame(rows)).set_index("attack").loc["int4"]
    assert row["n"] == 3 and row["excess"] == pytest.approx(0.32)
    assert row["excess_ci95"] == pytest.approx(t.ppf(0.975, 2) * 0.02 / 3 ** 0.5)
    assert row["recovered"] == pytest.approx(0.1) and row["recovered_ci95"] == pytest.approx(0.0)  # each seed: +0.1 over its own clean
    one_seed = durability_table(pd.DataFrame([r for r in rows if r["seed"] == 0])).set_index("attack").loc["int4"]
    assert one_seed["excess"] == pytest.approx(0.3) and math.isnan(one_seed["excess_ci95"])


def test_relearning_on_part_of_a_qa_forget_set_never_trains_on_the_question():
    from unlearn.data.collate import IGNORE, Collator, SequenceDataset

    qa = random_split(n=6, length=12, prefix=5)
    qa.label_starts = [5] * 6  # a QA record: the first 5 tokens are the question and chat template
    train, held = split_forget(qa, 0.5, seed=0)
    assert train.label_starts == held.label_starts == [5] * 3
    batch = Collator(0)([SequenceDataset(train)[i] for i in range(len(train))])  # what relearned_copies trains on
    assert (batch["labels"][:, :5] == IGNORE).all() and (batch["labels"][:, 5:] != IGNORE).all()


def test_attacked_records_are_keyed_by_every_file_that_builds_them():
    """The attack identity's code hash is the project's one mechanism over ATTACKED, which reaches the
    fine-tune's loss and trainer (relearning), the attack code and the metrics."""
    from unlearn.attacks.battery import Battery
    from unlearn.storage.code_hash import ATTACKED, PACKAGE, code_hash, source_files

    battery = Battery(OmegaConf.create({"seed": 0, "trainer": {"precision": "32"}}), {}, None, {}, {}, None, None)
    assert battery.identity({"name": "int4", "kind": "quantize", "bits": 4}, "int4")["code"] == code_hash(ATTACKED)
    files = {p.relative_to(PACKAGE).as_posix() for p in source_files(ATTACKED)}
    assert {"methods/losses.py", "stages/trainer.py", "methods/finetune.py", "attacks/quantize.py", "attacks/battery.py",
            "metrics/privacy.py", "stages/evaluate.py"} <= files
