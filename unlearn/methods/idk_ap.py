"""IDK+AP (Closer-Look, spec §2.8): teach a refusal on forget questions (NLL of a refusal answer)
while answer preservation keeps the true answer preferred over a refusal on retain questions:
L = c_f·NLL(q_f, y_idk) + c_r·(−1/β)·mean log σ(β·[log π(y_r|q_r) − log π(y_idk|q_r)]).

Answers are scored on their own tokens (the reference code's mask=true), whatever
method.continuation_only says: the question is a prompt here, not something to learn or to forget.
"""
from unlearn.data.pairs import PairCollator, PairedSequences
from unlearn.data.refusals import with_refusals
from unlearn.methods.base import UnlearningModule
from unlearn.methods.losses import answer_preservation, mean_nll, seq_nll_sum
from unlearn.methods.method import require_at_least
from unlearn.methods.positions import answer_labels


class IdkAnswerPreservation(UnlearningModule):
    name = "idk_ap"
    needs_retain = True
    needs_qa = True
    data_keys = ("forget", "retain")

    def __init__(self, model, cfg, datasets, collator, seed: int = 0):
        datasets = dict(datasets)
        if "retain" in datasets and "retain_idk" in datasets:
            datasets["retain"] = PairedSequences({"true": datasets["retain"], "idk": datasets.pop("retain_idk")})
        super().__init__(model, cfg, datasets, collator, seed)

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        require_at_least(cfg, "forget_coeff", 0)
        require_at_least(cfg, "retain_coeff", 0)
        require_at_least(cfg, "beta", 0, strict=True)

    @classmethod
    def training_records(cls, splits, cfg):
        seed = cfg.get("refusal_seed", 0)
        # "forget" answers become refusals; "retain_idk" are the retain questions with refusals, paired with "retain".
        return {"forget": with_refusals(splits.forget, seed), "retain": splits.retain, "retain_idk": with_refusals(splits.retain, seed)}

    def collate_fn(self, key):
        return PairCollator(self.collator) if key == "retain" else self.collator

    def answer_log_likelihood(self, batch):
        return -seq_nll_sum(self.logits(batch), answer_labels(batch))

    def loss(self, batches):
        forget, retain = batches["forget"], batches["retain"]
        idk_nll = mean_nll(self.logits(forget), answer_labels(forget), self.tokens("forget", "answer_labels"))
        margin = self.answer_log_likelihood(retain["true"]) - self.answer_log_likelihood(retain["idk"])
        ap = answer_preservation(margin, self.cfg.beta)
        loss = self.cfg.forget_coeff * idk_nll + self.cfg.retain_coeff * ap
        return loss, {"forget_idk_nll": idk_nll.detach(), "retain_ap": ap.detach(), "retain_margin": margin.mean().detach()}
