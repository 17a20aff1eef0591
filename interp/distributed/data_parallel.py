"""Data-parallel training of edits with torch.distributed: each rank a slice of the global batch,
the edits' gradients summed over ranks, the frozen model replicated on every rank.

    torchrun --nproc-per-node 4 -m interp train ...          # GPUs (nccl) or CPU processes (gloo)
    spawn(train_one_rank, nprocs=2)                           # from Python: N local processes

`interp.training.trainer.train` uses these helpers when a process group is initialised with more
than one rank; without one they are no-ops and training is the one-process loop.
"""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = [
    "all_reduce_gradients",
    "all_reduce_sum",
    "broadcast_parameters",
    "init_from_environment",
    "is_data_parallel",
    "rank",
    "rank_slice",
    "spawn",
    "world_size",
]

Item = TypeVar("Item")


def is_data_parallel() -> bool:
    """Whether a process group with more than one rank is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_data_parallel() else 0


def world_size() -> int:
    return dist.get_world_size() if is_data_parallel() else 1


def rank_slice(items: Sequence[Item]) -> list[Item]:
    """This rank's contiguous share of a global batch (sizes differ by at most one; a rank may
    get none when the batch is smaller than the world)."""
    count, here = world_size(), rank()
    base, extra = divmod(len(items), count)
    start = here * base + min(here, extra)
    return list(items[start : start + base + (here < extra)])


def all_reduce_sum(value: float, device: torch.device | str = "cpu") -> float:
    """The sum of `value` over ranks (itself in one process)."""
    if not is_data_parallel():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor)


def all_reduce_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Sum the gradients of `params` over ranks, in one flat all-reduce. A rank whose slice gave
    no gradient contributes zeros; when no rank has one, gradients stay None (the trainer's check
    then says that no gradient reached the edits)."""
    if not is_data_parallel():
        return
    device = params[0].device
    has_grad = torch.tensor(
        [float(any(p.grad is not None for p in params))], dtype=torch.float64, device=device
    )
    dist.all_reduce(has_grad, op=dist.ReduceOp.MAX)
    if not has_grad.item():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()


@torch.no_grad()
def broadcast_parameters(params: Sequence[torch.nn.Parameter]) -> None:
    """Give every rank rank 0's values of `params` (edits initialised apart start equal)."""
    if not is_data_parallel():
        return
    for p in params:
        dist.broadcast(p.data, src=0)


def init_from_environment() -> bool:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR...): nccl on
    GPUs (this rank's LOCAL_RANK device), gloo on CPUs. False when not launched by torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2 or is_data_parallel():
        return is_data_parallel()
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if gpu else "gloo")
    return True


def local_device(device: str) -> str:
    """`device` for this rank: a CUDA device becomes cuda:LOCAL_RANK under torchrun."""
    if is_data_parallel() and torch.device(device).type == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def spawn(
    function: Callable[..., Any],
    nprocs: int,
    *args: Any,
    backend: str = "gloo",
    threads_per_process: int = 1,
) -> list[Any]:
    """Run `function(*args)` on `nprocs` new local processes joined in a process group; returns
    each rank's return value, in rank order (they must be picklable)."""
    if nprocs < 1:
        raise ValueError(f"nprocs must be at least 1, got {nprocs}")
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    port = _free_port()
    mp.start_processes(
        _run_rank,
        args=(function, args, nprocs, port, backend, threads_per_process, queue),
        nprocs=nprocs,
        join=True,
        start_method="spawn",
    )
    results = dict(queue.get() for _ in range(nprocs))
    return [torch.load(io.BytesIO(results[r]), weights_only=False) for r in range(nprocs)]


def _run_rank(
    index: int,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    nprocs: int,
    port: int,
    backend: str,
    threads: int,
    queue: Any,
) -> None:
    torch.set_num_threads(threads)
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{port}", rank=index, world_size=nprocs
    )
    try:
        # as bytes: tensors sent through the queue itself would share memory with a process
        # that has exited by the time they are read
        buffer = io.BytesIO()
        torch.save(function(*args), buffer)
        queue.put((index, buffer.getvalue()))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
