"""EMSO: entropy maximization with selective optimization (spec §2.9).

At the start of every epoch (or once / every n steps) one random forget batch gives g_NLL and g_EM;
the k blocks with the most negative contrastive score are the only weights that train. Gradients
outside the selected slices are zeroed after backward, Adam state is reset at each reselection and
weight decay is 0, so every unselected weight stays bit-identical to the target model.

The ablation variants of EMSO Table 2 are options, not copies:
  selection=magnitude  -> "w/o Dir"      selection=random -> "Random & EM"
  selection=full       -> "Full & EM"    objective=nll_ascent -> "Select & NLL"
"""
import torch

from unlearn.errors import require
from unlearn.methods.base import UnlearningModule
from unlearn.methods.emso_selection import block_scores, select_blocks
from unlearn.methods.losses import entropy_loss, mean_nll
from unlearn.models.blocks import block_masks, count_blocks, enumerate_blocks

SELECTIONS = ("contrastive", "magnitude", "random", "full")
OBJECTIVES = ("em", "nll_ascent")
RESELECT = ("epoch", "once", "n_steps")


class EMSO(UnlearningModule):
    name = "emso"

    def __init__(self, model, cfg, datasets, collator, seed: int = 0):
        super().__init__(model, cfg, datasets, collator, seed)
        self.blocks = enumerate_blocks(model)
        require(cfg.k <= len(self.blocks), f"method.k={cfg.k} but the model has only {len(self.blocks)} candidate blocks")
        self.candidate_params = sorted({b.param for b in self.blocks})
        params = dict(model.named_parameters())
        for name, p in params.items():
            p.requires_grad_(name in self.candidate_params)
        self.masks: dict[str, torch.Tensor] = {}
        self.selected: list = []
        self._generator = torch.Generator().manual_seed(seed)

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        require(cfg.k >= 1, f"method.k must be >= 1 (got {cfg.k})")
        require(cfg.selection in SELECTIONS, f"method.selection={cfg.selection!r}; use one of {SELECTIONS}")
        require(cfg.objective in OBJECTIVES, f"method.objective={cfg.objective!r}; use one of {OBJECTIVES}")
        require(cfg.reselect_every in RESELECT, f"method.reselect_every={cfg.reselect_every!r}; use one of {RESELECT}")
        require(cfg.get("weight_decay", 0.0) == 0.0,
                "EMSO needs method.weight_decay=0: decay would move unselected weights, which must stay identical")

    @classmethod
    def validate_for_model(cls, cfg, model_config):
        available = count_blocks(model_config)
        require(cfg.k <= available, f"method.k={cfg.k} but the model has only {available} candidate blocks")

    def objective(self, logits, labels):
        if self.cfg.objective == "em":
            return entropy_loss(logits, labels)
        return -mean_nll(logits, labels)

    def loss(self, batches):
        batch = batches["forget"]
        logits = self.logits(batch)
        loss = self.objective(logits, batch["labels"])
        return loss, {"forget_nll": mean_nll(logits.detach(), batch["labels"])}

    # --- selection -------------------------------------------------------------------------------------
    def _selection_batch(self) -> dict:
        data = self.datasets["forget"]
        rows = torch.randperm(len(data), generator=self._generator)[: self.cfg.batch_size].tolist()
        batch = self.collator([data[i] for i in rows])
        return {k: v.to(self.device) for k, v in batch.items()}

    def gradients(self, batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """g_NLL and g_EM on one batch, from one forward pass, for every candidate parameter."""
        params = dict(self.model.named_parameters())
        names = self.candidate_params
        tensors = [params[n] for n in names]
        for t in tensors:  # select() narrows requires_grad to the chosen blocks; scoring needs them all
            t.requires_grad_(True)
        was_training = self.model.training
        self.model.train()  # dropout is 0 in the configs we support; train mode matches the update
        with torch.enable_grad():
            logits = self.logits(batch)
            nll = mean_nll(logits, batch["labels"])
            em = entropy_loss(logits, batch["labels"])
            g_nll = torch.autograd.grad(nll, tensors, retain_graph=True)
            g_em = torch.autograd.grad(em, tensors)
        self.model.train(was_training)
        return dict(zip(names, g_nll)), dict(zip(names, g_em))

    def select(self) -> None:
        cfg = self.cfg
        if cfg.selection == "full":
            chosen, scores = self.blocks, None
        else:
            g_nll, g_em = self.gradients(self._selection_batch())
            scores = block_scores(self.blocks, g_nll, g_em, direction=cfg.selection == "contrastive")
            chosen = select_blocks(self.blocks, scores, cfg.k, cfg.selection, self._generator)
        self.selected = chosen
        self.masks = {} if cfg.selection == "full" else block_masks(self.model, chosen)
        params = dict(self.model.named_parameters())
        touched = {b.param for b in chosen}
        for name in self.candidate_params:
            params[name].requires_grad_(name in touched)
        # Adam moments of a previous selection would keep moving those entries: start fresh.
        if self._trainer is not None:
            for opt in self.trainer.optimizers:
                opt.state.clear()
        record = {
            "epoch": self.current_epoch if self._trainer is not None else 0,
            "step": self.global_step if self._trainer is not None else 0,
            "blocks": [b.name for b in chosen] if cfg.selection != "full" else ["all"],
        }
        if scores is not None:
            index = {b.name: i for i, b in enumerate(self.blocks)}
            record["scores"] = [float(scores[index[b.name]]) for b in chosen]
        self.history.append(record)
        print(f"[emso] epoch {record['epoch']}: selected {', '.join(record['blocks'])}")

    # --- Lightning hooks -------------------------------------------------------------------------------
    def configure_optimizers(self):
        # Every candidate goes in the optimizer; AdamW skips parameters whose grad is None (not selected).
        for name, p in self.model.named_parameters():
            p.requires_grad_(name in self.candidate_params)
        optimizer = super().configure_optimizers()
        return optimizer

    def on_train_epoch_start(self):
        if self.cfg.reselect_every == "epoch" or not self.selected:
            self.select()

    def on_train_batch_start(self, batch, batch_idx):
        every = self.cfg.get("reselect_steps", 0)
        if self.cfg.reselect_every == "n_steps" and every and self.global_step > 0 and self.global_step % every == 0:
            self.select()

    def on_after_backward(self):
        params = dict(self.model.named_parameters())
        for name, mask in self.masks.items():
            grad = params[name].grad
            if grad is not None:
                grad.mul_(mask)
