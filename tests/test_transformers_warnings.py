"""The default run printed transformers' `past_key_values` -> `cache` rename warning (a FutureWarning and a
logger line) on every decode. A fresh process, so transformers' warn-once state cannot hide a regression."""
import subprocess
import sys

SCRIPT = """
from transformers import LlamaConfig, LlamaForCausalLM
from unlearn.generation import decode
cfg = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=2)
print(decode(LlamaForCausalLM(cfg), [[1, 2, 3], [4, 5]], 4, 0, batch_size=2))
"""


def test_decoding_prints_no_cache_rename_warning():
    done = subprocess.run([sys.executable, "-W", "default", "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "past_key_values" not in done.stderr, done.stderr
