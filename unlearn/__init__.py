"""unlearn: erase memorized text from language models and measure what it costs."""

__version__ = "0.1.0"
