"""Data-parallel training on torch.distributed: torchrun's environment, the process group, local launches.

A process belongs to a distributed job when torchrun's variables are set (WORLD_SIZE, RANK, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT). `launch` starts N such processes on this machine through torch's own elastic launcher
(what `torchrun --standalone --nproc-per-node N` does); a multi-node job is the same command under
`torchrun --nnodes ...`, whose processes find this environment already set and simply join.
"""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from latent.errors import TrainingError


@dataclass(frozen=True)
class World:
    """This process's place in the job: a single process is rank 0 of a world of one."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    local_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World | None:
    """The job torchrun (or `launch`) placed this process in, or None outside one."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return None
    size = int(os.environ["WORLD_SIZE"])
    return World(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        size=size,
        local_size=int(os.environ.get("LOCAL_WORLD_SIZE", size)),
    )


def join(world: World, device: torch.device, timeout_s: float = 1800) -> torch.device:
    """Join the process group: NCCL with one GPU per local rank, gloo on CPU. Returns this rank's device."""
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        # ranks on one machine share its cores rather than each starting a thread per core
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world.local_size))
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=device if device.type == "cuda" else None,
        )
    return device


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    """The element-wise sum over ranks (in place); unchanged in a single process."""
    if world.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast(value: Any, world: World) -> Any:
    """Rank 0's value of a small picklable object, on every rank."""
    if not world.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def launch(processes: int, entrypoint: Callable[..., Any], *args: Any) -> Any:
    """Run entrypoint(*args) in `processes` local processes with torchrun's environment; rank 0's return value.

    A failing or killed process stops the others (the launcher terminates them) and raises TrainingError naming
    the first failed rank and why.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",  # a free port, as `torchrun --standalone` picks
        max_restarts=0,  # a failed rank fails the run; the next run resumes from the last checkpoint
        monitor_interval=0.5,
        start_method="spawn",
    )
    try:
        results = elastic_launch(config, entrypoint)(*args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        raise TrainingError(f"rank {rank} of {processes} failed: {_reason(failure)}") from None
    return results[0]


def _reason(failure: Any) -> str:
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", message)
    text = " ".join(str(message).split())
    if failure.signal_name() not in ("", "<N/A>", None) and failure.exitcode < 0:
        text = f"killed by {failure.signal_name()} ({text})"
    return text[:2000]
