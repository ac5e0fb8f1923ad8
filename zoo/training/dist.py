"""One process or many (torchrun): rank, world size, device and the collectives the loop
uses. CPU runs use gloo, CUDA runs NCCL."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Dist"]


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str = "auto") -> "Dist":
        """This process's rank, world and device (``zoo.devices.resolve_device``): a CUDA
        device without an index is this process's LOCAL_RANK GPU, and under torchrun with
        more than one process every rank takes its own (NCCL); elsewhere gloo."""
        from zoo.devices import resolve_device

        world = int(os.environ.get("WORLD_SIZE", "1"))
        where = resolve_device(device)
        if where.type == "cuda":
            if world > 1 or ":" not in str(device):
                where = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(where)
        device = where
        if world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            return cls(dist.get_rank(), world, device)
        return cls(0, 1, device)

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
