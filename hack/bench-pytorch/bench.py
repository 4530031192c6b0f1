#!/usr/bin/python3
"""Trains the kubetrain reference model with PyTorch on the CPU, for the side-by-side benchmark.

Same model, initialisation and optimiser as the Go trainer: Conv2D(32, 3x3, relu) -> MaxPool(2x2)
-> Flatten -> Dense(64, relu) -> Dense(10); Glorot-uniform weights, zero biases; Adam(lr 1e-3,
betas 0.9/0.999, eps 1e-7); batch 32; pixels scaled to [0, 1]; the data reshuffled every epoch.
Prints one JSON object per epoch and a final one with what PyTorch ran on (CPU capability, OpenMP
threads, the BLAS library actually loaded and its thread count), so a report can prove its settings.
`--info` prints the build and threading details instead of training.

Threads: PyTorch's own kernels use OpenMP (--threads, and OMP_NUM_THREADS should agree); its Linear
layers call libblas.so.3, which with libopenblas0-pthread is OpenBLAS with a separate thread pool
sized by OPENBLAS_NUM_THREADS. Set both explicitly: left unset, OpenBLAS adds threads on top.
"""
import argparse, ctypes, gzip, json, os, struct, time

import numpy as np
import torch
import torch.nn as nn


def load_cifar10(d):
    def read(names):
        raw = b"".join(open(os.path.join(d, n), "rb").read() for n in names)
        a = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3073)
        return a[:, 1:].reshape(-1, 3, 32, 32), a[:, 0].astype(np.int64)
    xtr, ytr = read([f"data_batch_{i}.bin" for i in range(1, 6)])
    xte, yte = read(["test_batch.bin"])
    return xtr, ytr, xte, yte


def load_idx(d):
    def read(name):
        p = os.path.join(d, name)
        raw = gzip.open(p + ".gz").read() if not os.path.exists(p) else open(p, "rb").read()
        magic, = struct.unpack(">I", raw[:4])
        ndim = magic & 0xFF
        dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
        return np.frombuffer(raw[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)
    xtr = read("train-images-idx3-ubyte")[:, None]
    xte = read("t10k-images-idx3-ubyte")[:, None]
    return xtr, read("train-labels-idx1-ubyte").astype(np.int64), xte, read("t10k-labels-idx1-ubyte").astype(np.int64)


def model(c, h, w):
    m = nn.Sequential(
        nn.Conv2d(c, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(32 * ((h - 2) // 2) * ((w - 2) // 2), 64), nn.ReLU(), nn.Linear(64, 10))
    for layer in m:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return m


def cpu_capability():
    """The instruction set PyTorch's kernels use (torch.backends.cpu appeared after 1.13)."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        for line in torch.__config__.show().splitlines():
            if "CPU capability usage:" in line:
                return line.split(":", 1)[1].strip()
    return "unknown"


def blas_library():
    """The BLAS shared object this process actually mapped (libblas.so.3 is an alternatives link)."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in os.path.basename(line.split()[-1]).lower()}
    return ", ".join(sorted(libs)) or "none"


def openblas_threads():
    """OpenBLAS's own thread count, or None when the BLAS in use is not OpenBLAS."""
    try:
        return ctypes.CDLL("libblas.so.3").openblas_get_num_threads()
    except (OSError, AttributeError):
        return None


def info():
    print(f"torch {torch.__version__}, CPU capability {cpu_capability()}, "
          f"oneDNN (mkldnn) available: {torch.backends.mkldnn.is_available()}")
    print(f"BLAS loaded: {blas_library()}, OpenBLAS threads: {openblas_threads()}")
    print(torch.__config__.parallel_info().rstrip())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir")
    p.add_argument("--format", choices=["cifar10", "idx"])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-train", type=int, default=0, help="train on the first N examples only (0: all)")
    p.add_argument("--channels-last", action="store_true",
                   help="model and every input batch in channels-last (NHWC) memory format")
    p.add_argument("--info", action="store_true", help="print build and threading details, then exit")
    a = p.parse_args()
    if a.info:
        info()
        return
    if a.dir is None or a.format is None:
        p.error("--dir and --format are required")
    torch.set_num_interop_threads(1)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr, xte, yte = (load_cifar10 if a.format == "cifar10" else load_idx)(a.dir)
    if a.max_train:
        xtr, ytr = xtr[:a.max_train], ytr[:a.max_train]
    xtr = torch.from_numpy(xtr.astype(np.float32) / 255)
    xte = torch.from_numpy(xte.astype(np.float32) / 255)
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    # The memory format of every batch the model sees; contiguous() is a no-op when already so.
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    m = model(*xtr.shape[1:]).to(memory_format=fmt)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for epoch in range(1, a.epochs + 1):
        m.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr))
        total, correct, n = 0.0, 0, 0
        for i in range(0, len(xtr), 32):
            idx = perm[i:i + 32]
            x, y = xtr[idx].contiguous(memory_format=fmt), ytr[idx]
            opt.zero_grad(set_to_none=True)  # every step sets every gradient: skip zeroing them
            out = m(x)
            loss = loss_fn(out, y)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
            n += len(idx)
        train_s = time.perf_counter() - t0
        m.eval()
        with torch.no_grad():
            test_acc = sum((m(xte[i:i + 1000].contiguous(memory_format=fmt)).argmax(1) == yte[i:i + 1000]).sum().item()
                           for i in range(0, len(xte), 1000)) / len(xte)
        print(json.dumps({"epoch": epoch, "epochs": a.epochs, "loss": total / n, "train_accuracy": correct / n,
                          "test_accuracy": test_acc, "images_per_second": n / train_s,
                          "elapsed_seconds": time.perf_counter() - start}), flush=True)
    print(json.dumps({"torch": torch.__version__, "cpu_capability": cpu_capability(),
                      "threads": torch.get_num_threads(), "openblas_threads": openblas_threads(),
                      "blas": blas_library(), "channels_last": a.channels_last}), flush=True)


if __name__ == "__main__":
    main()
