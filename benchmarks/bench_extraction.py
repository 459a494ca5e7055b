"""Bottleneck (BN) extraction speed against the machine's compute-bound limit.

For each network (efficientnet_lite0 with its ImageNet weights, resnet50 with random weights,
which cost the same) and each precision, the benchmark times the feature extractor on batches of
preprocessed images (``torch.inference_mode``, channels-last, oneDNN) and prints images per second
next to the compute-bound limit measured in the same run:

    limit (images/s) = matrix-multiply throughput (GFLOP/s, torch.mm, same precision)
                       / network FLOPs per image (torch.utils.flop_counter.FlopCounterMode)

The printed fraction says how close the convolutions come to the machine's best dense matrix
product. The matrix products are timed between the network's batches and both figures are the
best of ``--repeats``, so that other work on the machine slows both alike. The network is
prepared as :func:`fusion_utils.features.extraction.extract_features` prepares it (BatchNorm folded,
channels-last). ``--pipeline`` also times
:func:`fusion_utils.features.extraction.extract_features` end to end
(JPEG decoding, resizing, normalisation included) on real HAM10000 images (``--image-dir``,
default the 200x150 copies; ``--pipeline-images`` of them) and, in the same run and on the same
batches' shapes, the network's forward-only rate; their ratio is the pipeline's efficiency (the
issue's target: at least 80%, i.e. decoding and resizing are not the bottleneck).

Usage::

    python benchmarks/bench_extraction.py                    # defaults: batch 32, 2 repeats
    python benchmarks/bench_extraction.py --batch-size 64 --repeats 3 --pipeline
    python benchmarks/bench_extraction.py --pipeline --networks efficientnet_lite0 \
        --precisions float32 --pipeline-images 512

Figures are printed, never asserted; on a machine shared with other work they are noisy. The run
applies :func:`fusion_utils.allocator.keep_freed_memory` first, as extraction does;
``FUSION_KEEP_FREED_MEMORY=0`` measures glibc's default allocator (on 2 cores, batch 128: 17.5
vs 47.1 images/s end to end).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from fusion_utils.allocator import keep_freed_memory
from fusion_utils.features.backbones import fold_batchnorm, get_backbone
from fusion_utils.features.extraction import precision_context

PRECISIONS = ("float32", "bf16", "bf16-autocast")


def _mm_burst(a: torch.Tensor, b: torch.Tensor, reps: int = 3) -> float:
    """GFLOP/s of ``reps`` back-to-back ``torch.mm(a, b)``."""
    n = a.shape[0]
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return reps * 2 * n**3 / (time.perf_counter() - t0) / 1e9


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Best sustained GFLOP/s of ``torch.mm`` on ``n`` x ``n`` matrices of ``dtype``."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    _mm_burst(a, b, 2)
    best = 0.0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        best = max(best, _mm_burst(a, b))
    return best


def flops_per_image(model: torch.nn.Module, size: int) -> float:
    """FLOPs (2 per multiply-add) of one forward pass on one image."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def measure(model: torch.nn.Module, size: int, batch: int, precision: str, repeats: int,
            mm_dtype: torch.dtype, n: int = 2048) -> tuple[float, float]:
    """Best-of-``repeats`` network images/s and, interleaved with it so that both see the same
    machine load, best matrix-multiply GFLOP/s in ``mm_dtype``."""
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    a = torch.randn(n, n).to(mm_dtype)
    b = torch.randn(n, n).to(mm_dtype)
    dev = torch.device("cpu")
    best_rate, best_mm = 0.0, 0.0
    _mm_burst(a, b, 1)
    with torch.inference_mode(), precision_context(dev, precision):
        model(x)  # warm-up: oneDNN builds its kernels for these shapes
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            best_rate = max(best_rate, batch / (time.perf_counter() - t0))
            best_mm = max(best_mm, _mm_burst(a, b))
    return best_rate, best_mm


def pipeline_rate(batch: int, n_images: int = 512, image_dir: str = "images_200x150",
                  backbone: str = "efficientnet_lite0", precision: str = "float32",
                  repeats: int = 2) -> dict[str, float] | None:
    """End-to-end ``extract_features`` images/s on real HAM10000 images (no cache) against the
    forward-only images/s of the same prepared network at the same batch size, measured in the
    same run (best of ``repeats`` each, interleaved, so that machine load hits both alike)."""
    from fusion_utils.data.manifest import build_manifest
    from fusion_utils.data.splits import stratified_subsample
    from fusion_utils.features.extraction import extract_features
    from fusion_utils.paths import shared_data_dir

    folder = shared_data_dir() / "ham10000"
    if not (folder / "HAM10000_metadata.csv").is_file():
        return None
    df, _ = build_manifest("ham10000", folder, image_dir=image_dir)
    if n_images and n_images < len(df):
        df = df.iloc[stratified_subsample(df["label"].to_numpy(), n_images, 0)]
    df = df.reset_index(drop=True)
    df.attrs = dict(df.attrs)
    bb = get_backbone(backbone, weights="imagenet")
    model = fold_batchnorm(bb.features).to(memory_format=torch.channels_last)
    best_pipe, best_fwd = 0.0, 0.0
    for _ in range(repeats):
        fs = extract_features(df, backbone=backbone, batch_size=batch, device="cpu",
                              precision=precision, use_cache=False, progress=False)
        best_pipe = max(best_pipe, float(fs.info["images_per_second"]))
        x = torch.randn(batch, 3, bb.input_size, bb.input_size).contiguous(
            memory_format=torch.channels_last)
        n_batches = max(1, len(df) // batch)
        with torch.inference_mode(), precision_context(torch.device("cpu"), precision):
            model(x)
            t0 = time.perf_counter()
            for _ in range(n_batches):
                model(x)
            best_fwd = max(best_fwd, n_batches * batch / (time.perf_counter() - t0))
    return {"backbone": backbone, "precision": precision, "images": len(df),
            "image_dir": image_dir, "pipeline_images_per_second": best_pipe,
            "forward_images_per_second": best_fwd, "efficiency": best_pipe / best_fwd}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--networks", default="efficientnet_lite0,resnet50")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--pipeline", action="store_true", help="also time extract_features")
    parser.add_argument("--pipeline-images", type=int, default=512,
                        help="real HAM10000 images timed by --pipeline (0: all)")
    parser.add_argument("--image-dir", default="images_200x150",
                        help="HAM10000 image folder for --pipeline")
    parser.add_argument("--json", default="", help="write the results to this file")
    args = parser.parse_args(argv)
    # the allocator setting extract_features applies, for every figure of the run alike
    # (FUSION_KEEP_FREED_MEMORY=0 measures without it)
    print(f"keep freed memory (fusion_utils.allocator): {keep_freed_memory()}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = True

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}")
    # Only the dtypes the requested precisions use (bf16 matrix products are emulated, and
    # slow, on CPUs without native bf16).
    dtypes = {"float32": torch.float32, "bf16": torch.bfloat16}
    wanted = {"float32" if p == "float32" else "bf16" for p in args.precisions.split(",")}
    peak = {name: matmul_gflops(dt) for name, dt in dtypes.items() if name in wanted}
    print("torch.mm 2048^2: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peak.items()))
    rows = []
    print(f"{'network':<20}{'precision':<15}{'GFLOP/img':>10}{'img/s':>9}{'mm GFLOP/s':>12}"
          f"{'limit img/s':>13}{'of limit':>10}")
    for name in args.networks.split(","):
        weights = "imagenet" if name == "efficientnet_lite0" else None
        bb = get_backbone(name, weights=weights)
        model = fold_batchnorm(bb.features).to(memory_format=torch.channels_last)  # as extraction
        gflop = flops_per_image(model, bb.input_size) / 1e9
        for precision in args.precisions.split(","):
            mm_dtype = torch.float32 if precision == "float32" else torch.bfloat16
            rate, mm = measure(model, bb.input_size, args.batch_size, precision, args.repeats,
                               mm_dtype)
            limit = mm / gflop
            rows.append({"network": name, "precision": precision, "gflop_per_image": gflop,
                         "images_per_second": rate, "limit_images_per_second": limit,
                         "fraction_of_limit": rate / limit, "matmul_gflops": mm,
                         "batch_size": args.batch_size, "threads": torch.get_num_threads()})
            print(f"{name:<20}{precision:<15}{gflop:>10.2f}{rate:>9.1f}{mm:>12.1f}{limit:>13.1f}"
                  f"{rate / limit:>10.0%}")
    result: dict = {"matmul_gflops": peak, "rows": rows}
    if args.pipeline:
        name = args.networks.split(",")[0]
        precision = args.precisions.split(",")[0]
        pipe = pipeline_rate(args.batch_size, args.pipeline_images, args.image_dir, name,
                             precision, args.repeats)
        result["pipeline"] = pipe
        if pipe is None:
            print("--pipeline: no real HAM10000 data (paths.shared_data_dir()/ham10000)")
        else:
            print(f"extract_features end to end on {pipe['images']} real HAM10000 images "
                  f"({pipe['image_dir']}, {name}, {precision}): "
                  f"{pipe['pipeline_images_per_second']:.1f} images/s; forward only "
                  f"{pipe['forward_images_per_second']:.1f} images/s; efficiency "
                  f"{pipe['efficiency']:.0%} (target >= 80%)")
    if args.json:
        from fusion_utils.io import atomic_write_json

        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
