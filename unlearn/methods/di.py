"""DI / UNDIAL: deliberate imagination (spec §2.4). The student (the model being unlearned) is
distilled towards a frozen teacher (a copy of the target) whose true-token logit is lowered by γ, so
the memorized token loses mass while the rest of the distribution is kept. No retain set."""
from unlearn.methods.base import UnlearningModule
from unlearn.methods.losses import deliberate_imagination_loss, mean_nll
from unlearn.methods.method import require_at_least, require_choice
from unlearn.methods.positions import LABEL_OR_ALL



class DeliberateImagination(UnlearningModule):
    name = "di"
    needs_reference = True

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        require_at_least(cfg, "gamma", 0)
        require_choice(cfg, "positions", LABEL_OR_ALL)

    def loss(self, batches):
        batch = batches["forget"]
        logits = self.logits(batch)
        loss = deliberate_imagination_loss(logits, self.reference_logits(batch), batch["input_ids"], batch["labels"],
                                           self.cfg.gamma, self.cfg.positions, self.tokens("forget"))
        return loss, {"forget_nll": mean_nll(logits.detach(), batch["labels"])}
