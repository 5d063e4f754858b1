"""Every results record carries world size, effective batch, precision, device and versions, and says what
another split of the same effective batch keeps."""
import torch
from omegaconf import OmegaConf

from unlearn.tracking.run_metadata import run_metadata


def _cfg(batch=4, accumulate=2, precision="bf16-mixed"):
    return OmegaConf.create({"method": {"batch_size": batch}, "trainer": {"accumulate_grad_batches": accumulate,
                                                                        "precision": precision}})


def test_effective_batch_is_batch_times_accumulation_times_world_size():
    model = torch.nn.Linear(2, 2)
    meta = run_metadata(_cfg(), model, {"world_size": 4})
    assert (meta["world_size"], meta["effective_batch"], meta["precision"]) == (4, 32, "bf16-mixed")
    assert "effective batch 32 = 4 per device x 2 accumulation x 4 processes" in meta["distributed_note"]
    assert meta["device"]["type"] == "cpu" and meta["device"]["dtype"] == "float32"
    assert meta["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]


def test_single_process_runs_say_so():
    meta = run_metadata(_cfg(accumulate=1), torch.nn.Linear(2, 2), {"world_size": 1})
    assert meta["effective_batch"] == 4 and "1 processes" in meta["distributed_note"]
    training_free = run_metadata(_cfg(), torch.nn.Linear(2, 2), {})  # TA/CD: no trainer ran
    assert training_free["world_size"] == 1


def test_evaluation_without_training_records_the_model_dtype_as_precision():
    meta = run_metadata(OmegaConf.create({"eval": {}}), torch.nn.Linear(2, 2).to(torch.bfloat16), {})
    assert meta["precision"] == "bfloat16" and meta["effective_batch"] is None and meta["world_size"] == 1


def test_results_name_what_decides_the_cpu_numerics(monkeypatch):
    """Issue #20: two machines gave different tables and nothing in results.json told them apart."""
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        meta = run_metadata(_cfg(), torch.nn.Linear(2, 2), {"world_size": 1})
    finally:
        torch.set_num_threads(threads)
    numerics = meta["numerics"]
    assert numerics["torch_threads"] == 1
    assert numerics["aten_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert numerics["env"] == {"MKL_CBWR": "AVX2"}
    assert numerics["cpu"]["machine"] and isinstance(numerics["cpu"]["isa_flags"], list)
    assert len(meta["code"]) == 16


def test_stage_fingerprints_tell_one_flipped_bit_apart():
    from unlearn.tracking.run_metadata import stage_fingerprints

    torch.manual_seed(0)
    a = torch.nn.Linear(4, 4)
    b = torch.nn.Linear(4, 4)
    b.load_state_dict(a.state_dict())
    same = stage_fingerprints({"target": a, "oracle": None}, {"utility": ["x y"]})
    assert same == stage_fingerprints({"target": b, "oracle": None}, {"utility": ["x y"]})
    assert same["oracle_weights"] is None
    with torch.no_grad():
        b.weight.view(-1)[3] = torch.nextafter(b.weight.view(-1)[3], torch.tensor(1.0))  # one ulp
    moved = stage_fingerprints({"target": b, "oracle": None}, {"utility": ["x y."]})
    assert moved["target_weights"] != same["target_weights"] and moved["utility_texts"] != same["utility_texts"]
