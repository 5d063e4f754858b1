"""The attack battery (`eval.attacks`, conf/attack/*.yaml): does the forgetting last under relearning,
quantization and reworded prompts? See battery.py for how attacked models are measured and named."""
from unlearn.attacks.battery import run_attacks, validate_attacks

__all__ = ["run_attacks", "validate_attacks"]
