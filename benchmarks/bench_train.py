"""Time one epoch of the specific stage: the tensor-indexing loop of ``indiseek.train`` against a plain
PyTorch ``DataLoader`` loop of the same networks, batch size and steps. Writes JSON.

Usage: ``python benchmarks/bench_train.py [--n-cells 5000] [--epochs 3] [--device cpu] [--out bench_train.json]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from indiseek.module import SpecificModule, get_objective
from indiseek.train import train_specific


def make_module(n_input: int, n_shared: int, seed: int, device: torch.device) -> SpecificModule:
    torch.manual_seed(seed)
    return SpecificModule(n_input, n_shared, 50, get_objective("indiseek"), lambda_=10.0).to(device)


def plain_epoch(module, x, c_own, c_other, batch_size, n_q_steps, lr, epochs, device) -> list[float]:
    """The same updates driven by a shuffling DataLoader over a TensorDataset (per-sample collation)."""
    module.set_input_scale(x)
    loader = DataLoader(
        TensorDataset(x.cpu(), c_own.cpu(), c_other.cpu()), batch_size=batch_size, shuffle=True, drop_last=True
    )
    opt = torch.optim.Adam(module.encoder_parameters(), lr=lr)
    q_opt = torch.optim.Adam(module.estimator.parameters(), lr=lr)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for xb, cb, ob in loader:
            xb, cb, ob = xb.to(device), cb.to(device), ob.to(device)
            out = module.loss(xb, cb, ob)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            z = out["z"].detach()
            for _ in range(n_q_steps):
                q_loss = module.estimator_loss(z, cb, ob)
                q_opt.zero_grad()
                q_loss.backward()
                q_opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-cells", type=int, default=5000)
    parser.add_argument("--n-input", type=int, default=200)
    parser.add_argument("--n-shared", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="bench_train.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((args.n_cells, args.n_input)), dtype=torch.float32, device=device)
    c_own = torch.as_tensor(rng.standard_normal((args.n_cells, args.n_shared)), dtype=torch.float32, device=device)
    c_other = torch.as_tensor(rng.standard_normal((args.n_cells, args.n_shared)), dtype=torch.float32, device=device)
    idx = torch.arange(args.n_cells, device=device)

    def run(epochs: int) -> float:
        module = make_module(args.n_input, args.n_shared, 0, device)
        start = time.perf_counter()
        train_specific(
            module,
            x,
            c_own,
            c_other,
            idx,
            None,
            max_epochs=epochs,
            batch_size=args.batch_size,
            progress_bar=False,
            early_stopping=False,
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    # The difference between 1 + E and 1 epochs removes set-up and the estimator's warm-up pass.
    run(1)
    fast = (run(1 + args.epochs) - run(1)) / args.epochs

    plain = plain_epoch(
        make_module(args.n_input, args.n_shared, 0, device),
        x,
        c_own,
        c_other,
        args.batch_size,
        5,
        1e-4,
        args.epochs,
        device,
    )
    result = {
        "benchmark": "specific stage, one epoch (encoder step + 5 CLUB steps per batch)",
        "n_cells": args.n_cells, "n_input": args.n_input, "n_shared": args.n_shared, "batch_size": args.batch_size,
        "device": str(device), "threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
        "indiseek_epoch_seconds": fast,
        "dataloader_epoch_seconds": float(np.median(plain)),
        "dataloader_epoch_seconds_all": plain,
        "speedup": float(np.median(plain)) / fast,
    }  # fmt: skip
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
