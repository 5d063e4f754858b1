"""Run `eval.attacks` after unlearning: each attack makes an attacked copy of each evaluated model
(unlearned, the retrain oracle as control, the target as ceiling), and the attack's metrics are measured
on it with the evaluation stage's own machinery.

Records keep the evaluation's shape, with the model named `<role>@<variant>` (`unlearned@int4`,
`oracle@relearn_forget:10`, `target@perturb`) and `details.attack` = {name, kind, variant, role, params}.
Every role sees the identical attack (same seed, same records, same steps), so attacked-unlearned minus
attacked-oracle separates what the unlearned model still holds from what any model learns from the attack.
Metrics that compare with the oracle (PrivLeak, forget quality) compare with the attacked oracle on the same
records: the oracle is attacked first, and its attacked model stays reachable while the other roles are measured.
A relearning attack on the forget set measures only the records it held back, whatever a metric's data path:
`EvalEnv.forget_ids` restricts metrics that read forget-set rows from data files (TOFU's `tofu_forget`).

The target's and the oracle's attacked records are the same in every job on one memorized target: they go
to the evaluation's reference cache under their attack's identity, and a later job that finds all of a
role's records there does not build that attacked model at all.
"""
import time
from dataclasses import dataclass, field, replace
from statistics import mean

from omegaconf import OmegaConf

from unlearn.attacks import perturb as perturbation, quantize as quantization, relearn as relearning
from unlearn.attacks.specs import LEAK_METRICS, resolve_all
from unlearn.errors import require
from unlearn.metrics import EvalContext, check_params
from unlearn.metrics.registry import NEEDS_ORACLE
from unlearn.stages.evaluate import entry_params, evaluate, metric_label
from unlearn.stages.reference_cache import FIXED_ROLES
from unlearn.stages.trainer import single_device, trainer_identity
from unlearn.storage.code_hash import ATTACKED, code_hash

KINDS = {"quantize": quantization.validate, "relearn": relearning.validate, "perturb": perturbation.validate}
ROLES = ("target", "unlearned", "oracle")
# Keys of an attack file that are not the attack's parameters.
NOT_PARAMS = ("name", "kind", "roles", "metrics")


def validate_attacks(cfg) -> None:
    """Every attack's kind, parameters and metrics, before any model is loaded."""
    for spec in resolve_all(cfg.eval):
        require(spec.get("kind") in KINDS, f"attack {spec['name']}: kind={spec.get('kind')!r}; use one of {sorted(KINDS)}")
        KINDS[spec["kind"]](spec)
        for role in spec.get("roles") or ROLES:
            require(role in ROLES, f"attack {spec['name']}: role {role!r}; use any of {ROLES}")
        for entry in _metrics(spec, cfg.eval):
            check_params(entry.name, entry_params(entry))
            if spec["kind"] == "perturb":
                require(entry.name in LEAK_METRICS, f"attack {spec['name']}: the worst case over prompts is defined for "
                        f"memorization metrics {LEAK_METRICS}, not {entry.name}")


def _metrics(spec: dict, eval_cfg):
    return OmegaConf.create(spec["metrics"]) if spec.get("metrics") else eval_cfg.metrics


@dataclass
class Battery:
    """What every attack needs from the run: clean models by role and the evaluation's inputs."""
    cfg: object
    models: dict
    tokenizer: object
    encoded: dict
    texts: dict
    splits: object  # unlearn.data.records.Splits (records, for re-encoding QA prompts)
    env: object
    reference_cache: object = None
    records: list = field(default_factory=list)
    per_item: dict = field(default_factory=dict)
    # The current attack's attacked oracle contexts by name (`oracle@relearn_forget:10`), with their models.
    attacked_oracles: dict = field(default_factory=dict)

    def eval_cfg(self, spec):
        eval_cfg = OmegaConf.create(OmegaConf.to_container(self.cfg.eval, resolve=True))
        eval_cfg.metrics = _metrics(spec, self.cfg.eval)
        return eval_cfg

    def identity(self, spec: dict, variant: str, **extra) -> dict:
        params = {k: v for k, v in spec.items() if k not in NOT_PARAMS}
        return {"name": spec["name"], "kind": spec["kind"], "variant": variant, "params": params, "seed": self.cfg.seed,
                "trainer": trainer_identity(single_device(self.cfg.trainer)), "code": code_hash(ATTACKED), **extra}

    def cache_for(self, role: str, identity: dict):
        if self.reference_cache is None or role not in FIXED_ROLES:
            return None
        return AttackCache(self.reference_cache, role, identity)

    def measure(self, role: str, model, splits: dict, eval_cfg, identity: dict, name: str, forget_ids=None):
        """Records and per-item values of one attacked model (`model` None = all cached). `forget_ids`: the
        only forget records its metrics may see (a relearning attack's held-back part)."""
        oracle = f"oracle@{name.partition('@')[2]}"  # the oracle under the same attack variant
        # The clean models stay reachable (ctx.original); the oracle that metrics compare with is the attacked one.
        env = replace(self.env, roles=dict(self.env.roles), oracle_role=oracle, forget_ids=forget_ids)
        ctx = EvalContext(model, self.tokenizer, splits, self.texts, eval_cfg.batch_size, name, env)
        if role == "oracle" and model is not None:
            self.attacked_oracles[name] = ctx
        elif oracle in self.attacked_oracles:
            env.roles[oracle] = self.attacked_oracles[oracle]
        env.roles[name] = ctx
        records, items = evaluate({name: ctx}, [name], eval_cfg, reference_cache=self.cache_for(role, identity))
        public = {k: identity[k] for k in ("name", "kind", "variant", "params")} | {"role": role}
        public.update({k: v for k, v in identity.items() if k in ("trained_on", "measured_on")})
        for r in records:
            r["details"]["attack"] = public
        return records, items.get(name, {})

    def keep(self, records, name, items):
        self.records.extend(records)
        if items:
            self.per_item[name] = items

    def cached(self, role, identity, eval_cfg) -> bool:
        cache = self.cache_for(role, identity)
        return cache is not None and cache.has_all(eval_cfg)

    def skip_build(self, spec, role, identity, eval_cfg) -> bool:
        """Whether this role's attacked model need not be built: all its records are cached, and (for the
        oracle) no other role's metric compares with it."""
        if not self.cached(role, identity, eval_cfg):
            return False
        others = [r for r in spec.get("roles") or ROLES if r in self.models and r != "oracle"]
        return role != "oracle" or not (others and any(e.name in NEEDS_ORACLE for e in eval_cfg.metrics))

    # --- the three kinds ---------------------------------------------------------------------------
    def quantize(self, spec, role, model):
        eval_cfg = self.eval_cfg(spec)
        identity = self.identity(spec, spec["name"])
        attacked = None if self.skip_build(spec, role, identity, eval_cfg) else \
            quantization.quantized_copy(model, spec["bits"], spec.get("optimizer", "rtn"), spec.get("exclude") or ())
        name = f"{role}@{spec['name']}"
        records, items = self.measure(role, attacked, self.encoded, eval_cfg, identity, name)
        self.keep(records, name, items)

    def relearn(self, spec, role, model):
        eval_cfg = self.eval_cfg(spec)
        splits = dict(self.encoded)
        forget_ids = None
        if spec["data"] == "forget":
            train, held = relearning.split_forget(self.encoded["forget"], spec["fraction"], self.cfg.seed)
            splits["forget"], forget_ids = held, frozenset(held.record_ids)
            steps = spec["steps"]
        else:
            train = self.encoded[spec["data"]]
            require(len(train), f"attack {spec['name']}: the {spec['data']} split is empty; set data.n_{spec['data']}")
            steps = [s for s in spec["steps"] if s > 0]  # step 0 on the full forget set = the clean record
        where = {"trained_on": f"{spec['data']}: {list(train.record_ids)}", "measured_on": list(splits["forget"].record_ids)}
        identities = {s: self.identity(spec, f"{spec['name']}:{s}", **where) for s in steps}
        todo = [s for s in steps if not self.skip_build(spec, role, identities[s], eval_cfg)]
        copies = relearning.relearned_copies(model, self.tokenizer.pad_token_id, train, todo, spec, single_device(self.cfg.trainer), self.cfg.seed) if todo else {}
        for s in steps:
            name = f"{role}@{spec['name']}:{s}"
            records, items = self.measure(role, copies.get(s), splits, eval_cfg, identities[s], name, forget_ids)
            self.keep(records, name, items)

    def perturb(self, spec, role, model):
        """Per variant, then the worst case (max) per item and metric, over the variants and the clean prompt."""
        eval_cfg = self.eval_cfg(spec)
        variants = {"original": self.encoded["forget"]} | {v: self.variant_split(v) for v in spec["variants"]}
        results = {}
        for v, forget in variants.items():
            identity = self.identity(spec, f"{spec['name']}:{v}")
            name = f"{role}@{spec['name']}:{v}"
            records, items = self.measure(role, model, {**self.encoded, "forget": forget}, eval_cfg, identity, name)
            results[v] = items
            if v == "original":  # the clean prompt under the attack's metrics: the baseline of the worst case
                self.keep(records, name, items)
        name = f"{role}@{spec['name']}"
        records, worst_items = worst_case(results, self.identity(spec, spec["name"]) | {"role": role}, name, eval_cfg)
        self.keep(records, name, worst_items)

    def variant_split(self, variant: str):
        forget = self.encoded["forget"]
        if variant == "paraphrase":
            from unlearn.data.encode import encode_split

            data = self.cfg.data
            records = perturbation.paraphrased_records(self.splits.by_name("forget"), perturbation.tofu_paraphrases(data, self.cfg.paths.data_root))
            vocab = next(iter(self.models.values())).get_input_embeddings().num_embeddings
            return encode_split(records, self.tokenizer, vocab, False, self.cfg.eval.prefix_len, data.get("max_length"),
                                data.get("use_chat_template", True))
        vocab = next(iter(self.models.values())).get_input_embeddings().num_embeddings
        return perturbation.token_variant(forget, variant, vocab, self.cfg.seed, self.tokenizer.all_special_ids)


def worst_case(results: dict[str, dict], identity: dict, name: str, eval_cfg) -> tuple[list[dict], dict]:
    """One record per (split, metric): the mean over items of each item's maximum over the variants."""
    records, items_out = [], {}
    for entry in eval_cfg.metrics:
        label = metric_label(entry)
        for split in entry.splits:
            per_variant = {v: items[split][label] for v, items in results.items() if label in items.get(split, {})}
            if not per_variant:
                continue
            ids = next(iter(per_variant.values()))["ids"]
            require(all(p["ids"] == ids for p in per_variant.values()), f"perturb attack: variants of {split} lost the record ids")
            columns = [p["values"] for p in per_variant.values()]
            worst = [max(vals) for vals in zip(*columns)]
            argmax = [list(per_variant)[col.index(max(col))] for col in map(list, zip(*columns))]
            public = {k: identity[k] for k in ("name", "kind", "variant", "params", "role")}
            records.append({"model": name, "split": split, "metric": label, "value": mean(worst), "n": len(worst),
                            "details": {"attack": public, "aggregate": "per-item max over prompt variants",
                                        "per_variant": {v: mean(c) for v, c in zip(per_variant, columns)},
                                        "worst_variant": argmax}})
            items_out.setdefault(split, {})[label] = {"ids": ids, "values": worst}
    return records, items_out


class AttackCache:
    """The reference cache, keyed by the base role and the attack's identity (`target@int4` reuses only
    records of the target under exactly this attack, attack code included)."""

    def __init__(self, cache, role: str, identity: dict):
        self.cache, self.role, self.identity = cache, role, identity
        self.folder = cache.folder

    def _config(self, config):
        return {**config, "attack": self.identity}

    def get(self, name, split, label, config):
        return self.cache.get(self.role, split, label, self._config(config))

    def put(self, name, split, label, config, record, items, generations):
        self.cache.put(self.role, split, label, self._config(config), record, items, generations)

    def has_all(self, eval_cfg) -> bool:
        from unlearn.stages.evaluate import _config, eval_settings

        settings = eval_settings(eval_cfg)
        return all(self.get(None, s, metric_label(e), _config(e, settings)) is not None for e in eval_cfg.metrics for s in e.splits)


def run_attacks(cfg, models: dict, tokenizer, encoded: dict, texts: dict, splits, env, reference_cache=None):
    """(records, per_item) of every attack in `cfg.eval.attacks` on every evaluated role it names."""
    battery = Battery(cfg, models, tokenizer, encoded, texts, splits, env, reference_cache)
    for spec in resolve_all(cfg.eval):
        battery.attacked_oracles.clear()  # the previous attack's oracle copies are no longer compared with
        # The oracle first: the other roles' oracle-relative metrics compare with its attacked model.
        for role in sorted(spec.get("roles") or ROLES, key=lambda r: r != "oracle"):
            if role in models:
                print(f"[unlearn] attack {spec['name']} on {role}")
                start = time.perf_counter()
                getattr(battery, spec["kind"])(spec, role, models[role])
                # Per attack and role, so a sweep's log shows where the battery's time goes.
                print(f"[unlearn] attack {spec['name']} on {role}: {time.perf_counter() - start:.1f}s")
    return battery.records, battery.per_item
