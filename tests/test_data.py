"""Data sources, stable split ids and the encode-time checks."""
import pytest
from omegaconf import OmegaConf

from tests.conftest import SHARED_DATA, compose
from unlearn.data.encode import encode_split
from unlearn.data.records import Record
from unlearn.data.sources import assign_splits, load_records
from unlearn.errors import UnlearnError
from unlearn.models.tiny import train_tokenizer


def test_synthetic_records_are_deterministic_with_unique_people():
    cfg = compose().data
    a, b = load_records(cfg, None), load_records(cfg, None)
    assert a == b
    assert len({r.prefix for r in a}) == len(a)
    assert all(r.text.startswith(r.prefix) for r in a)
    forget, retain, holdout = assign_splits(a, cfg)
    assert [r.id for r in forget] == [f"pii-{i:05d}" for i in range(8)]
    assert not {r.id for r in forget} & {r.id for r in retain + holdout}


def test_too_many_records_asked_for():
    cfg = compose(["data.n_forget=5000"]).data
    with pytest.raises(UnlearnError, match="lower data.n_forget"):
        assign_splits(load_records(compose().data, None), cfg)


def test_token_ids_beyond_the_vocabulary_are_rejected():
    tok = train_tokenizer(["hello world"] * 3, 300)
    rec = Record("r1", "hello world", source_ids=(1, 2, 70000))
    with pytest.raises(UnlearnError, match="70000 but the model's vocabulary has 300"):
        encode_split([rec], tok, 300, use_source_ids=True, default_prefix_len=1)


def test_prefix_longer_than_the_sequence_is_rejected():
    tok = train_tokenizer(["hello world again"] * 3, 300)
    rec = Record("r1", "hello world again")
    with pytest.raises(UnlearnError, match="eval.prefix_len=50 .* longer than every record"):
        encode_split([rec], tok, 300, use_source_ids=False, default_prefix_len=50)


def test_some_records_shorter_than_the_prefix_are_named():
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa"
    tok = train_tokenizer([words, "alpha beta", "gamma delta"] * 3, 300)
    short = len(tok.encode("alpha beta gamma", add_special_tokens=False))
    recs = [Record("long", words), Record("short", "alpha beta gamma")]
    with pytest.raises(UnlearnError, match=f"record short: the prefix is {short} tokens .*1 of 2 records are too short"):
        encode_split(recs, tok, 300, use_source_ids=False, default_prefix_len=short)


@pytest.mark.skipif(not (SHARED_DATA / "lm_extraction_benchmark").is_dir(), reason="shared data folder not present")
def test_extraction_challenge_ids_and_decoded_text_agree():
    cfg = compose(["data=extraction_challenge", "data.n_forget=3", "data.n_retain=2", "data.n_holdout=2"]).data
    records = load_records(cfg, str(SHARED_DATA))
    assert [r.id for r in records[:3]] == ["train-00000", "train-00001", "train-00002"]
    assert records[-1].id == "train-14999"
    assert all(len(r.source_ids) == 200 and r.source_prefix_len == 150 for r in records)
    from unlearn.data.sources import gpt2_tokenizer

    tok = gpt2_tokenizer(SHARED_DATA)
    enc = encode_split(records, tok, 50257, use_source_ids=True, default_prefix_len=8)
    assert enc.input_ids[0] == list(records[0].source_ids)
    assert "The Supreme" in records[0].prefix


def test_jsonl_source(tmp_path):
    path = tmp_path / "recs.jsonl"
    path.write_text('{"id": "a", "text": "one two three"}\n\n{"id": "b", "text": "four five"}\n')
    cfg = OmegaConf.create({"source": "jsonl", "path": str(path), "text_field": "text", "id_field": "id", "prefix_field": None})
    assert [r.id for r in load_records(cfg, None)] == ["a", "b"]
    bad = OmegaConf.merge(cfg, {"text_field": "body"})
    with pytest.raises(UnlearnError, match="no field 'body'"):
        load_records(bad, None)
