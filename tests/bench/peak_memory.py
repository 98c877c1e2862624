#!/usr/bin/env python3
"""Runs a command and reports its wall time and the peaks of its resident memory, sampled
from /proc every 20 ms over the command's whole process tree (the kernel keeps a peak of
the resident set, VmHWM, but none of its anonymous part, RssAnon, which is what a model
copied into memory shows as: mapped weights are file pages the kernel can drop).

usage: tests/bench/peak_memory.py [--json] -- COMMAND [ARGS...]
"""
import json
import os
import subprocess
import sys
import time


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def main():
    args = sys.argv[1:]
    as_json = "--json" in args[: args.index("--")] if "--" in args else False
    cmd = args[args.index("--") + 1:] if "--" in args else args
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd)
    peak_anon = peak_rss = 0
    while proc.poll() is None:
        pids = tree(proc.pid)
        peak_anon = max(peak_anon, sum(status_kib(p, "RssAnon") for p in pids))
        peak_rss = max(peak_rss, sum(status_kib(p, "VmRSS") for p in pids))
        time.sleep(0.02)
    wall = time.monotonic() - t0
    gib = 1024 * 1024
    result = {"command": " ".join(cmd), "exit": proc.returncode, "wall_s": round(wall, 2),
              "peak_anon_gib": round(peak_anon / gib, 3), "peak_rss_gib": round(peak_rss / gib, 3)}
    if as_json:
        print(json.dumps(result))
    else:
        print(f"wall {result['wall_s']} s, peak anonymous {result['peak_anon_gib']} GiB, "
              f"peak resident {result['peak_rss_gib']} GiB, exit {proc.returncode}", file=sys.stderr)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
