"""Data-parallel training under PyTorch's launcher (torchrun / accelerate launch), via fastai's distrib_ctx.

Launch every fold (or one, with --fold K) with, e.g.::

    torchrun --nproc_per_node 4 -m labeler train WORKSPACE --lr 2e-3 ...

Each process trains on its share of every batch; rank 0 predicts and writes the fold files.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch


def _broadcast(self, t, rank):
    """fastai's DistributedDL._broadcast, on CPU tensors when the backend is gloo (fastai assumes nccl/CUDA)."""
    device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    t = torch.tensor(t, dtype=torch.long, device=device)
    torch.distributed.broadcast(t, rank)
    return t.cpu().tolist()


@contextmanager
def distributed(learn):
    """Train ``learn`` data-parallel for the duration of the block (SyncBatchNorm on CUDA only)."""
    from fastai.distributed import DistributedDL

    DistributedDL._broadcast = _broadcast
    on_gpu = torch.cuda.is_available()
    with learn.distrib_ctx(sync_bn=on_gpu, cpu=not on_gpu):  # cpu=True: accelerate picks gloo over CPU
        yield learn


@contextmanager
def rank0_alone():
    """Let rank 0 work alone (fastai sees one process, so it gathers nothing); the others wait at a barrier."""
    saved = os.environ.get("WORLD_SIZE")
    os.environ["WORLD_SIZE"] = "1"
    try:
        yield
    finally:
        if saved is not None:
            os.environ["WORLD_SIZE"] = saved
        torch.distributed.barrier()
