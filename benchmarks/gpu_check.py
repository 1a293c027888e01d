"""GPU check: every model on CUDA against the same model on the CPU.

For each registered model of the family: copy one set of weights to both devices, compare the loss on the same
batch in eval mode (posterior mean, so no sampling noise) in fp32 and under bf16 autocast, then train one epoch on
each device and print samples/s. Exits 2 where no CUDA device is available.

    python benchmarks/gpu_check.py [--rows 60000] [--features 784] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {
    "vae_mlp": {},
    "beta_vae_annealed": {"capacity_max": 25.0, "gamma": 100.0},
    "beta_tcvae": {"beta": 6.0},
    "vae_conv": {"input_shape": (1, 28, 28), "channels": (32, 64), "hidden_dims": (256,)},
    "vae_gan": {},
    "beta_tcvae_conv": {"input_shape": (1, 28, 28), "channels": (32, 64), "hidden_dims": (256,), "beta": 6.0},
}


def epoch_rate(model, optimizers, x, batch_size, autocast=None) -> float:
    import torch

    model.train()
    order = torch.randperm(len(x), device=x.device)
    if x.is_cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for begin in range(0, len(x), batch_size):
        model.train_step(x[order[begin : begin + batch_size]], optimizers, 0.0, autocast)
    if x.is_cuda:
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()

    import torch

    from latent.models import create_model

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check")
        return 2
    torch.backends.cudnn.allow_tf32 = False  # compare true fp32 (TF32 convolutions differ at ~1e-3)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    x_cpu = torch.rand(args.rows, args.features)
    x_gpu = x_cpu.cuda()
    batch_cpu = x_cpu[: args.batch_size]
    print(
        f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, {args.rows:,} rows x {args.features}, "
        f"batch {args.batch_size}"
    )
    print(
        f"{'model':<20}{'|Δloss| fp32':>14}{'rel':>10}{'|Δloss| bf16':>14}{'rel':>10}"
        f"{'CPU samples/s':>16}{'GPU samples/s':>16}{'speed-up':>10}"
    )
    worst = 0.0
    for name, params in MODELS.items():
        torch.manual_seed(0)
        cpu = create_model(name, input_dim=args.features, latent_dim=16, **params)
        gpu = copy.deepcopy(cpu).cuda()
        cpu.control.dataset_size = gpu.control.dataset_size = args.rows
        cpu.eval()
        gpu.eval()
        with torch.no_grad():
            ref = float(cpu(batch_cpu).loss)
            fp32 = float(gpu(batch_cpu.cuda()).loss)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                bf16 = float(gpu(batch_cpu.cuda()).loss)
        rel32, rel16 = abs(fp32 - ref) / abs(ref), abs(bf16 - ref) / abs(ref)
        worst = max(worst, rel32)
        cpu_rate = epoch_rate(
            cpu, cpu.configure_optimizers(1e-3, 0.0), x_cpu[: min(args.rows, 10_000)], args.batch_size
        )
        gpu_rate = epoch_rate(
            gpu,
            gpu.configure_optimizers(1e-3, 0.0),
            x_gpu,
            args.batch_size,
            torch.autocast("cuda", dtype=torch.bfloat16),
        )
        print(
            f"{name:<20}{abs(fp32 - ref):>14.3g}{rel32:>10.1e}{abs(bf16 - ref):>14.3g}{rel16:>10.1e}"
            f"{cpu_rate:>16,.0f}{gpu_rate:>16,.0f}{gpu_rate / cpu_rate:>9.1f}x"
        )
    tolerance = 1e-4
    print(
        f"fp32 CPU vs GPU loss, worst relative difference {worst:.1e} (tolerance {tolerance:.0e}): "
        f"{'ok' if worst <= tolerance else 'FAILED'}"
    )
    return 0 if worst <= tolerance else 1


if __name__ == "__main__":
    raise SystemExit(main())
