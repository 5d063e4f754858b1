"""EMSO: entropy maximization with selective optimization (spec §2.9).

At the start of every epoch (or once / every n steps) one random forget batch gives g_NLL and g_EM;
the k blocks with the most negative contrastive score are the only weights that train.

The set of trainable tensors never changes after construction: every candidate matrix keeps
requires_grad=True, because DDP (and anything else that wraps the model) records the trainable set
once, and flipping it later breaks the gradient reducer (issue #10.5). Instead, after backward (and
after DDP's all-reduce) gradients are zeroed outside the selected slices and dropped (None) for
matrices with no selected slice, so AdamW skips them. Adam state is reset at each reselection and
weight decay is 0: a masked entry then has zero moments and a zero update, so every unselected
weight stays bit-identical to the target model.

Selection streams (spec §2.9c, issue #11): g_NLL is kept for every candidate, but g_EM is reduced one
parameter at a time as backward produces it and freed at once, so two full gradient sets never
coexist (the paper's stated memory cost).

The ablation variants of EMSO Table 2 are options, not copies:
  selection=magnitude  -> "w/o Dir"      selection=random -> "Random & EM"
  selection=full       -> "Full & EM"    objective=nll_ascent -> "Select & NLL"
"""
import torch

from unlearn.errors import require
from unlearn.methods.base import UnlearningModule
from unlearn.methods.emso_selection import param_block_reductions, score_from_reductions, select_blocks
from unlearn.methods.losses import entropy_loss, mean_nll
from unlearn.models.blocks import block_masks, count_blocks, enumerate_blocks

SELECTIONS = ("contrastive", "magnitude", "random", "full")
OBJECTIVES = ("em", "nll_ascent")
RESELECT = ("epoch", "once", "n_steps")
SELECTION_BATCHES = ("effective", "per_step")  # what one selection scores: the effective batch, or one micro-batch per process


class EMSO(UnlearningModule):
    name = "emso"
    # Selection scores and masks are per whole weight matrix (models/blocks.py); FSDP gives each rank a flat
    # shard of the matrices, and the selection's own backward runs outside the wrapped forward.
    fsdp_refusal = "its block masks and selection read whole weight matrices, FSDP shards them"

    def __init__(self, model, cfg, datasets, collator, seed: int = 0):
        super().__init__(model, cfg, datasets, collator, seed)
        self.blocks = enumerate_blocks(model)
        require(cfg.k <= len(self.blocks), f"method.k={cfg.k} but the model has only {len(self.blocks)} candidate blocks")
        self.candidate_params = sorted({b.param for b in self.blocks})
        params = dict(model.named_parameters())
        for name, p in params.items():
            p.requires_grad_(name in self.candidate_params)
        self.masks: dict[str, torch.Tensor] = {}  # per selected matrix: True on the entries that train
        self._frozen: dict[str, torch.Tensor] = {}  # the complement of each mask, kept to mask without allocating
        self.selected: list = []
        self._generator = torch.Generator().manual_seed(seed)
        self._reselected_at: int | None = None  # the optimizer step of the last n_steps reselection

    @classmethod
    def validate_config(cls, cfg):
        super().validate_config(cfg)
        require(cfg.k >= 1, f"method.k must be >= 1 (got {cfg.k})")
        require(cfg.selection in SELECTIONS, f"method.selection={cfg.selection!r}; use one of {SELECTIONS}")
        require(cfg.objective in OBJECTIVES, f"method.objective={cfg.objective!r}; use one of {OBJECTIVES}")
        require(cfg.reselect_every in RESELECT, f"method.reselect_every={cfg.reselect_every!r}; use one of {RESELECT}")
        require(cfg.get("selection_batch", "effective") in SELECTION_BATCHES,
                f"method.selection_batch={cfg.selection_batch!r}; use one of {SELECTION_BATCHES}")
        require(cfg.get("weight_decay", 0.0) == 0.0,
                "EMSO needs method.weight_decay=0: decay would move unselected weights, which must stay identical")

    @classmethod
    def validate_for_model(cls, cfg, model_config):
        available = count_blocks(model_config)
        require(cfg.k <= available, f"method.k={cfg.k} but the model has only {available} candidate blocks")

    def objective(self, logits, labels, tokens=None):
        if self.cfg.objective == "em":
            return entropy_loss(logits, labels, tokens)
        return -mean_nll(logits, labels, tokens)

    def loss(self, batches):
        batch = batches["forget"]
        logits = self.logits(batch)
        loss = self.objective(logits, batch["labels"], self.tokens("forget"))
        return loss, {"forget_nll": mean_nll(logits.detach(), batch["labels"])}

    # --- selection -------------------------------------------------------------------------------------
    def selection_batch_size(self) -> int:
        """The effective batch, per device x processes x accumulation (`method.selection_batch=effective`, the
        paper's: 64 for 1.3B/2.7B), or one micro-batch of every process (`per_step`, this code's old choice)."""
        if self._trainer is None:
            return self.cfg.batch_size
        size = self.cfg.batch_size * self.trainer.world_size
        if self.cfg.get("selection_batch", "effective") == "effective":
            size *= self.trainer.accumulate_grad_batches
        return size

    def _selection_batch(self) -> dict:
        data = self.datasets["forget"]
        # One global batch: under DDP every rank draws the same rows (same generator) and scores the
        # same batch, so all ranks select the same blocks, the blocks a 1-process run would select.
        rows = torch.randperm(len(data), generator=self._generator)[: self.selection_batch_size()].tolist()
        batch = self.collator([data[i] for i in rows])
        return {k: v.to(self.device) for k, v in batch.items()}

    def _candidate_tensors(self) -> list[torch.Tensor]:
        params = dict(self.model.named_parameters())
        return [params[n] for n in self.candidate_params]

    def gradients(self, batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """g_NLL and g_EM on one batch, both in full, for every candidate parameter (the unstreamed
        reference that `block_scores_streamed` is tested against; selection does not use it)."""
        tensors = self._candidate_tensors()
        was_training = self.model.training
        self.model.train()  # dropout is 0 in the configs we support; train mode matches the update
        with torch.enable_grad():
            logits = self.logits(batch)
            nll = mean_nll(logits, batch["labels"])
            em = entropy_loss(logits, batch["labels"])
            g_nll = torch.autograd.grad(nll, tensors, retain_graph=True)
            g_em = torch.autograd.grad(em, tensors)
        self.model.train(was_training)
        return dict(zip(self.candidate_params, g_nll)), dict(zip(self.candidate_params, g_em))

    def block_scores_streamed(self, batch, direction: bool = True) -> torch.Tensor:
        """Every block's score from one forward pass: g_NLL in full (only when `direction`), then g_EM
        reduced per parameter in a post-accumulate hook and freed, with the g_NLL it was paired with."""
        names, tensors = self.candidate_params, self._candidate_tensors()
        by_param: dict[str, list] = {}
        for b in self.blocks:
            by_param.setdefault(b.param, []).append(b)
        saved = [t.grad for t in tensors]  # normally None at an epoch start; restored after scoring
        for t in tensors:
            t.grad = None
        reductions: dict[str, tuple] = {}
        g_nll: dict[str, torch.Tensor] = {}

        def reducer(name):
            def hook(param):
                gn = g_nll.pop(name, None)
                mine = by_param.get(name, [])
                reductions.update(zip((b.name for b in mine), param_block_reductions(mine, gn, param.grad)))
                param.grad = None  # this parameter's g_EM is reduced: free it before the next one arrives
            return hook

        was_training = self.model.training
        self.model.train()
        handles = [t.register_post_accumulate_grad_hook(reducer(n)) for n, t in zip(names, tensors)]
        try:
            with torch.enable_grad():
                logits = self.logits(batch)
                em = entropy_loss(logits, batch["labels"])
                if direction:
                    nll = mean_nll(logits, batch["labels"])
                    g_nll.update(zip(names, torch.autograd.grad(nll, tensors, retain_graph=True)))
                del logits
                # backward(inputs=...) runs the hooks above; outside a DDP forward the reducer's own
                # hooks are inactive, so this neither syncs nor disturbs DDP.
                torch.autograd.backward(em, inputs=tensors)
        finally:
            for h in handles:
                h.remove()
            for t, g in zip(tensors, saved):
                t.grad = g
            self.model.train(was_training)
        require(len(reductions) == len(self.blocks), "EMSO: some candidate blocks got no EM gradient")
        return torch.stack([score_from_reductions(reductions[b.name], direction) for b in self.blocks])

    def choose_blocks(self) -> tuple[list, torch.Tensor | None]:
        """The blocks to train from now on, and every block's score (None when not scored)."""
        cfg = self.cfg
        if cfg.selection == "full":
            return self.blocks, None
        scores = self.block_scores_streamed(self._selection_batch(), direction=cfg.selection == "contrastive")
        return select_blocks(self.blocks, scores, cfg.k, cfg.selection, self._generator), scores

    def select(self) -> None:
        cfg = self.cfg
        chosen, scores = self.choose_blocks()
        self.selected = chosen
        self.masks = {} if cfg.selection == "full" else block_masks(self.model, chosen)
        self._frozen = {name: ~mask for name, mask in self.masks.items()}
        # Adam moments of a previous selection would keep moving those entries: start fresh.
        if self._trainer is not None:
            for opt in self.trainer.optimizers:
                opt.state.clear()
        record = {
            "epoch": self.current_epoch if self._trainer is not None else 0,
            "step": self.global_step if self._trainer is not None else 0,
            "blocks": [b.name for b in chosen] if cfg.selection != "full" else ["all"],
        }
        if scores is not None:
            index = {b.name: i for i, b in enumerate(self.blocks)}
            record["scores"] = [float(scores[index[b.name]]) for b in chosen]
        self.history.append(record)
        if self.global_rank == 0:  # every rank selects the same blocks; one says so
            print(f"[emso] epoch {record['epoch']}: selected {', '.join(record['blocks'])}")

    # --- resume (methods/base.py checkpoints this) ----------------------------------------------------------
    def method_state(self) -> dict:
        # The generator is drawn from at every selection: without it a resumed fit picks other blocks.
        return {"generator": self._generator.get_state(), "selected": [b.name for b in self.selected],
                "reselected_at": self._reselected_at}

    def load_method_state(self, state: dict) -> None:
        self._generator.set_state(state["generator"])
        self._reselected_at = state.get("reselected_at")
        by_name = {b.name: b for b in self.blocks}
        self.selected = [by_name[name] for name in state["selected"]]
        self.masks = {} if self.cfg.selection == "full" or not self.selected else block_masks(self.model, self.selected)
        self._frozen = {name: ~mask for name, mask in self.masks.items()}

    # --- Lightning hooks -------------------------------------------------------------------------------
    def configure_optimizers(self):
        # Every candidate goes in the optimizer; AdamW skips parameters whose grad is None (not selected).
        return super().configure_optimizers()

    def on_train_epoch_start(self):
        if self.cfg.reselect_every == "epoch" or not self.selected:
            self.select()

    def on_train_batch_start(self, batch, batch_idx):
        # Once per optimizer step: under gradient accumulation this hook runs for every micro-batch of a
        # step while global_step stands still, and reselecting there would draw a new batch, clear Adam's
        # state and change the mask in the middle of an accumulated gradient.
        every = self.cfg.get("reselect_steps", 0)
        step = self.global_step
        if self.cfg.reselect_every == "n_steps" and every and step > 0 and step % every == 0 and step != self._reselected_at:
            self.select()
            self._reselected_at = step

    def on_after_backward(self):
        # Runs after DDP's all-reduce: every rank masks the same averaged gradient the same way.
        if self.cfg.selection == "full":
            return
        for name, p in zip(self.candidate_params, self._candidate_tensors()):
            if p.grad is None:
                continue
            if name in self.masks:
                # masked_fill, not a multiply: 0 * inf/NaN would still move a masked entry
                p.grad.masked_fill_(self._frozen[name], 0.0)
            else:
                p.grad = None  # AdamW skips it: no state, no update
