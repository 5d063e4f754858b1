"""GD: gradient difference (spec §2.2). Ascend the forget NLL, descend the retain NLL; each forget
batch is paired with a random retain batch (different on every data-parallel rank, see sampling.py)."""
from unlearn.methods.forget_retain import ForgetRetainModule
from unlearn.methods.losses import mean_nll


class GradientDifference(ForgetRetainModule):
    name = "gd"

    def loss(self, batches):
        forget, retain = batches["forget"], batches["retain"]
        forget_nll = mean_nll(self.logits(forget), forget["labels"], self.tokens("forget"))
        retain_nll = mean_nll(self.logits(retain), retain["labels"], self.tokens("retain"))
        loss = -self.cfg.gamma * forget_nll + self.cfg.alpha * retain_nll
        return loss, {"forget_nll": forget_nll.detach(), "retain_nll": retain_nll.detach()}
