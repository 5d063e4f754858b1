"""ME+GD: push every forget next-token distribution to uniform, keep the retain NLL (Closer-Look,
spec §2.7). L = c_f·mean ME(forget) + c_r·NLL(retain)."""
from unlearn.methods.base import UnlearningModule
from unlearn.methods.losses import masked_mean, mean_nll, shift, uniform_divergence
from unlearn.methods.method import require_at_least, require_choice
from unlearn.methods.positions import POSITIONS, position_mask

VARIANTS = ("kl_u_p", "neg_entropy")


def max_entropy_loss(logits, batch: dict, variant: str, positions: str, tokens: float | None = None):
    """The ME term averaged over the chosen next-token positions of a forget batch."""
    logits, _ = shift(logits, batch["labels"])
    return masked_mean(uniform_divergence(logits, variant), position_mask(batch, positions), tokens)


class MaxEntropyGD(UnlearningModule):
    name = "me_gd"
    needs_retain = True
    data_keys = ("forget", "retain")

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        require_at_least(cfg, "forget_coeff", 0)
        require_at_least(cfg, "retain_coeff", 0)
        require_choice(cfg, "variant", VARIANTS)
        require_choice(cfg, "positions", POSITIONS)

    def loss(self, batches):
        forget, retain = batches["forget"], batches["retain"]
        forget_logits = self.logits(forget)
        me = max_entropy_loss(forget_logits, forget, self.cfg.variant, self.cfg.positions, self.tokens("forget", self.cfg.positions))
        retain_nll = mean_nll(self.logits(retain), retain["labels"], self.tokens("retain"))
        loss = self.cfg.forget_coeff * me + self.cfg.retain_coeff * retain_nll
        return loss, {"forget_me": me.detach(), "retain_nll": retain_nll.detach(),
                      "forget_nll": mean_nll(forget_logits.detach(), forget["labels"])}
