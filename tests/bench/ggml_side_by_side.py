#!/usr/bin/env python3
"""Issue 14's GEMV targets, measured beside ggml in one run: for each width and shape,
ggml's `test-backend-ops perf -o MUL_MAT` and MCW's `bench_packed_gemv BM_Gemv` alternate,
round after round, so that both see the same machine load. Prints µs per product and
ggml ÷ MCW per round, then the median ratio.

ggml is built beside MCW (the tool library's `fetch` of ggml-org/ggml; Release,
GGML_NATIVE, GGML_BUILD_TESTS). Its perf list has m=4096, k=14336 but not the transposed
shape; add `test_mul_mat(type_a, type_b, 14336, 1, 4096, {1, 1}, {1, 1})` beside it in
tests/test-backend-ops.cpp for the 14336×4096 rows (docs/PERFORMANCE.md says which runs
had it).

  tests/bench/ggml_side_by_side.py --ggml GGML/build/bin/test-backend-ops \
      --mcw build/tests/bench/bench_packed_gemv [--rounds 3] [--widths f16,q4]
"""
import argparse
import re
import statistics
import subprocess

# width: (ggml type, MCW BM_Gemv kind index, int8 activations)
WIDTHS = {
    "f16": ("f16", 1, 1),
    "q8": ("q8_0", 2, 1),
    "q4": ("q4_K", 3, 1),
    "q3": ("q3_K", 4, 1),
    "q2": ("q2_K", 5, 1),
}
SHAPES = [(4096, 14336), (14336, 4096)]  # rows (ggml m) × cols (ggml k)


def ggml_us(binary, gtype, rows, cols):
    pattern = f"type_a={gtype},type_b=f32,m={rows},n=1,k={cols},"
    out = subprocess.run([binary, "perf", "-o", "MUL_MAT", "-b", "CPU", "-p", pattern],
                         capture_output=True, text=True, check=False).stdout
    m = re.search(r"([0-9.]+) us/run", out)
    return float(m.group(1)) if m else None


def mcw_us(binary, kind, int8, rows, cols):
    name = f"BM_Gemv/{kind}/{rows}/{cols}/2/{int8}/real_time$"
    out = subprocess.run([binary, f"--benchmark_filter={name}", "--benchmark_min_time=1",
                          "--benchmark_format=console"],
                         capture_output=True, text=True, check=False).stdout
    m = re.search(r"real_time\s+([0-9.]+) us", out)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ggml", required=True)
    ap.add_argument("--mcw", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--widths", default=",".join(WIDTHS))
    ap.add_argument("--shapes", default="4096x14336,14336x4096")
    args = ap.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    print("| width | ggml type | shape | ggml µs | MCW µs | ggml ÷ MCW | median |")
    print("|---|---|---|---|---|---|---:|")
    for width in args.widths.split(","):
        gtype, kind, int8 = WIDTHS[width]
        for rows, cols in shapes:
            g, m = [], []
            for _ in range(args.rounds):
                g.append(ggml_us(args.ggml, gtype, rows, cols))
                m.append(mcw_us(args.mcw, kind, int8, rows, cols))
            ratios = [a / b for a, b in zip(g, m) if a and b]
            fmt = lambda v: " / ".join("—" if x is None else f"{x:.0f}" for x in v)
            med = f"{statistics.median(ratios):.2f}" if ratios else "—"
            print(f"| {width} | {gtype.upper()} | {rows}×{cols} | {fmt(g)} | {fmt(m)} | "
                  f"{' / '.join(f'{r:.2f}' for r in ratios)} | {med} |", flush=True)


if __name__ == "__main__":
    main()
