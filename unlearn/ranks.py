"""Which process this is, and the few collectives a multi-process run needs (torch.distributed under the hood).

A run with `trainer.devices` > 1 (or several nodes) is one command run by W processes. Lightning's launcher
starts them (it re-runs this command with LOCAL_RANK set; SLURM and torchrun start them themselves), and
`launch` does that at the start of the pipeline rather than at the first `fit`, so every stage can agree:

- **one writer**: rank 0 writes every file, builds every cache entry and prints every table (`is_main`);
  a decision read from disk (is this cached? is that record done?) is rank 0's, sent to all (`broadcast`);
- **no work done twice**: evaluation passes split their batches over the ranks and gather the results
  (`shard_map`), identical to one process, batch for batch; work that cannot be split without changing its
  numbers (sampled generation draws one random stream across batches; a relearning attack's short fit) runs
  on rank 0 alone (`on_main`) while the others wait.
"""
import atexit
import contextlib
import datetime
import os
import signal

import torch.distributed as dist

_alone = False     # rank 0 inside `on_main`: the others are waiting, so no collective may run
_in_shard = False  # inside one rank's share of a `shard_map`: nested passes run locally
_launcher = None   # Lightning's launcher, to stop the processes it started when rank 0 fails


def is_worker_rank() -> bool:
    """A process other than global rank 0, known from the environment before any process group exists:
    Lightning's children (LOCAL_RANK / NODE_RANK), torchrun (RANK) and SLURM tasks (SLURM_PROCID)."""
    return any(os.environ.get(var, "0") != "0" for var in ("LOCAL_RANK", "NODE_RANK", "RANK")) or (
        int(os.environ.get("SLURM_NTASKS", "1")) > 1 and os.environ.get("SLURM_PROCID", "0") != "0")


def active() -> bool:
    """Collectives run: several processes joined, and not inside rank 0's solo part."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1 and not _alone


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else (1 if is_worker_rank() else 0)


def is_main() -> bool:
    return rank() == 0


def launch(trainer_cfg, multirun: bool = False) -> None:
    """Start the other processes of a multi-process trainer config now and join them in one process group,
    which every later `fit` reuses (Lightning skips its own launch when the group exists). One process: no-op.
    `trainer.timeout_min` bounds every wait, rank 0's solo parts included (an attack battery on a large model)."""
    from unlearn.errors import require
    from unlearn.stages.trainer import world_size

    if world_size(trainer_cfg) <= 1 or (dist.is_available() and dist.is_initialized()):
        return
    from lightning_fabric import Fabric
    from lightning_fabric.strategies import DDPStrategy

    global _launcher
    timeout = datetime.timedelta(minutes=float(trainer_cfg.get("timeout_min") or 180))
    fabric = Fabric(accelerator=trainer_cfg.accelerator, devices=trainer_cfg.devices, num_nodes=trainer_cfg.get("num_nodes", 1) or 1,
                    strategy=DDPStrategy(timeout=timeout))
    # Lightning's launcher re-runs the command line, which in a local `-m` sweep is the whole sweep.
    require(not multirun or fabric._connector.cluster_environment.creates_processes_externally,
            f"trainer.devices={trainer_cfg.devices} starts its processes by re-running the command, which inside a local "
            "-m sweep re-runs the sweep; run each job alone, or sweep through hydra/launcher=slurm (one task per device)")
    fabric.launch()
    _launcher = fabric._strategy.launcher
    if not is_worker_rank():  # however rank 0 ends (an error outside a fit, sys.exit), the others do not wait it out
        atexit.register(stop_others)


def go_alone() -> None:
    """The other ranks have ended: what is left (rank 0's attacks and files) runs as one process."""
    global _alone
    _alone = True


def stop_others() -> None:
    """Rank 0 failed outside a `fit` (or has ended): the processes it started would otherwise wait in a collective
    until the timeout. Those that already ended are not there to stop."""
    for proc in getattr(_launcher, "procs", []):
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGKILL)


def report_failure(err: BaseException) -> None:
    """A worker rank's exit on an error: silent for bad input, which rank 0 meets too and reports in one line;
    a line naming the rank otherwise (a crash of this rank alone)."""
    import sys

    from unlearn.errors import UnlearnError

    if not isinstance(err, UnlearnError):
        print(f"rank {rank()}: {type(err).__name__}: {err}", file=sys.stderr)
    sys.exit(1)


def broadcast(obj):
    """Rank 0's `obj` on every rank (picklable)."""
    if not active():
        return obj
    box = [obj if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def _one_process():
    """This rank runs the block as if alone: no collective inside it may wait for a partner."""
    global _alone
    _alone = True
    try:
        yield
    finally:
        _alone = False


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (building a cache entry), the others after it (reading that entry). Each
    runs it as one process: a rank's collectives inside would meet no partner."""
    if not active():
        yield
        return
    if not is_main():
        dist.barrier()
    with _one_process():
        yield
    if is_main():
        dist.barrier()


def on_main(fn):
    """`fn()` on rank 0 alone, its result sent to every rank; the others wait."""
    if not active() or _in_shard:
        return fn()
    out = None
    if is_main():
        with _one_process():
            out = fn()
    return broadcast(out)


def shard_map(fn, chunks: list) -> list:
    """[fn(c) for c in chunks] on every rank, each rank computing chunks i with i % W == rank (round robin:
    chunks sorted by length share the work evenly). Each chunk is computed exactly as one process would."""
    global _in_shard
    if not active() or _in_shard:
        return [fn(c) for c in chunks]
    me, w = dist.get_rank(), dist.get_world_size()
    _in_shard = True
    try:
        mine = {i: fn(c) for i, c in enumerate(chunks) if i % w == me}
    finally:
        _in_shard = False
    parts = [None] * w
    dist.all_gather_object(parts, mine)
    merged = {i: out for part in parts for i, out in part.items()}
    return [merged[i] for i in range(len(chunks))]
