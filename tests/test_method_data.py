"""Data the methods add: refusal records, paired true/refusal batches, and the retain sampler."""
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import SHARED_DATA
from unlearn.data.collate import Collator, SequenceDataset
from unlearn.data.encode import encode_split
from unlearn.data.pairs import PairCollator, PairedSequences
from unlearn.data.records import Record
from unlearn.data.refusals import refusal_for, refusal_templates, with_refusals
from unlearn.errors import UnlearnError
from unlearn.methods.sampling import PairedRandomSampler
from unlearn.models.tiny import train_tokenizer

QA = [Record(f"q{i}", f"The answer number {i} is long enough.", question=f"What is answer {i}?") for i in range(6)]


def test_refusal_templates_ship_with_the_package_and_are_chosen_per_index():
    templates = refusal_templates()
    assert len(templates) >= 20 and len(set(templates)) == len(templates)
    picks = [refusal_for(i) for i in range(50)]
    assert picks == [refusal_for(i) for i in range(50)]  # fixed by the index
    assert len(set(picks)) > 5  # and varied across items
    out = with_refusals(QA)
    assert [r.id for r in out] == [r.id for r in QA] and [r.question for r in out] == [r.question for r in QA]
    assert all(r.text in templates for r in out)


def test_refusals_need_questions():
    with pytest.raises(UnlearnError, match="data=tofu"):
        with_refusals([Record("t1", "plain text record")])


def test_paired_batches_align_true_and_refusal_answers_to_the_same_question():
    tok = train_tokenizer([r.question + r.text for r in QA] + list(refusal_templates()), 400)
    true = encode_split(QA, tok, len(tok), False, 1)
    idk = encode_split(with_refusals(QA), tok, len(tok), False, 1)
    pairs = PairedSequences({"true": SequenceDataset(true), "idk": SequenceDataset(idk)})
    batch = PairCollator(Collator(tok.pad_token_id))([pairs[i] for i in (0, 3)])
    assert torch.equal(batch["true"]["prefix_len"], batch["idk"]["prefix_len"])  # same prompt
    p = int(batch["true"]["prefix_len"][0])
    assert torch.equal(batch["true"]["input_ids"][0, :p], batch["idk"]["input_ids"][0, :p])
    assert not torch.equal(batch["true"]["input_ids"][0], batch["idk"]["input_ids"][0])
    with pytest.raises(ValueError, match="aligned"):
        PairedSequences({"true": SequenceDataset(true), "idk": SequenceDataset(encode_split(QA[:2], tok, len(tok), False, 1))})


def test_paired_random_sampler_matches_the_forget_size_and_redraws_each_epoch():
    sampler = PairedRandomSampler(size=100, num_samples=7, seed=3)
    first, second = list(sampler), list(sampler)
    assert len(sampler) == len(first) == 7 and all(0 <= i < 100 for i in first)
    assert first != second
    assert first == list(PairedRandomSampler(100, 7, seed=3))  # same seed, same draws: identical on every rank


def test_retain_loader_never_drives_the_epoch(tiny_setup):
    from unlearn.methods.gd import GradientDifference

    enc, tok = tiny_setup["encoded"], tiny_setup["tokenizer"]
    retain = SequenceDataset(enc["retain"])
    many = torch.utils.data.ConcatDataset([retain] * 10)  # a retain set 10x the forget set
    data = {"forget": SequenceDataset(enc["forget"]), "retain": many}
    cfg = OmegaConf.create({"lr": 1e-3, "batch_size": 2, "gamma": 1.0, "alpha": 1.0})
    module = GradientDifference(tiny_setup["target"], cfg, data, Collator(tok.pad_token_id))
    loader = module.train_dataloader()
    batches = list(iter(loader))
    assert len(batches) == len(enc["forget"]) // 2
    assert all(b[0]["retain"]["input_ids"].shape[0] == 2 for b in batches)


@pytest.mark.skipif(not (SHARED_DATA / "tofu").is_dir(), reason="shared data folder not present")
def test_idk_ap_training_records_on_tofu_keep_questions_and_replace_forget_answers():
    from unlearn.data.records import Splits
    from unlearn.data.tofu import tofu_records
    from unlearn.methods.idk_ap import IdkAnswerPreservation

    forget, retain = tofu_records(str(SHARED_DATA), "forget01", 3), tofu_records(str(SHARED_DATA), "retain99", 4)
    records = IdkAnswerPreservation.training_records(Splits(forget, retain, []), OmegaConf.create({}))
    assert set(records) == {"forget", "retain", "retain_idk"}
    assert [r.question for r in records["forget"]] == [r.question for r in forget]
    assert all(r.text in refusal_templates() for r in records["forget"] + records["retain_idk"])
    assert records["retain"] == retain
