"""PDU: constrained entropic unlearning, primal-dual (spec §2.10).

  min_θ L_fgt(θ)  s.t.  L_rtn(θ) ≤ ε,   Lagrangian  γ·L_fgt + λ·(L_rtn − ε)

L_fgt is the logit-margin flattening mean (max_k z − mean_k z)², L_rtn the retain token-mean NLL.
The optimizer takes the primal step; λ takes a projected ascent step after each step (or epoch).
Under data parallelism the retain loss is averaged over ranks before the dual step, so every rank
holds the same λ. ε is absolute, or relative: (1 + a)·L_rtn(θ_o) measured on the retain set before
the first step.
"""
import torch

from unlearn.methods.base import UnlearningModule
from unlearn.methods.losses import logit_margin_loss, mean_nll, token_nll, valid
from unlearn.methods.method import require_at_least, require_choice
from unlearn.methods.pdu_dual import DualAscent
from unlearn.methods.positions import LABEL_OR_ALL

EPS_MODES = ("absolute", "relative")
UPDATE_UPON = ("step", "epoch")
UPDATE_PER = ("micro_batch", "optimizer_step")


class PrimalDual(UnlearningModule):
    name = "pdu"
    needs_retain = True
    data_keys = ("forget", "retain")

    def __init__(self, model, cfg, datasets, collator, seed: int = 0):
        super().__init__(model, cfg, datasets, collator, seed)
        self.dual = DualAscent(float(cfg.dual_init), float(cfg.dual_step_size), int(cfg.dual_warmup_epochs))
        self.eps = float(cfg.eps) if cfg.eps_mode == "absolute" else None
        self._retain_losses: list[torch.Tensor] = []
        self._last_step = 0

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        require_choice(cfg, "eps_mode", EPS_MODES)
        if cfg.eps_mode == "absolute":
            require_at_least(cfg, "eps", 0, strict=True)
        else:
            require_at_least(cfg, "retain_tolerance", 0, strict=True)
        require_at_least(cfg, "gamma", 0)
        require_at_least(cfg, "dual_init", 0)
        require_at_least(cfg, "dual_step_size", 0)
        require_at_least(cfg, "dual_warmup_epochs", 0)
        require_choice(cfg, "dual_update_upon", UPDATE_UPON)
        require_choice(cfg, "dual_update_per", UPDATE_PER)
        require_choice(cfg, "positions", LABEL_OR_ALL)

    # --- losses ----------------------------------------------------------------------------------------
    def loss(self, batches):
        forget, retain = batches["forget"], batches["retain"]
        forget_loss = logit_margin_loss(self.logits(forget), forget["labels"], self.cfg.positions, self.tokens("forget"))
        # With the step's token count as denominator, the mean over ranks and micro-batches that the dual step takes
        # is the step's token-mean retain NLL, however the step is split.
        retain_nll = mean_nll(self.logits(retain), retain["labels"], self.tokens("retain"))
        loss = self.cfg.gamma * forget_loss + self.dual.value * (retain_nll - self.eps)
        self._retain_losses.append(retain_nll.detach())
        # λ is logged every step: it is the method's state, and where the constraint bites shows in it.
        return loss, {"forget_margin": forget_loss.detach(), "retain_nll": retain_nll.detach(), "lambda": self.dual.value,
                      "eps": self.eps}

    @torch.no_grad()
    def retain_set_nll(self) -> float:
        """Token-mean NLL over the whole retain set, each rank scoring its share, summed over ranks."""
        data = self.datasets["retain"]
        rank, world = self.global_rank, self.trainer.world_size
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        was_training = self.model.training
        self.model.eval()
        rows = list(range(rank, len(data), world))
        for start in range(0, len(rows), self.cfg.batch_size):
            batch = self.collator([data[i] for i in rows[start:start + self.cfg.batch_size]])
            batch = {k: v.to(self.device) for k, v in batch.items()}
            total[0] += token_nll(self.logits(batch), batch["labels"]).sum().double()
            total[1] += valid(batch["labels"]).sum()
        self.model.train(was_training)
        total = self.trainer.strategy.reduce(total, reduce_op="sum")
        return float(total[0] / total[1].clamp(min=1))

    # --- the dual step ---------------------------------------------------------------------------------
    def dual_step(self, retain_loss: torch.Tensor) -> None:
        # The mean over ranks: each rank saw different retain items, and λ must be the same everywhere.
        mean = float(self.trainer.strategy.reduce(retain_loss.detach().float(), reduce_op="mean"))
        self.dual.update(mean, self.eps, self.current_epoch)

    def on_train_start(self):
        if self.eps is None:
            initial = self.retain_set_nll()
            self.eps = (1.0 + self.cfg.retain_tolerance) * initial
            self.history.append({"epoch": -1, "retain_nll_initial": initial, "eps": self.eps})

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.cfg.dual_update_upon != "step":
            self._retain_losses.clear()
            return
        if self.cfg.dual_update_per == "optimizer_step" and self.global_step == self._last_step:
            return  # still accumulating gradients: wait for the optimizer step
        self._last_step = self.global_step
        self.dual_step(torch.stack(self._retain_losses).mean())
        self._retain_losses.clear()

    def on_train_epoch_end(self):
        if self.cfg.dual_update_upon == "epoch":
            retain = self.retain_set_nll()
            self.dual.update(retain, self.eps, self.current_epoch)
        self.history.append({"epoch": self.current_epoch, "lambda": self.dual.value, "eps": self.eps})

    def method_state(self):
        return {"lambda": self.dual.value, "eps": self.eps, "last_step": self._last_step}

    def load_method_state(self, state):
        self.dual.value = state.get("lambda", self.dual.value)
        self.eps = state.get("eps", self.eps)
        self._last_step = state.get("last_step", self._last_step)
