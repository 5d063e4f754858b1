"""The shape GD and KL share: ascend the forget NLL (weight gamma) while a retain term (weight alpha)
holds the model in place; each forget batch is paired with a random retain batch."""
from unlearn.methods.base import UnlearningModule
from unlearn.methods.method import require_at_least


class ForgetRetainModule(UnlearningModule):
    needs_retain = True
    data_keys = ("forget", "retain")

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        require_at_least(cfg, "gamma", 0)
        require_at_least(cfg, "alpha", 0)
