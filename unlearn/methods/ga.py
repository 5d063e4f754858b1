"""GA: gradient ascent on the forget set (spec §2.1). Unbounded, so it collapses; the baseline to beat."""
from unlearn.methods.base import UnlearningModule
from unlearn.methods.losses import mean_nll


class GradientAscent(UnlearningModule):
    name = "ga"

    def loss(self, batches):
        batch = batches["forget"]
        nll = mean_nll(self.logits(batch), batch["labels"], self.tokens("forget"))
        return -nll, {"forget_nll": nll.detach()}
