"""Records -> token ids for one model, with the checks that catch data made for another model."""
from dataclasses import dataclass, field

from unlearn.data.records import Record
from unlearn.errors import UnlearnError


@dataclass
class EncodedSplit:
    record_ids: list[str]
    input_ids: list[list[int]]
    prefix_lens: list[int]
    # Per sequence, the first token a training loss may target: a QA record's answer start (its question
    # and chat-template tokens are a prompt, never trained on, as in the TOFU and open-unlearning code);
    # 0 for plain text. Empty = 0 for every sequence.
    label_starts: list[int] = field(default_factory=list)

    def __post_init__(self):
        if not self.label_starts:
            self.label_starts = [0] * len(self.input_ids)
        if len(self.label_starts) != len(self.input_ids):
            raise ValueError(f"{len(self.label_starts)} label starts for {len(self.input_ids)} sequences")

    def __len__(self) -> int:
        return len(self.input_ids)


def shares_gpt2_vocab(tokenizer) -> bool:
    return len(tokenizer) in (50257, 50258) and tokenizer.convert_tokens_to_ids("<|endoftext|>") == 50256


def encode_split(
    records: list[Record],
    tokenizer,
    vocab_size: int,
    use_source_ids: bool,
    default_prefix_len: int,
    max_length: int | None = None,
    use_chat_template: bool = True,
) -> EncodedSplit:
    ids_out, prefix_out, label_out = [], [], []
    too_short = []
    for record in records:
        label_start = 0
        if record.question is not None:
            from unlearn.data.tofu import qa_prompt

            prompt = tokenizer.encode(qa_prompt(tokenizer, record.question, use_chat_template), add_special_tokens=False)
            ids = prompt + tokenizer.encode(record.text, add_special_tokens=False)
            if tokenizer.eos_token_id is not None:
                ids.append(tokenizer.eos_token_id)
            prefix_len = label_start = len(prompt)
        elif use_source_ids and record.source_ids is not None:
            ids = list(record.source_ids)
            prefix_len = record.source_prefix_len or default_prefix_len
        else:
            ids = tokenizer.encode(record.text, add_special_tokens=False)
            prefix_len = len(tokenizer.encode(record.prefix, add_special_tokens=False)) if record.prefix else default_prefix_len
        if max_length:
            ids = ids[:max_length]
        bad = [t for t in ids if t >= vocab_size or t < 0]
        if bad:
            raise UnlearnError(
                f"record {record.id} holds token id {bad[0]} but the model's vocabulary has {vocab_size} entries: "
                "the ids were made for another tokenizer. Re-tokenize the text (data.use_source_ids=false) "
                "or pick the model the ids belong to"
            )
        if len(ids) < 2:
            raise UnlearnError(f"record {record.id} is {len(ids)} token(s) long; a record needs at least 2 tokens")
        if prefix_len >= len(ids):
            too_short.append((record.id, prefix_len, len(ids)))
            continue
        ids_out.append(ids)
        prefix_out.append(prefix_len)
        label_out.append(label_start)
    if too_short and len(too_short) == len(records):
        longest = max(n for _, _, n in too_short)
        raise UnlearnError(
            f"eval.prefix_len={default_prefix_len} (or the records' own prefixes) is longer than every record of this "
            f"split (the longest is {longest} tokens); lower eval.prefix_len below {longest} or use longer records")
    if too_short:
        rid, prefix_len, n = too_short[0]
        raise UnlearnError(
            f"record {rid}: the prefix is {prefix_len} tokens but the whole sequence is {n} ({len(too_short)} of "
            f"{len(records)} records are too short); drop them from the data or lower eval.prefix_len")
    return EncodedSplit([r.id for r in records], ids_out, prefix_out, label_out)
