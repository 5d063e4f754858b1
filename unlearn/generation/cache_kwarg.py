"""transformers 5.25 renamed the forward's `past_key_values` to `cache` and warns once per process (a
FutureWarning and a logger line) on the old name, in every default run. The decode loop keeps the old
name on purpose: it is the one every supported transformers (>=4.45) and our own contrastive-decoding
pair accept, and the rename is a pure alias there. So these two messages, and only these, are silenced."""
import logging
import warnings

OLD_NAME = "`past_key_values`"


class _DropCacheRename(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "`past_key_values`/`cache_params` are deprecated" not in record.getMessage()


def silence_cache_rename() -> None:
    warnings.filterwarnings("ignore", message=f".*{OLD_NAME} is deprecated.*Use `cache` instead", category=FutureWarning)
    logging.getLogger("transformers.utils.generic").addFilter(_DropCacheRename())


silence_cache_rename()
