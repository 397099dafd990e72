"""Seconds per epoch of the specific stage (both modalities) on scvi-tools' Lightning stack against a plain loop.

The stack: :meth:`indiseek.IndiSeek.train` (a ``DataSplitter`` of raw counts from the registry, the input
preparation applied per minibatch, ``SpecificTrainingPlan`` run by ``TrainRunner``). The plain loop: the same
networks, batch size and updates (one encoder step, then a learned estimator's steps) on inputs prepared once and held
as tensors, batches cut by indexing, no Lightning. Each of ``--repeats`` measurements trains a fresh model and
times both; writes JSON with every ratio and their median.

Usage: ``python benchmarks/bench_train.py [--n-cells 5000] [--epochs 5] [--threads 1] [--accelerator cpu] [--repeats 5]
[--out benchmarks/results/bench_train.json]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from _biology import processor
from lightning.pytorch.callbacks import Callback

import indiseek
from indiseek import IndiSeek
from indiseek.defaults import CITESEQ
from indiseek.module import encoder_parameters, estimator_parameters


class EpochTimer(Callback):
    """Wall time of every training epoch, per stage (the plan's ``stage``)."""

    def __init__(self):
        self.seconds: dict[str, list[float]] = {}

    def on_train_epoch_start(self, trainer, plan):
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, plan):
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds.setdefault(plan.stage, []).append(time.perf_counter() - self._start)


def plain_epochs(model: IndiSeek, epochs: int, batch_size: int, lr: float, n_q_steps: int) -> list[float]:
    """The specific stage's updates on prepared tensors, one epoch at a time."""
    module, device = model.module, model.device
    idx = torch.as_tensor(np.sort(model.train_indices), device=device)
    tensors = next(iter(model._make_data_loader(model.adata, batch_size=model.adata.n_obs)))
    with torch.no_grad():
        inputs = module.specific_inputs({k: v.to(device) for k, v in tensors.items()})
    opt = torch.optim.Adam(encoder_parameters(module.specific), lr=lr, foreach=True)
    q_params = estimator_parameters(module.specific)  # none for the ridge estimator, refitted in the loss
    q_opt = torch.optim.Adam(q_params, lr=lr, foreach=True) if q_params else None
    module.train()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        perm = idx[torch.randperm(len(idx), device=device)]
        for b in perm[: len(perm) // batch_size * batch_size].split(batch_size):
            batch = {m: tuple(t[b] for t in v) for m, v in inputs.items()}
            out, z = module.specific_loss(batch)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            for _ in range(n_q_steps if q_opt else 0):
                q_loss = module.estimator_loss(batch, z)
                q_opt.zero_grad(set_to_none=True)
                q_loss.backward()
                q_opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="Measurements of both, in one process.")
    parser.add_argument("--out", default="benchmarks/results/bench_train.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mdata = indiseek.datasets.simulate_citeseq(n_cells=args.n_cells, seed=0, progress_bar=False)
    IndiSeek.setup_mudata(mdata)
    batch_size, lr, n_q_steps = CITESEQ.batch_size, CITESEQ.lr, CITESEQ.n_estimator_steps  # the defaults
    stack, plain, shared = [], [], []
    for _ in range(args.repeats):  # stack and loop one after the other, so that both meet the machine's drift alike
        model, timer = IndiSeek(mdata), EpochTimer()
        model.train(max_epochs=args.epochs, early_stopping=False, seed=0, accelerator=args.accelerator,
                    callbacks=[timer], enable_progress_bar=False)  # fmt: skip
        loop = plain_epochs(model, args.epochs, batch_size, lr, n_q_steps)
        # the first epoch of each includes warm-up (allocations, the stack's first pass): the median of the rest
        stack.append(float(np.median(timer.seconds["specific"][1:])))
        plain.append(float(np.median(loop[1:])))
        shared.append(float(np.median(timer.seconds["shared"][1:])))
    ratios = [a / b for a, b in zip(stack, plain, strict=True)]
    record = {
        "benchmark": "specific stage of both modalities, one epoch (encoder step + learned estimator steps per batch)",
        "n_cells": args.n_cells,
        "n_genes": int(mdata["rna"].n_vars),
        "batch_size": batch_size,
        "lr": lr,
        "club_estimator": CITESEQ.club_estimator,
        "n_estimator_steps": n_q_steps,
        "n_layers_shared": CITESEQ.n_layers_shared,
        "n_layers_estimator": CITESEQ.n_layers_estimator,
        "activation": CITESEQ.activation,
        "device": str(model.device),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": processor(),
        "repeats": args.repeats,
        "stack_epoch_seconds_all": stack,
        "plain_epoch_seconds_all": plain,
        "stack_over_plain_all": ratios,
        "shared_stage_epoch_seconds_all": shared,
        "stack_epoch_seconds": float(np.median(stack)),
        "plain_epoch_seconds": float(np.median(plain)),
        "shared_stage_epoch_seconds": float(np.median(shared)),
        "stack_over_plain": float(np.median(ratios)),
    }
    with open(args.out, "w") as fh:
        json.dump(record, fh, indent=1)
    print(json.dumps({k: v for k, v in record.items() if not k.endswith("_all")}, indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
