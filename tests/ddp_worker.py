"""Run methods under 2-process CPU DDP (conf/trainer/ddp_cpu.yaml), or one process, and record, per rank and step,
which forget/retain items it trained on, its retain loss and PDU's λ.

Not a test module: tests/test_scale_invariance.py runs it as a script, because Lightning's DDP launcher starts the
second rank by re-running the command line. Several methods run one after the other in the same two
processes. Usage: python tests/ddp_worker.py OUT_DIR METHOD[:override,override...] ...
"""
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from tests.conftest import compose  # noqa: E402
from unlearn.data.collate import Collator, SequenceDataset  # noqa: E402
from unlearn.data.encode import encode_split  # noqa: E402
from unlearn.data.synthetic import synthetic_records  # noqa: E402
from unlearn.methods import get_method  # noqa: E402
from unlearn.methods.finetune import FineTune  # noqa: E402
from unlearn.ranks import is_worker_rank  # noqa: E402
from unlearn.models.tiny import build_tiny_model, train_tokenizer  # noqa: E402
from unlearn.stages.trainer import build_trainer  # noqa: E402

N_FORGET, N_RETAIN = 8, 32  # a retain set larger than the forget set: the forget set must still drive the epoch


class Recorder(pl.Callback):
    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        metrics = trainer.callback_metrics
        retain = batch.get("retain")  # the main set's rows are under "forget" (the fine-tune's "train" too)
        self.steps.append({
            "epoch": trainer.current_epoch,
            "forget": next(iter(batch.values()))["index"].tolist(),
            "retain": None if retain is None else (retain["true"] if "true" in retain else retain)["index"].tolist(),
            "retain_nll": float(metrics["train/retain_nll"]) if "train/retain_nll" in metrics else None,
            "lambda": module.dual.value if hasattr(module, "dual") else None,
            "loss": float(metrics["train/loss"]),
        })


class EpochChanges(pl.Callback):
    """Per epoch, how many weight entries moved inside and outside that epoch's EMSO selection."""

    def __init__(self):
        self.epochs = []

    def on_train_epoch_start(self, trainer, module):
        self._before = {n: p.detach().clone() for n, p in module.model.named_parameters()}

    def on_train_epoch_end(self, trainer, module):
        from unlearn.models.blocks import block_masks

        masks = block_masks(module.model, module.selected)
        inside = outside = 0
        for n, p in module.model.named_parameters():
            diff = p.detach() != self._before[n]
            allowed = masks.get(n, torch.zeros_like(diff))
            inside += int((diff & allowed).sum())
            outside += int((diff & ~allowed).sum())
        self.epochs.append({"blocks": module.history[-1]["blocks"], "inside": inside, "outside": outside})


def main(method: str, out_dir: Path, overrides: list[str]) -> None:
    trainer_choice = next((o for o in overrides if o.startswith("trainer=")), "trainer=ddp_cpu")
    extra = {o[1:].split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if o.startswith("+")}  # the worker's own options
    overrides = [o for o in overrides if not o.startswith(("trainer=", "+"))]
    tag = extra.get("tag", method)
    finetune = method == "finetune"  # the memorize stage's fit (target and oracle), under the same options
    cfg = compose(["method=ga" if finetune else f"method={method}", trainer_choice, "method.batch_size=2", "method.max_epochs=3",
                   "method.lr=1e-3", "method.early_stop.enabled=false", *overrides])
    records = synthetic_records(N_FORGET + N_RETAIN, seed=0)
    tokenizer = train_tokenizer([r.text for r in records], 300)
    model = build_tiny_model(compose(["model=tiny-gpt-neo"]).model, len(tokenizer), seed=0).train()
    max_length = int(extra["max_length"]) if "max_length" in extra else None  # equal lengths: token means agree
    encode = lambda recs: encode_split(recs, tokenizer, len(tokenizer), False, 4, max_length)  # noqa: E731
    datasets = {"forget": SequenceDataset(encode(records[:N_FORGET])), "retain": SequenceDataset(encode(records[N_FORGET:]))}
    if finetune:
        datasets = {"train": datasets["forget"]}
    method_cls = FineTune if finetune else get_method(method)
    module = method_cls(model, cfg.method, datasets, Collator(tokenizer.pad_token_id), seed=0)
    recorder, changes = Recorder(), EpochChanges()
    callbacks = [recorder] + ([changes] if method == "emso" else [])
    if "save_weights" in extra and not (out_dir / "init_weights.pt").exists() and not is_worker_rank():
        out_dir.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out_dir / "init_weights.pt")
    trainer = build_trainer(cfg.trainer, cfg.method.max_epochs, None, callbacks)
    trainer.fit(module)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"rank": trainer.global_rank, "world_size": trainer.world_size, "steps": recorder.steps,
              "torch_threads": torch.get_num_threads(), "epochs": changes.epochs, "global_step": trainer.global_step,
              "weights_sum": float(sum(p.detach().double().sum() for p in module.model.parameters()))}
    (out_dir / f"{tag}_rank{trainer.global_rank}.json").write_text(json.dumps(result))
    if "save_weights" in extra and trainer.global_rank == 0:
        torch.save({k: v.detach().clone() for k, v in module.model.state_dict().items()}, out_dir / f"{tag}_weights.pt")


if __name__ == "__main__":
    torch.set_num_threads(1)  # two ranks share the test machine's cores
    for spec in sys.argv[2:]:
        name, _, overrides = spec.partition(":")
        main(name, Path(sys.argv[1]), [o for o in overrides.split(",") if o])
