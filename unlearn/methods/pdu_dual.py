"""PDU's dual variable λ: projected gradient ascent on the retain constraint L_rtn ≤ ε (spec §2.10)."""
from dataclasses import dataclass


@dataclass
class DualAscent:
    value: float          # λ, the weight of the retain constraint
    step_size: float      # η_λ
    warmup_epochs: int    # λ stays at its initial value ("warm start") before this epoch

    def update(self, retain_loss: float, eps: float, epoch: int) -> float:
        """λ ← max(0, λ + η·(L_rtn − ε)) once warm-up is over: grows while the constraint is violated,
        shrinks towards 0 while it holds."""
        if epoch >= self.warmup_epochs:
            self.value = max(0.0, self.value + self.step_size * (retain_loss - eps))
        return self.value
