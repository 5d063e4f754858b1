"""unlearn: erase memorized text from language models and measure what it costs."""
import logging

__version__ = "0.1.0"

# transformers >= 5 probes the `kernels` package for hub flash-attention fallbacks when a model module is
# imported; offline, `kernels` logs "Skipping publisher trust check ..." three times on stderr. Nothing here
# loads hub kernels, and that noise would bury the one-line errors every entry point promises.
logging.getLogger("kernels").setLevel(logging.ERROR)
