"""Open-ended generation on WikiText prompts (spec §4.1 utility data): the first `prompt_tokens` tokens of
each paragraph with at least `prompt_tokens + gold_tokens` tokens and no "=", gold = the next
`gold_tokens`. Generations are memoized in the model's context by decoding settings, so PPL, Rep,
Div, coherence, MAUVE and the collapse flags all read one set.
"""
from dataclasses import dataclass

from unlearn.data.wikitext import wikitext_paragraphs
from unlearn.errors import UnlearnError
from unlearn.generation import SamplingConfig
from unlearn.metrics.context import EvalContext, generation_key
from unlearn.metrics.registry import MetricSkipped

# EMSO / DI-code defaults; the suites override n (5,000 in the paper) to keep CPU runs short.
DEFAULTS = {
    "n": 16,
    "prompt_tokens": 32,
    "gold_tokens": 128,
    "max_new_tokens": 128,
    "sampling": {"top_p": 0.95, "top_k": 50, "temperature": 1.0},  # null = greedy
    "seed": 0,
    "hub_config": "wikitext-103-raw-v1",
    "hub_split": "train",
    "source": "auto",  # auto: the shared data folder when set, else the hub; hub: always the hub (paper size)
}


@dataclass
class GenerationSet:
    key: str
    prompts: list[str]
    generations: list[str]
    references: list[str]  # the gold continuations
    prompt_ids: list[list[int]]
    gen_ids: list[list[int]]
    gold_ids: list[list[int]]
    settings: dict
    source: str
    decode: object  # the tokenizer's decode

    def __len__(self) -> int:
        return len(self.prompts)

    def full_texts(self) -> list[str]:
        """prompt + generation, decoded together so no token boundary changes the text (MAUVE's p, PPL)."""
        return [self.decode(p + g, skip_special_tokens=True) for p, g in zip(self.prompt_ids, self.gen_ids)]

    def full_references(self) -> list[str]:
        """prompt + gold continuation (MAUVE's q)."""
        return [self.decode(p + g, skip_special_tokens=True) for p, g in zip(self.prompt_ids, self.gold_ids)]


def wikitext_settings(ctx: EvalContext, overrides: dict | None = None) -> dict:
    cfg = {**DEFAULTS, **ctx.setting("wikitext"), **(overrides or {})}
    if cfg["sampling"] is not None:
        cfg["sampling"] = dict(cfg["sampling"])
    return cfg


def _prompt_set(ctx: EvalContext, cfg: dict):
    try:
        root = None if cfg["source"] == "hub" else ctx.env.data_root
        source, paragraphs = wikitext_paragraphs(root, cfg["hub_config"], cfg["hub_split"])
    except UnlearnError as exc:
        raise MetricSkipped(str(exc)) from None
    need = cfg["prompt_tokens"] + cfg["gold_tokens"]
    prompts, golds = [], []
    for text in paragraphs:
        if not text or "=" in text:
            continue
        ids = ctx.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) >= need:
            prompts.append(ids[:cfg["prompt_tokens"]])
            golds.append(ids[cfg["prompt_tokens"]:need])
            if len(prompts) == cfg["n"]:
                break
    if not prompts:
        raise MetricSkipped(f"no WikiText paragraph has {need} tokens in {source}")
    return source, prompts, golds


def wikitext_generations(ctx: EvalContext, overrides: dict | None = None) -> GenerationSet:
    cfg = wikitext_settings(ctx, overrides)
    source, prompts, golds = ctx.memo(("wikitext_prompts", cfg["n"], cfg["prompt_tokens"], cfg["gold_tokens"], cfg["hub_config"],
                                       cfg["hub_split"], cfg["source"]), lambda: _prompt_set(ctx, cfg))
    sampling = SamplingConfig(**cfg["sampling"]) if cfg["sampling"] else None
    label = f"wikitext:n={len(prompts)},prompt={cfg['prompt_tokens']}"
    outs = ctx.generate(label, prompts, cfg["max_new_tokens"], sampling, cfg["seed"])
    decode = ctx.tokenizer.decode
    return GenerationSet(
        key=generation_key(("gen", label, cfg["max_new_tokens"], sampling, cfg["seed"], True)),
        prompts=[decode(p, skip_special_tokens=True) for p in prompts],
        generations=[decode(o, skip_special_tokens=True) for o in outs],
        references=[decode(g, skip_special_tokens=True) for g in golds],
        prompt_ids=prompts,
        gen_ids=outs,
        gold_ids=golds,
        settings=cfg,
        source=source,
        decode=decode,
    )
