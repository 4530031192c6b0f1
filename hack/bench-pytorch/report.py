#!/usr/bin/python3
"""Turns the side-by-side benchmark's raw runs into its report; run.sh calls it, one subcommand each.

Layout run.sh writes (one JSON-lines file per training run, as the programs print them):
  RUNS/<input>-t<T>/<config>/<n>.jsonl    throughput runs; <config> is "ours" or
                                          "torch-omp<O>-blas<B>-<nchw|cl>"
  ACC/<side>-seed<S>.jsonl                accuracy runs; <side> is "ours" or "torch"
  PEAK                                    every output of hack/peak-flops, concatenated

A figure is the median of a configuration's runs; PyTorch's figure for a group is the fastest
configuration's median. The Go trainer's and bench.py's images/s both cover the training pass only.
"""
import argparse, glob, gzip, json, os, re, statistics, struct, sys

# Image shape (height, width, channels) of each input run.sh benchmarks.
SHAPES = {"fashion": (28, 28, 1), "cifar": (32, 32, 3)}
TITLES = {"fashion": "Fashion-MNIST (28x28x1)", "cifar": "CIFAR-shaped synthetic (32x32x3)"}
CONFIG = re.compile(r"torch-omp(\d+)-blas(\d+)-(nchw|cl)$")


def flops_per_image(h, w, c):
    """Training FLOPs of the reference model per image: as flopsPerImage in trainer/train/bench_test.go."""
    oh, ow = h - 2, w - 2
    conv = 2 * oh * ow * 32 * (9 * c + 1)
    flat = (oh // 2) * (ow // 2) * 32
    dense = 2 * flat * 64 + 2 * 64 * 10
    return 2 * conv + 3 * dense


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def epochs(rows):
    return [r for r in rows if "epoch" in r and "images_per_second" in r]


def describe(config):
    if config == "ours":
        return "Go trainer"
    omp, blas, fmt = CONFIG.match(config).groups()
    return f"OMP {omp}, OpenBLAS {blas}, {'channels-last' if fmt == 'cl' else 'NCHW'}"


def runs(config_dir):
    """Images/s of each run of one configuration, checking that PyTorch ran as asked."""
    config = os.path.basename(config_dir)
    out = []
    for path in sorted(glob.glob(os.path.join(config_dir, "*.jsonl"))):
        rows = read_jsonl(path)
        ep = epochs(rows)
        if not ep:
            sys.exit(f"report: {path}: no epoch line")
        m = CONFIG.match(config)
        if m:  # bench.py's last line says what it actually ran with: a mismatch voids the figure
            final = rows[-1]
            want = {"threads": int(m[1]), "openblas_threads": int(m[2]), "channels_last": m[3] == "cl"}
            got = {k: final.get(k) for k in want}
            if got != want:
                sys.exit(f"report: {path}: PyTorch ran with {got}, not the configuration's {want}")
        out.append(ep[0]["images_per_second"])
    return out


def group_figures(group_dir):
    """{config: [images/s of each run]} for one input and thread count."""
    return {os.path.basename(d): runs(d) for d in sorted(glob.glob(os.path.join(group_dir, "*")))}


def best_torch(figs):
    torch = {c: statistics.median(v) for c, v in figs.items() if c != "ours"}
    return max(torch, key=torch.get)


def peaks(path):
    """{threads: (GFLOP/s, ISA)}: the best ISA, and the best of the repeated measurements (noise only
    ever lowers a peak)."""
    best = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"(\S+)\s+threads (\d+):\s+([\d.]+) GFLOP/s", line)
            if m:
                t, g = int(m[2]), float(m[3])
                if g > best.get(t, (0, ""))[0]:
                    best[t] = (g, m[1])
    return best


def cmd_truncate_idx(a):
    """A copy of an IDX dataset with only the first N training examples (the test split whole)."""
    os.makedirs(a.dst, exist_ok=True)
    for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]:
        src = os.path.join(a.src, name)
        raw = open(src, "rb").read() if os.path.exists(src) else gzip.open(src + ".gz").read()
        if name.startswith("train-"):
            ndim = struct.unpack(">I", raw[:4])[0] & 0xFF
            dims = list(struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim]))
            per = 1
            for d in dims[1:]:
                per *= d
            n = min(a.n, dims[0])
            body = raw[4 + 4 * ndim:4 + 4 * ndim + n * per]
            raw = raw[:4] + struct.pack(">" + "I" * ndim, n, *dims[1:]) + body
        with open(os.path.join(a.dst, name), "wb") as f:
            f.write(raw)


def cmd_peak(a):
    for t, (g, isa) in sorted(peaks(a.peak).items()):
        print(f"  threads {t}: {g:7.1f} GFLOP/s ({isa})")


def cmd_group(a):
    """The table of every configuration tried for one input and thread count, the winner marked."""
    figs = group_figures(a.dir)
    win = best_torch(figs)
    print(f"  {'configuration':<38} {'median':>8}  {'min':>7} {'max':>7}  runs (images/s)")
    for c, v in figs.items():
        mark = "  <- PyTorch's best" if c == win else ""
        print(f"  {describe(c):<38} {statistics.median(v):8.0f}  {min(v):7.0f} {max(v):7.0f}  "
              + " ".join(f"{x:.0f}" for x in v) + mark)


def cmd_best(a):
    """The winning PyTorch configuration as 'OMP BLAS FORMAT', for the shell to read."""
    print(*CONFIG.match(best_torch(group_figures(a.dir))).groups())


def cmd_summary(a):
    pk = peaks(a.peak)
    print(f"{'input':<34} {'threads':>7} {'ours img/s':>10} {'torch img/s':>11}  {'ours/torch':>10} "
          f"{'ours %peak':>10} {'torch %peak':>11}  PyTorch's best configuration")
    groups = []  # (input, threads), in SHAPES' order, then by threads
    for g in os.listdir(a.runs):
        inp, t = g.rsplit("-t", 1)
        groups.append((list(SHAPES).index(inp), int(t), inp))
    for _, t, inp in sorted(groups):
        figs = group_figures(os.path.join(a.runs, f"{inp}-t{t}"))
        win = best_torch(figs)
        ours, torch = statistics.median(figs["ours"]), statistics.median(figs[win])
        flops = flops_per_image(*SHAPES[inp])
        peak = pk.get(t, (float("nan"), ""))[0]
        pct = lambda ips: 100 * ips * flops / 1e9 / peak
        print(f"{TITLES[inp]:<34} {t:>7} {ours:>10.0f} {torch:>11.0f}  {ours / torch:>9.2f}x "
              f"{pct(ours):>9.1f}% {pct(torch):>10.1f}%  {describe(win)}")
    print()
    for inp, shape in SHAPES.items():
        print(f"FLOPs per training image, {TITLES[inp]}: {flops_per_image(*shape) / 1e6:.2f} M "
              "(conv forward and weight gradient, dense forward and both gradients)")


def cmd_accuracy(a):
    seeds = sorted({int(re.search(r"seed(\d+)", p)[1]) for p in glob.glob(os.path.join(a.dir, "*.jsonl"))})
    e = a.epochs
    cols = ["seed", "ours@1", "torch@1", f"ours@{e}", f"torch@{e}", "ours img/s", "torch img/s"]
    print(" ".join(f"{c:<11}" for c in cols))
    acc = {k: [] for k in cols[1:5]}
    for s in seeds:
        o = epochs(read_jsonl(os.path.join(a.dir, f"ours-seed{s}.jsonl")))
        p = epochs(read_jsonl(os.path.join(a.dir, f"torch-seed{s}.jsonl")))
        vals = [o[0]["test_accuracy"], p[0]["test_accuracy"], o[e - 1]["test_accuracy"], p[e - 1]["test_accuracy"]]
        for k, v in zip(cols[1:5], vals):
            acc[k].append(v)
        print(f"{s:<11} " + " ".join(f"{v:<11.4f}" for v in vals)
              + f" {o[0]['images_per_second']:<11.0f} {p[0]['images_per_second']:<11.0f}")
    print(f"{'median':<11} " + " ".join(f"{statistics.median(v):<11.4f}" for v in acc.values()))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True)
    s = sub.add_parser("truncate-idx"); s.add_argument("src"); s.add_argument("dst"); s.add_argument("n", type=int)
    s.set_defaults(f=cmd_truncate_idx)
    s = sub.add_parser("peak"); s.add_argument("peak"); s.set_defaults(f=cmd_peak)
    s = sub.add_parser("group"); s.add_argument("dir"); s.set_defaults(f=cmd_group)
    s = sub.add_parser("best"); s.add_argument("dir"); s.set_defaults(f=cmd_best)
    s = sub.add_parser("summary"); s.add_argument("runs"); s.add_argument("peak"); s.set_defaults(f=cmd_summary)
    s = sub.add_parser("accuracy"); s.add_argument("dir"); s.add_argument("epochs", type=int); s.set_defaults(f=cmd_accuracy)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    main()
