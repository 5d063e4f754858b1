"""KL: gradient ascent on the forget set, held near the target on the retain set by
KL(P_ref‖P_θ) against a frozen copy of the target (spec §2.3)."""
from unlearn.methods.forget_retain import ForgetRetainModule
from unlearn.methods.losses import kl_to_reference, mean_nll
from unlearn.methods.method import require_choice
from unlearn.methods.positions import LABEL_OR_ALL



class RetainKL(ForgetRetainModule):
    name = "kl"
    needs_reference = True

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        require_choice(cfg, "positions", LABEL_OR_ALL)

    def loss(self, batches):
        forget, retain = batches["forget"], batches["retain"]
        forget_nll = mean_nll(self.logits(forget), forget["labels"], self.tokens("forget"))
        kl = kl_to_reference(self.logits(retain), self.reference_logits(retain), retain["labels"], self.cfg.positions,
                             self.tokens("retain"))
        loss = -self.cfg.gamma * forget_nll + self.cfg.alpha * kl
        return loss, {"forget_nll": forget_nll.detach(), "retain_kl": kl.detach()}
