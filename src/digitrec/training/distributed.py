"""Training on several processes or machines: DistributedDataParallel, gloo on CPUs, NCCL on GPUs.

`digitrec train --nproc N` starts N processes on this machine. `torchrun` starts them itself,
on one machine or several (`torchrun --nnodes 2 --nproc-per-node 4 --rdzv-endpoint HOST:PORT -m
digitrec train ...`): each process finds RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in its
environment, as torch.distributed's env:// rendezvous reads them.

Every process holds the whole training set (MNIST is 47 MB as floats) and draws the same batch
order and the same augmentation from one seed; each trains on its share of every batch
(images rank, rank + N, ...), and DDP averages the gradients. N processes therefore take the
steps one process would take with the same batch size, each doing 1/N of the forward and
backward work. Rank 0 alone writes the run directory.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This process's share of a batch: rows rank, rank + size, ..."""
        return x if self.size == 1 else x[self.rank :: self.size]

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the processes (epoch statistics)."""
        if self.size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def share(self, value: Any) -> Any:
        """Rank 0's value, on every process (e.g. a run directory named by the clock)."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def world() -> World:
    """This process's place: joins the process group when the environment names one (torchrun,
    or `launch`), else a world of one."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, init_method="env://")
    return World(dist.get_rank(), dist.get_world_size())


def wrap(model: torch.nn.Module, w: World) -> torch.nn.Module:
    """The model as the training step sees it: DDP when there are several processes."""
    if w.size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    # Buffers that change as it trains (batch-norm statistics) follow rank 0's; a model without
    # them (the frozen whitening filters are fit alike on every process) has nothing to send.
    moving = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
    return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=moving)


def close() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(
    rank: int, size: int, port: int, threads: int, fn: Callable[..., Any], args: tuple
) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(size),
    )
    torch.set_num_threads(threads)
    try:
        fn(*args)
    finally:
        close()


def launch(fn: Callable[..., Any], nproc: int, *args: Any) -> None:
    """Run fn(*args) in `nproc` local processes joined into one process group; the cores are
    shared among them. Raises if any process fails."""
    import torch.multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // nproc)
    mp.start_processes(
        _entry,
        args=(nproc, _free_port(), threads, fn, args),
        nprocs=nproc,
        start_method="spawn",
        join=True,
    )
