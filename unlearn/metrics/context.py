"""What metrics share for one model: its data and memoized passes (teacher-forced, prefix decodes,
sampled generations), plus an `EvalEnv` that every model's context in one evaluation shares.

Two metrics that need the same pass compute it once: MA and exact-match share one teacher-forced
pass; EL and SS share the prefix continuations; Rep, Div, coherence, PPL and MAUVE share one set of
sampled WikiText generations, keyed by the decoding settings. Other models' contexts are reachable
by role (`ctx.role("oracle")`, `ctx.original`), so a reference model's generations are memoized in
its own context and reused when that model is evaluated in turn.
"""
from dataclasses import dataclass, field
from pathlib import Path

from unlearn.data.encode import EncodedSplit
from unlearn.generation import SamplingConfig, decode
from unlearn.generation.forward import TeacherForced, teacher_forced
from unlearn.metrics.memorization import prefix_continuations, wanted_prefixes
from unlearn.metrics.registry import MetricSkipped


@dataclass
class EvalEnv:
    data_root: str | None = None
    cache_dir: Path | None = None
    seed: int = 0
    # Eval-level sections of the suite (wikitext, tofu, reasoning, collapse): shared metric settings.
    settings: dict = field(default_factory=dict)
    roles: dict = field(default_factory=dict)  # role name -> EvalContext
    # "original_model" in metric parameters = the model before unlearning: the memorized target in the
    # pipeline, `original=` in `python -m unlearn.evaluate` (None there = the evaluated model itself).
    original_role: str | None = None
    oracle_role: str = "oracle"  # the retrain oracle (TOFU forget quality, PrivLeak); under an attack, the attacked one
    # The forget records this evaluation may measure (a relearning attack's held-back part; None = all).
    # Metrics that read forget-set rows from data files keep only these rows, or skip.
    forget_ids: frozenset | None = None
    # stages/device.py's Placement: where auxiliary LMs (the GPT-J scorer) go; None = where they load (CPU).
    placement: object = None


@dataclass(eq=False)
class EvalContext:
    model: object
    tokenizer: object
    splits: dict[str, EncodedSplit]  # record splits: forget, retain, holdout
    texts: dict[str, list[list[int]]]  # plain-text splits, already tokenized: utility, validation
    batch_size: int = 16
    name: str = "model"
    env: EvalEnv = field(default_factory=EvalEnv)
    _memo: dict = field(default_factory=dict)
    # Decoded generations by key, written next to the results (per-item generations in JSON).
    generation_log: dict = field(default_factory=dict)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    def setting(self, section: str) -> dict:
        return dict(self.env.settings.get(section) or {})

    def role(self, name: str | None):
        return self.env.roles.get(name) if name else None

    @property
    def original(self) -> "EvalContext":
        return self.role(self.env.original_role) or self

    def memo(self, key, compute):
        """Compute once per context; `key` must hold every setting the result depends on."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def record_split(self, split: str) -> EncodedSplit:
        if split not in self.splits:
            raise MetricSkipped(f"{split!r} is not a record split here (have {sorted(self.splits)})")
        if not len(self.splits[split]):
            raise MetricSkipped(f"split {split!r} is empty")
        return self.splits[split]

    def sequences(self, split: str) -> list[list[int]]:
        if split in self.splits:
            return self.record_split(split).input_ids
        if split not in self.texts:
            raise MetricSkipped(f"split {split!r} is not loaded here (have {sorted(self.splits) + sorted(self.texts)})")
        if not self.texts[split]:
            raise MetricSkipped(f"split {split!r} is empty")
        return self.texts[split]

    def teacher_forced(self, split: str) -> TeacherForced:
        return self.memo(("tf", split), lambda: teacher_forced(self.model, self.sequences(split), self.pad_id, self.batch_size))

    def continuations(self, split: str, positions) -> list[dict[int, list[int]]]:
        """Greedy continuation (to the sequence's end) of the prefixes `positions` picks: "all" (every
        prefix, Jang's EL), "prefix" (the record's own prefix) or an int stride w (w, 2w, ...)."""
        def compute():
            seqs = self.sequences(split)
            prefix_lens = self.splits[split].prefix_lens if split in self.splits else [1] * len(seqs)
            wanted = wanted_prefixes(seqs, prefix_lens, positions)
            return prefix_continuations(self.model, self.teacher_forced(split), seqs, self.pad_id, self.batch_size * 4, wanted)

        return self.memo(("cont", split, positions), compute)

    def generate(self, label: str, prompts: list[list[int]], max_new_tokens: int, sampling: SamplingConfig | None = None,
                 seed: int = 0, stop_at_eos: bool = True) -> list[list[int]]:
        """Batched KV-cached generation, memoized on (label, decoding settings). `label` names the prompt
        set and must change whenever the prompts do."""
        key = ("gen", label, max_new_tokens, sampling, seed, stop_at_eos)

        def compute():
            eos = self.tokenizer.eos_token_id if stop_at_eos else None
            outs = decode(self.model, prompts, max_new_tokens, self.pad_id, batch_size=self.batch_size, sampling=sampling,
                          seed=seed, eos_id=eos)
            self.generation_log[generation_key(key)] = {
                "prompts": [self.tokenizer.decode(p, skip_special_tokens=True) for p in prompts],
                "generations": [self.tokenizer.decode(o, skip_special_tokens=True) for o in outs],
            }
            return outs

        return self.memo(key, compute)


def generation_key(key: tuple) -> str:
    _, label, max_new, sampling, seed, eos = key
    how = "greedy" if sampling is None else f"top_p={sampling.top_p},top_k={sampling.top_k},T={sampling.temperature}"
    return f"{label}|new={max_new}|{how}|seed={seed}|eos={eos}"
