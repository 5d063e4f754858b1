"""Which tokens after a TOFU question the answer probability scores (spec §3.10), one preset per reference.

On 2–5-token answers the end of the answer moves the numbers a lot, and the two reference codes differ:

- `open_unlearning` (default; locuslab/open-unlearning `preprocess_chat_instance`): the question and the
  answer rendered together by the chat template, every token after the prompt scored: the answer, the
  template's closing tokens (SmolLM2: `<|im_end|>` and a newline), and an EOS appended when the rendering
  does not end with one. Without a chat template: the prompt and answer tokenized as one string, plus EOS.
- `tofu` (locuslab/tofu `convert_raw_data_to_model_format`): the answer's tokens and one EOS.
- `answer_only`: the answer's tokens alone (no end marker).

In every preset the question and the prompt's template tokens are never scored. The prompt itself is
ours (`qa_prompt`: the model's chat template, else a Question/Answer frame) in all three.
"""
from unlearn.data.tofu import qa_prompt
from unlearn.errors import ConfigError
from unlearn.metrics.registry import SETTINGS_CHECKS

SCORING = ("open_unlearning", "tofu", "answer_only")
DEFAULT_SCORING = "open_unlearning"


def check_scoring(scoring: str) -> str:
    if scoring not in SCORING:
        raise ConfigError(f"eval.tofu.scoring={scoring!r} is unknown; use one of {SCORING} (which answer tokens TOFU "
                          "probabilities score)")
    return scoring


SETTINGS_CHECKS["tofu"] = lambda section: check_scoring(section.get("scoring", DEFAULT_SCORING))


def scored_sequence(tokenizer, question: str, answer: str, use_chat_template: bool, scoring: str) -> tuple[list[int], int]:
    """(token ids, index of the first scored token): tokens from that index to the end are scored."""
    check_scoring(scoring)
    prompt_text = qa_prompt(tokenizer, question, use_chat_template)
    prompt = tokenizer.encode(prompt_text, add_special_tokens=False)
    eos = tokenizer.eos_token_id
    if scoring == "open_unlearning":
        if use_chat_template and getattr(tokenizer, "chat_template", None):
            chat = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            full_text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=False)
        else:
            full_text = prompt_text + answer
        ids = tokenizer.encode(full_text, add_special_tokens=False)
        if eos is not None and ids[-1] != eos:
            ids.append(eos)
        # As the reference: everything past the prompt's length is scored, even if a token straddles the boundary.
        return ids, len(prompt)
    ids = prompt + tokenizer.encode(answer, add_special_tokens=False)
    if scoring == "tofu" and eos is not None:
        ids.append(eos)
    return ids, len(prompt)
