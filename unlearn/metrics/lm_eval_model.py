"""lm-eval's HF scorer over anything with the Hugging Face causal-LM forward signature.

`HFLM(pretrained=<model object>)` expects a `PreTrainedModel` (config, device, tie_weights) and
scores `model(input_ids).logits`. A model that is not a plain HF model, e.g. a contrastive-decoding
pair that combines two models' logits in its forward, gets the same treatment through this adapter,
so lm-eval scores exactly the distribution the model's forward returns: nothing reaches past it.
"""
import torch
from transformers import PretrainedConfig


class ForwardSignatureLM(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        # HFLM reads limits (max positions) and pad handling from a config; a bare module gets an empty one.
        self.config = getattr(inner, "config", None) or PretrainedConfig()

    @property
    def device(self) -> torch.device:
        return next(self.inner.parameters()).device

    def tie_weights(self) -> None:
        """The wrapped model's weights are as given; HFLM calls this on PreTrainedModels only to re-tie."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def lm_eval_model(model, tokenizer, batch_size: int = 8, max_length: int | None = None):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=ForwardSignatureLM(model), tokenizer=tokenizer, backend="causal", batch_size=batch_size,
                max_length=max_length)
