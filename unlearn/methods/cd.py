"""CD: contrastive decoding against a memorized model (spec §2.6). Nothing is trained: the unlearned
model is the pair (θ_o, θ_mem), whose next-token logits are z_o − γ·ReLU(z_mem − z_o). Every metric
calls the pair like a model, so MA, EL, perplexity and generations all use the combined distribution."""
from unlearn.methods.method import require_at_least
from unlearn.methods.training_free import TrainingFreeMethod
from unlearn.models.contrastive import ContrastivePair


class ContrastiveDecoding(TrainingFreeMethod):
    name = "cd"
    needs_memorized = True

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        require_at_least(cfg, "gamma", 0)

    @classmethod
    def build(cls, target, memorized, cfg):
        # The pair holds the target itself, not a copy: nothing trains it, and the memory is the model's.
        return ContrastivePair(target, memorized, cfg.gamma).eval()
