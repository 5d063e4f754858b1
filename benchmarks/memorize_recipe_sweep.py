"""Which memorize recipe reaches forget MA >= 0.9 reliably on the default run? Trains only the target
(forget + retain + general text, as the memorize stage does) for a recipe x seed x threads grid and
appends one JSON line per fine-tune: epochs to the threshold, MA per check, losses, utility and holdout
perplexity, wall and process-CPU seconds.

    python benchmarks/memorize_recipe_sweep.py --recipes lr3e-4 lr5e-4_wu_clip --seeds 0 1 2 3 4 --threads 2 \\
        --out experiments/memorize_recipe_sweep.jsonl [hydra overrides ...]

A recipe is a named set of `memorize.*` overrides (RECIPES below); anything after the flags is a Hydra
override for every job (model=..., data=...). Seeds change the data order and the general-text sample,
threads change CPU reduction order: the numerics that decided the outcome in issue #9.
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Candidate recipes: overrides on conf/memorize/default.yaml. `precision` / `gradient_clip_val` = the
# memorize fine-tune's own trainer settings.
RECIPES = {
    "lr1e-3": {"lr": 1e-3, "warmup_steps": 0, "gradient_clip_val": None, "precision": "32-true"},
    "lr3e-4": {"lr": 3e-4, "warmup_steps": 0, "gradient_clip_val": None, "precision": "32-true"},
    "lr5e-4_wu_clip": {"lr": 5e-4, "warmup_steps": 4, "gradient_clip_val": 1.0, "precision": "32-true"},
    "lr1e-3_wu_clip": {"lr": 1e-3, "warmup_steps": 4, "gradient_clip_val": 1.0, "precision": "32-true"},
    "lr5e-4_wu_clip_bf16": {"lr": 5e-4, "warmup_steps": 4, "gradient_clip_val": 1.0, "precision": "bf16-mixed"},
    "lr5e-4_wu_clip_frozen": {"lr": 5e-4, "warmup_steps": 4, "gradient_clip_val": 1.0, "precision": "32-true",
                              "train_embeddings": False},
    "lr1e-3_wu_clip_frozen": {"lr": 1e-3, "warmup_steps": 4, "gradient_clip_val": 1.0, "precision": "32-true",
                              "train_embeddings": False},
    "lr1e-3_wu_clip_frozen_gen8": {"lr": 1e-3, "warmup_steps": 4, "gradient_clip_val": 1.0, "precision": "32-true",
                                   "train_embeddings": False, "general_samples": 8},
    "lr5e-4_wu_clip_frozen_gen8": {"lr": 5e-4, "warmup_steps": 4, "gradient_clip_val": 1.0, "precision": "32-true",
                                   "train_embeddings": False, "general_samples": 8},
    "lr5e-4_wu_clip_frozen_gen8_b4": {"lr": 5e-4, "warmup_steps": 4, "gradient_clip_val": 1.0, "precision": "32-true",
                                      "train_embeddings": False, "general_samples": 8, "batch_size": 4},
    "lr3e-4_wu_clip_frozen_gen8_b4": {"lr": 3e-4, "warmup_steps": 4, "gradient_clip_val": 1.0, "precision": "32-true",
                                      "train_embeddings": False, "general_samples": 8, "batch_size": 4},
    "lr5e-4_wu_clip_gen8": {"lr": 5e-4, "warmup_steps": 4, "gradient_clip_val": 1.0, "precision": "32-true",
                            "general_samples": 8},
}


def prepare(cfg, n_general: int):
    """Base model, encoded splits, utility and general text exactly as the pipeline builds them."""
    from unlearn.data.encode import EncodedSplit
    from unlearn.data.prompts import GENERAL_PROMPTS
    from unlearn.data.utility import base_model_samples, utility_texts
    from unlearn.tracking.loggers import to_container
    from unlearn.models.load import load_model
    from unlearn.workflows.run_pipeline import build_splits, encode_splits

    cache_dir = Path(cfg.paths.cache_dir).expanduser()
    splits = build_splits(cfg.data, cfg.paths.data_root)
    base, tok = load_model(cfg.model, cache_dir, corpus=splits.texts(), seed=cfg.seed)
    encoded = encode_splits(cfg, {n: splits.by_name(n) for n in ("forget", "retain", "holdout")}, base, tok)
    tag = json.dumps(to_container(cfg.model), sort_keys=True)
    utility, _ = utility_texts(cfg.data.utility, cfg.paths.data_root, base, tok, cfg.seed, cache_dir, tag)
    general = base_model_samples(base, tok, n_general, cfg.data.utility.get("max_new_tokens", 40), cfg.seed + 7919, cache_dir, tag,
                                 GENERAL_PROMPTS) if n_general else []
    general = EncodedSplit([f"general-{i}" for i in range(len(general))], [tok.encode(t, add_special_tokens=False) for t in general],
                           [1] * len(general))
    return base, tok, encoded, [tok.encode(t, add_special_tokens=False) for t in utility], general


for _settings in RECIPES.values():
    _settings.setdefault("check_every_n_steps", 1)  # stop at the step that crosses the threshold


def one(cfg, recipe: str, seed: int, threads: int) -> dict:
    import torch
    from omegaconf import OmegaConf

    from unlearn.methods.callbacks import DivergenceGuard, MemorizationTarget, perplexity
    from unlearn.seeding import seed_everything
    from unlearn.stages.memorize import _finetune, _merge

    torch.set_num_threads(threads)
    mem = OmegaConf.merge(cfg.memorize, RECIPES[recipe])
    base, tok, enc, utility, general = prepare(cfg, mem.get("general_samples", 0))  # the recipe's own mix size
    seed_everything(seed)
    forget, retain = enc["forget"], enc["retain"]
    extra = [general] if len(general) else []
    watch = MemorizationTarget(forget.input_ids, tok.pad_token_id, mem.ma_threshold, every_n_steps=mem.get("check_every_n_steps"),
                               label_starts=forget.label_starts)
    guard = DivergenceGuard(mem.get("divergence_window", 4), mem.get("divergence_ratio", 2.0))
    wall, cpu = time.perf_counter(), time.process_time()
    target = _finetune(base, tok, _merge(forget, retain, *extra), mem, cfg.trainer, mem.max_epochs, seed, [watch, guard])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "recipe": recipe, "seed": seed, "threads": threads, "model": cfg.model.name, "settings": RECIPES[recipe],
        "reached": watch.ma >= mem.ma_threshold, "ma": round(watch.ma, 4), "epochs": watch.epochs,
        "ma_history": watch.history, "diverged": guard.reason, "losses": [round(x, 4) for x in guard.losses],
        "utility_ppl_base": round(perplexity(base, utility, tok.pad_token_id), 2),
        "utility_ppl": round(perplexity(target, utility, tok.pad_token_id), 2),
        "holdout_ppl": round(perplexity(target, enc["holdout"].input_ids, tok.pad_token_id), 2),
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_avg": os.getloadavg()[0],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--threads", nargs="+", type=int, default=[2])
    parser.add_argument("--out", default="experiments/memorize_recipe_sweep.jsonl")
    args, overrides = parser.parse_known_args()
    from tests.conftest import compose

    done = set()
    out = Path(args.out)
    if out.is_file():  # resumable: a grid point already in the file is skipped
        done = {(r["recipe"], r["seed"], r["threads"], r["model"]) for r in map(json.loads, out.read_text().splitlines())}
    # Seeds outermost: a grid cut short still compares every recipe on the first seeds.
    for seed in args.seeds:
        for threads in args.threads:
            for recipe in args.recipes:
                cfg = compose([f"seed={seed}", "trainer.progress_bar=false", *overrides])
                if (recipe, seed, threads, cfg.model.name) in done:
                    continue
                row = one(cfg, recipe, seed, threads)
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{recipe:<26} seed {seed} threads {threads}: MA {row['ma']:.3f} after {row['epochs']} epochs "
                      f"({'reached' if row['reached'] else 'NOT reached'}{', diverged: ' + row['diverged'] if row['diverged'] else ''}), "
                      f"utility PPL {row['utility_ppl_base']} -> {row['utility_ppl']}, holdout PPL {row['holdout_ppl']}, "
                      f"{row['wall_s']} s wall, {row['cpu_s']} s CPU", flush=True)


if __name__ == "__main__":
    main()
