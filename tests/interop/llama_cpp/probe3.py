#!/usr/bin/python3
"""probe3.py MODEL: last-position log-probs over the 256 byte tokens after PROBE_PROMPT from
MCW (int8 activations), MCW --exact-activations, llama.cpp defaults and llama.cpp precise; pairwise max diffs."""
import sys, os, json, math, subprocess
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare as C
model = sys.argv[1]
pb = C.PROBE_PROMPT.encode()
vec = {}
for tag, extra in [("mcw_int8", []), ("mcw_exact", ["--exact-activations"])]:
    path = os.path.join(C.TMP, "p.txt"); open(path, "wb").write(pb)
    b = C.mcw_eval(model, path, 256, extra); bt = b["nll"] * b["scored"]
    v = []
    for x in range(256):
        open(path, "wb").write(pb + bytes([x])); e = C.mcw_eval(model, path, 256, extra)
        v.append(-(e["nll"] * e["scored"] - bt))
    vec[tag] = v
for tag, pr in [("llama_default", False), ("llama_precise", True)]:
    lp = os.path.join(C.TMP, "l.txt")
    subprocess.run([C.LCHECK, "logits", model, C.PROBE_PROMPT, lp], env=C.lenv(pr), stderr=subprocess.DEVNULL, check=True)
    vec[tag] = C.log_softmax([float(x) for x in open(lp).read().split()])[:256]
top = sorted(range(256), key=lambda i: -vec["llama_precise"][i])[:10]
tags = list(vec)
print(model, "max |Δ log p| over the 10 most likely bytes (all 256 in brackets)")
for i, a in enumerate(tags):
    for b_ in tags[i + 1:]:
        print("  %-14s vs %-14s %.5f  [%.5f]" % (a, b_, max(abs(vec[a][j] - vec[b_][j]) for j in top),
                                                max(abs(vec[a][j] - vec[b_][j]) for j in range(256))))
