"""The offline kNN task: the frozen backbone's features of train (the bank) and val (the queries).

Both go through the evaluation transform (resize, centre crop), are cached
(:mod:`features`), and are scored by :func:`synco.pretrain.knn.knn_accuracy`,
the same vote as the pretraining monitor, so the two numbers mean the same.
Whether the bank fits is checked before anything is extracted
(:func:`check_bank_memory`), with the number of bytes it needs.
"""

from __future__ import annotations

import logging

import torch

from synco.common.errors import UserError
from synco.pretrain.knn import bank_bytes, knn_accuracy
from transfer.classification.data import ImageDataset
from transfer.classification.features import FEATURE_DIM, cache_key, cached, extract
from transfer.classification.linear import frozen_backbone
from transfer.classification.loop import Job

logger = logging.getLogger(__name__)
GIB = 1024 ** 3


def available_bytes(device: torch.device) -> int | None:
    """Free memory where the kNN runs: the GPU's free memory, else MemAvailable; None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _size(count: int) -> str:
    return f"{count / GIB:.1f} GiB" if count >= GIB / 10 else f"{count / 1024 ** 2:.1f} MiB"


def check_bank_memory(num_items: int, chunk: int, device: torch.device) -> None:
    """Refuse, before any work, a bank that does not fit in the memory available now."""
    need = bank_bytes(num_items, FEATURE_DIM, chunk)
    have = available_bytes(device)
    if have is not None and need > have:
        where = "GPU memory" if device.type == "cuda" else "memory"
        raise UserError(f"the kNN bank of {num_items} images needs {_size(need)}, but only "
                        f"{_size(have)} of {where} is available")


def run_knn(job: Job, *, resume: bool = False) -> dict[str, dict[str, float]]:
    """``{"knn": {"top1_k20", "top5_k20", ...}}`` of the val images against the train bank."""
    del resume  # nothing to resume: the features are cached, the vote takes seconds
    p = job.protocol
    backbone = frozen_backbone(job)
    sets = {}
    for name, samples in (("bank", job.data.train), ("queries", job.data.val)):
        dataset = ImageDataset(samples, p, train=False, seed=job.seed)
        key = cache_key(weights=job.weights.digest, protocol=p, samples=dataset.samples, train=False,
                        seed=job.seed, view=0)
        sets[name] = cached(job.cache_dir, key, lambda d=dataset: extract(backbone, d, protocol=p,
                                                                           device=job.device))
    labels = {name: torch.tensor([label for _, label in samples])
              for name, samples in (("bank", job.data.train), ("queries", job.data.val))}
    device = job.device
    result = knn_accuracy(sets["bank"].to(device), labels["bank"].to(device), sets["queries"].to(device),
                          labels["queries"].to(device), ks=p["KNN.KS"], num_classes=job.num_classes,
                          temperature=p["KNN.TEMPERATURE"], chunk=p["KNN.CHUNK"])
    job.details.update({"bank_images": len(job.data.train), "query_images": len(job.data.val)})
    job.epoch_done("knn", 1)
    return {"knn": result}
