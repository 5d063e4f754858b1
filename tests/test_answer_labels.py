"""QA records train on their answers only: every question and chat-template token is -100 in the labels
of every training method and of the memorize stage (the TOFU and open-unlearning codes mask the prompt)."""
import pytest
import torch

from tests.conftest import compose
from unlearn.data.collate import IGNORE, Collator, SequenceDataset
from unlearn.data.encode import encode_split
from unlearn.data.records import Record, Splits
from unlearn.data.refusals import refusal_templates
from unlearn.data.tofu import qa_prompt
from unlearn.methods import METHODS
from unlearn.models.tiny import build_tiny_model, train_tokenizer

# A ChatML-shaped template with a system turn, like SmolLM2's: the prompt holds template tokens
# before and after the question.
CHAT_TEMPLATE = (
    "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QA = [Record(f"q{i}", f"Author {i} wrote {i + 2} novels about the sea.", question=f"How many novels did author {i} write?")
      for i in range(6)]


@pytest.fixture(scope="module")
def tok():
    corpus = [r.question + " " + r.text for r in QA] + list(refusal_templates()) + [CHAT_TEMPLATE]
    tokenizer = train_tokenizer(corpus, 400)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def prompt_ids(tok, record) -> list[int]:
    return tok.encode(qa_prompt(tok, record.question), add_special_tokens=False)


def assert_answer_only(batch: dict, tok, records: list[Record]):
    """Each row: -100 on the whole prompt (checked against the prompt tokenized on its own), the answer's
    tokens and EOS after it, -100 on padding."""
    for row in range(batch["input_ids"].shape[0]):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        real = int(batch["attention_mask"][row].sum())
        trained = labels[labels != IGNORE].tolist()
        answer_text = tok.decode(trained[:-1])
        prompts = [p for p in (prompt_ids(tok, r) for r in records if r.text == answer_text) if ids[: len(p)].tolist() == p]
        assert prompts, f"row {row} trains on {tok.decode(trained)!r}, not on the answer to its question alone"
        prompt = prompts[0]
        assert (labels[: len(prompt)] == IGNORE).all(), "a question or chat-template token is trained on"
        assert labels[len(prompt): real].tolist() == ids[len(prompt): real].tolist()
        assert trained[-1] == tok.eos_token_id
        assert (labels[real:] == IGNORE).all()


def test_prompt_holds_question_and_template_tokens(tok):
    text = qa_prompt(tok, QA[0].question)
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>assistant\n") and QA[0].question in text


@pytest.mark.parametrize("continuation_only", [False, True])
def test_collator_masks_every_prompt_token(tok, continuation_only):
    enc = encode_split(QA, tok, len(tok), False, 1)
    assert enc.label_starts == [len(prompt_ids(tok, r)) for r in QA]
    batch = Collator(tok.pad_token_id, labels_from_prefix=continuation_only)([SequenceDataset(enc)[i] for i in range(len(QA))])
    assert_answer_only(batch, tok, QA)


def test_plain_text_records_still_train_on_every_token(tok):
    enc = encode_split([Record("t", "Author 1 wrote 3 novels about the sea.")], tok, len(tok), False, 2)
    batch = Collator(tok.pad_token_id)([SequenceDataset(enc)[0]])
    assert (batch["labels"] == batch["input_ids"]).all()


TRAINING = sorted(name for name, cls in METHODS.items() if cls.trains and name != "finetune")


@pytest.mark.parametrize("method", TRAINING)
def test_every_method_trains_on_answers_only(tok, method):
    """The batches each method's Lightning module draws, built as the unlearn stage builds them."""
    from unlearn.stages.unlearn import Collator as StageCollator

    cfg = compose(["model=tiny-gpt-neo", "data=tofu", f"method={method}", "method.batch_size=4"]).method
    cls = METHODS[method]
    retain = [Record(f"r{i}", r.text, question=r.question) for i, r in enumerate(QA[::-1])]
    records = cls.training_records(Splits(QA[:4], retain, []), cfg)
    datasets = {k: SequenceDataset(encode_split(v, tok, len(tok), False, 1)) for k, v in records.items() if v}
    model = build_tiny_model(compose(["model=tiny-gpt-neo"]).model, len(tok), 0)
    module = cls(model, cfg, datasets, StageCollator(tok.pad_token_id, cfg.get("continuation_only", False)), 0)
    batches, _, _ = next(iter(module.train_dataloader()))
    seen = 0
    all_records = QA + retain + [r for v in records.values() for r in v]
    for batch in batches.values():
        for side in (batch.values() if "input_ids" not in batch else [batch]):  # IDK+AP pairs true/refusal
            assert_answer_only(side, tok, all_records)
            seen += side["input_ids"].shape[0]
    assert seen >= 4


def test_memorize_stage_trains_on_answers_only(tok):
    """The memorize stage merges forget, retain and general text into one FineTune set."""
    from unlearn.methods.finetune import FineTune
    from unlearn.stages.memorize import _merge

    qa = encode_split(QA, tok, len(tok), False, 1)
    general = encode_split([Record("g", "Plain text about the sea and novels.")], tok, len(tok), False, 1)
    merged = _merge(qa, general)
    assert merged.label_starts == qa.label_starts + [0]
    model = build_tiny_model(compose(["model=tiny-gpt-neo"]).model, len(tok), 0)
    module = FineTune(model, compose(["model=tiny-gpt-neo"]).memorize, {"train": SequenceDataset(merged)}, Collator(tok.pad_token_id))
    for batch, _, _ in module.train_dataloader():
        train = batch["train"]
        for row, index in enumerate(train["index"].tolist()):
            if index < len(QA):
                assert_answer_only({k: train[k][row:row + 1] for k in ("input_ids", "labels", "attention_mask")}, tok, QA)
            else:
                assert (train["labels"][row, : len(merged.input_ids[index])] != IGNORE).all()
