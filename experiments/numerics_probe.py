"""Where do two machines' runs of the default part? Each stage of the default pipeline, up to the first
memorize epochs, fingerprinted bit for bit (unlearn/storage/fingerprint.py): the dequantized base model, the
text it samples (utility, validation, memorize's general text), the logits of one forward pass, and the
target after each memorize epoch, with that epoch's forget MA.

Run it once per numerics setting (another machine, or this one told to take another kernel path) and diff
the JSON lines; the first key that differs is where the runs part:

    python experiments/numerics_probe.py --epochs 2 > a.jsonl
    ATEN_CPU_CAPABILITY=default python experiments/numerics_probe.py --epochs 2 > b.jsonl
    python experiments/numerics_probe.py --epochs 2 --threads 1 > c.jsonl

Every run uses its own empty cache (a temporary folder), so nothing one setting built is read by another.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from hydra import compose, initialize_config_dir

    from unlearn.data.prompts import GENERAL_PROMPTS
    from unlearn.data.utility import base_model_samples, utility_texts
    from unlearn.methods.callbacks import MemorizationTarget, StepLimit
    from unlearn.models.load import load_model
    from unlearn.seeding import seed_everything
    from unlearn.stages.memorize import _finetune, _merge
    from unlearn.storage.fingerprint import texts_digest, weights_digest
    from unlearn.tracking.run_metadata import numerics
    from unlearn.workflows.run_pipeline import build_splits, encode_splits

    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cache = Path(tempfile.mkdtemp(prefix="numerics-probe-"))
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("run", overrides=[f"paths.cache_dir={cache}", "trainer.progress_bar=false", *args.overrides])

    def emit(stage, **values):
        print(json.dumps({"stage": stage, **values}), flush=True)

    emit("numerics", **numerics())
    seed_everything(cfg.seed)
    splits = build_splits(cfg.data, cfg.paths.data_root)
    base, tok = load_model(cfg.model, cache, corpus=splits.texts(), seed=cfg.seed)
    emit("base_weights", digest=weights_digest(base))
    tag = "probe"
    utility, validation = utility_texts(cfg.data.utility, cfg.paths.data_root, base, tok, cfg.seed, cache, tag)
    emit("utility_texts", digest=texts_digest(utility), validation=texts_digest(validation))
    general = base_model_samples(base, tok, cfg.memorize.general_samples, cfg.data.utility.max_new_tokens, cfg.seed + 7919, cache, tag,
                                 GENERAL_PROMPTS)
    emit("general_texts", digest=texts_digest(general))
    encoded = encode_splits(cfg, {n: splits.by_name(n) for n in ("forget", "retain", "holdout")}, base, tok)
    forget = encoded["forget"]
    ids = torch.tensor([forget.input_ids[0]])
    with torch.no_grad():
        logits = base(input_ids=ids).logits
    emit("base_forward_logits", digest=texts_digest([logits.numpy().tobytes().hex()]), first=float(logits[0, -1, 0]))
    from unlearn.data.encode import EncodedSplit

    general_split = EncodedSplit([f"general-{i}" for i in range(len(general))], [tok.encode(t, add_special_tokens=False) for t in general],
                                 [1] * len(general))
    train = _merge(forget, encoded["retain"], general_split)
    one = _finetune(base, tok, train, cfg.memorize, cfg.trainer, 1, cfg.seed, [StepLimit(1)])
    emit("target_after_step_1", digest=weights_digest(one))
    watch = MemorizationTarget(forget.input_ids, tok.pad_token_id, 2.0, label_starts=forget.label_starts)  # 2.0: never stops early
    target = _finetune(base, tok, train, cfg.memorize, cfg.trainer, args.epochs, cfg.seed, [watch])
    emit(f"target_after_{args.epochs}_epochs", digest=weights_digest(target), forget_ma=watch.ma)

if __name__ == "__main__":
    main()
