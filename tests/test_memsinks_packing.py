"""Packed rows: attention never crosses sequence ids (nor document boundaries), positions restart per
document, the first token of a document is never a label; sequence ids and id noise in the data path."""
import random

import pytest
import torch
from transformers import GPTNeoConfig, GPTNeoForCausalLM, LlamaConfig, LlamaForCausalLM

from unlearn.errors import ConfigError
from unlearn.memsinks.corpus import Corpus, assign_ids
from unlearn.memsinks.data import check_budget, noisy_ids, training_documents
from unlearn.memsinks.hashing import document_id
from unlearn.memsinks.packing import Document, attention_bias, pack


def models():
    torch.manual_seed(0)
    yield LlamaForCausalLM(LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, num_key_value_heads=1, pad_token_id=0, bos_token_id=0, eos_token_id=0))
    yield GPTNeoForCausalLM(GPTNeoConfig(vocab_size=40, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                                         attention_types=[[["global", "local"], 1]], max_position_embeddings=64, window_size=64,
                                         bos_token_id=0, eos_token_id=0))


DOCS = [Document([5, 6, 7], 11), Document([8, 9, 10, 11, 12], 22), Document([13, 14], 22), Document([15, 16, 17, 18], 33)]


def test_pack_positions_labels_and_ids():
    rows = pack(DOCS, 8, eos_id=1, pad_token_id=0)
    # stream: 5 6 7 E | 8 9 10 11 12 E | 13 14 E | 15 16 17 18 E  (18 tokens -> 3 rows of 8, 6 pads)
    assert rows.input_ids.shape == (3, 8)
    assert rows.seq_ids[0].tolist() == [11, 11, 11, 11, 22, 22, 22, 22]
    assert rows.position_ids[0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    # row 1 continues document 2 (positions restart at the row start), then document 3 with the same id
    assert rows.seq_ids[1].tolist() == [22, 22, 22, 22, 22, 33, 33, 33]
    assert rows.position_ids[1].tolist() == [0, 1, 0, 1, 2, 0, 1, 2]
    assert rows.labels[0, 0] == -100 and rows.labels[0, 4] == -100 and rows.labels[1, 2] == -100
    assert (rows.labels[2][rows.seq_ids[2] == 0] == -100).all()


@pytest.mark.parametrize("model", list(models()), ids=["llama", "gpt_neo"])
def test_attention_never_crosses_ids_or_documents(model):
    """Changing every other document in the row leaves a document's logits unchanged, and equal to the
    document run alone."""
    model.eval()
    rows = pack(DOCS, 16, eos_id=1, pad_token_id=0)
    ids, seq, pos = rows.input_ids[:1], rows.seq_ids[:1], rows.position_ids[:1]
    bias = attention_bias(seq, pos)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=bias, position_ids=pos).logits
        run_starts = (pos[0] == 0).nonzero().flatten().tolist() + [16]
        for a, b in zip(run_starts[:-1], run_starts[1:]):
            other = ids.clone()
            outside = torch.ones(16, dtype=torch.bool)
            outside[a:b] = False
            other[0, outside] = torch.randint(2, 40, (int(outside.sum()),))
            changed = model(input_ids=other, attention_mask=bias, position_ids=pos).logits
            assert torch.allclose(out[0, a:b], changed[0, a:b], atol=1e-5)
            alone = model(input_ids=ids[:, a:b]).logits
            assert torch.allclose(out[0, a:b], alone[0], atol=1e-5)
    # the bias itself: no query sees a key of another id or of an earlier document with the same id
    allowed = bias[0, 0] == 0
    assert not (allowed & (seq[0][:, None] != seq[0][None, :])).any()
    doc3 = (pos[0] == 0).nonzero().flatten().tolist()
    third = doc3[2]
    assert not allowed[third:, :third].any()


def test_ids_hash_by_default_explicit_accepted_and_start_at_1():
    texts = ["alpha beta", "gamma delta"]
    assert assign_ids(texts) == [document_id(t) for t in texts]
    assert all(i >= 1 for i in assign_ids(texts))
    assert assign_ids(texts, [5, None]) == [5, document_id("gamma delta")]
    with pytest.raises(ConfigError, match="explicit sequence ids"):
        assign_ids(texts, [0, 1])


def test_id_noise_gives_the_configured_fraction_wrong_ids():
    ids = noisy_ids(77, "text", 100, 0.1, random.Random(0))
    assert sum(i != 77 for i in ids) == 10 and len(set(ids)) == 11
    assert noisy_ids(77, "text", 100, 0.0, random.Random(0)) == [77] * 100
    corpus = Corpus(["general text"] * 3, ["rep one", "rep two"], [7, 9], [], [], "t")
    encode = lambda t: [len(w) for w in t.split()]
    docs = training_documents(corpus, encode, "memsinks", 20, 0.05, 0)
    assert sum(d.seq_id == 7 for d in docs) == 19 and sum(d.seq_id == 9 for d in docs) == 19
    assert sum(d.seq_id in (7, 9) for d in training_documents(corpus, encode, "dedup", 20, 0.0, 0)) == 2
    assert sum(d.seq_id == 7 for d in training_documents(corpus, encode, "standard", 20, 0.05, 0)) == 20


def test_corpus_too_small_for_r_repetitions_fails_clearly():
    corpus = Corpus(["g" * 1000], ["r" * 100], [3], [], [], "t")
    check_budget(corpus, 5, 0.5)
    with pytest.raises(ConfigError, match="too small for R=20 repetitions"):
        check_budget(corpus, 20, 0.5)
