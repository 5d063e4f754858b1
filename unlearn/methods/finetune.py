"""Plain NLL fine-tuning: how the memorize stage makes the target model and the retrain oracle."""
from unlearn.methods.base import UnlearningModule
from unlearn.methods.losses import mean_nll


class FineTune(UnlearningModule):
    name = "finetune"
    data_keys = ("train",)

    def loss(self, batches):
        batch = batches["train"]
        nll = mean_nll(self.logits(batch), batch["labels"], self.tokens("train"))
        return nll, {"nll": nll.detach()}
