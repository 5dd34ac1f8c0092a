"""Run a function on several gloo ranks on localhost, with a deadline: a hung child cannot hang the suite."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(rank: int, world: int, port: int, timeout_s: float = 60) -> None:
    """Join a gloo process group on ``127.0.0.1:port`` (collectives time out after ``timeout_s``)."""
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))


def shutdown() -> None:
    """Leave the process group together: a rank that tears gloo down while its peer still talks to it
    aborts (``terminate called without an active exception``)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_ranks(fn, world: int, args: tuple, timeout_s: float = 120) -> None:
    """``fn(rank, world, port, *args)`` in ``world`` spawned processes; kill them all past ``timeout_s``."""
    ctx = mp.start_processes(fn, args=(world, free_port(), *args), nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    try:
        while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{world} ranks did not finish within {timeout_s:.0f} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
                p.join(5)
