#!/usr/bin/env python3
"""Predicted vs measured on the demo model (docs/QUALITY.md, "Predicted before running"):
a project on fortunes-1m, its w8/w4/w3/w2/s50 sensitivity scan, twelve mixed per-layer
assignments (six designed, six drawn at random with a fixed seed) and the search's answer,
each predicted with `mcw predict --add` and then run, one after another, so that each
prediction is calibrated on the runs before it. Prints the table as markdown.
usage: tests/bench/predict_vs_measured.py MCW WORKDIR
"""
import json
import os
import random
import sqlite3
import subprocess
import sys

SETTINGS = {
    "w8": ("rtn", {"bits": 8, "group_size": 128, "symmetric": False}),
    "w4": ("rtn", {"bits": 4, "group_size": 128, "symmetric": False}),
    "w3": ("rtn", {"bits": 3, "group_size": 128, "symmetric": False}),
    "w2": ("rtn", {"bits": 2, "group_size": 128, "symmetric": False}),
    "s50": ("magnitude", {"sparsity": 0.5, "pattern": "unstructured"}),
}
LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def write_recipe(path, name, layers, assignment):
    stages = {}
    for layer, s in zip(layers, assignment):
        if s != "keep":
            stages.setdefault(s, []).append(layer)
    text = f"name: {name}\nstages:\n"
    for s, targets in stages.items():
        algorithm, params = SETTINGS[s]
        text += f"  - algorithm: {algorithm}\n    targets: {json.dumps(targets)}\n"
        text += "".join(f"    {k}: {json.dumps(v)}\n" for k, v in params.items())
    with open(path, "w") as f:
        f.write(text)


def main():
    mcw, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    model = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../assets/models/fortunes-1m")
    model = os.path.normpath(model)
    os.makedirs(work, exist_ok=False)
    run = lambda *a: subprocess.run([mcw, *a], cwd=work, check=True, capture_output=True, text=True)
    proj = os.path.join(work, "p.mcwproj")
    run("project", "new", proj, "--model", model, "--calibration", model + "/calib.txt",
        "--evaluation", model + "/eval.txt")
    p = json.load(open(proj))
    p["evaluation"] = {"window": 256, "stride": 256, "max_tokens": 65536}  # as the demo project
    json.dump(p, open(proj, "w"), indent=2)
    layers = [f"model.layers.{b}.{n}.weight" for b in range(4) for n in LINEARS]
    designs = [
        ("mix01", ["w4"] * 28),
        ("mix02", ["w8" if ".0." in l or ".3." in l else "w3" for l in layers]),
        ("mix03", ["s50" if "mlp" in l else "w4" for l in layers]),
        ("mix04", ["w2" if "up_proj" in l or "gate_proj" in l else "w4" for l in layers]),
        ("mix05", ["keep" if "down_proj" in l else "w3" for l in layers]),
        ("mix06", ["w8" if "self_attn" in l else "w2" for l in layers]),
    ]
    rnd = random.Random(7)
    for i in range(7, 13):
        designs.append((f"mix{i:02d}", rnd.choices(["keep", "w8", "w4", "w3", "w2", "s50"],
                                                   weights=[1, 2, 3, 2, 1, 1], k=28)))
    run("sensitivity", proj, "--settings", "w8,w4,w3,w2,s50", "--windows", "8")
    run("run", proj)  # the baseline
    for name, assignment in designs:
        write_recipe(os.path.join(work, name + ".yaml"), name, layers, assignment)
        run("predict", proj, "--recipe", name + ".yaml", "--add", "p-" + name)
        run("run", proj, "--recipe", "p-" + name, "--no-baseline")
    run("search", proj, "--budget", "5bpw", "--levels", "w8,w4,w3,w2", "--windows", "8",
        "--out", "search.yaml")
    run("predict", proj, "--recipe", "search.yaml", "--add", "p-search")
    run("run", proj, "--recipe", "p-search", "--no-baseline")

    db = sqlite3.connect(os.path.join(work, "p.mcwdb"))
    print("| recipe | bits/w predicted | bits/w measured | KL predicted [band] | KL measured "
          "| perplexity predicted [band] | perplexity measured |")
    print("|---|---:|---:|---|---:|---|---:|")
    nan = float("nan")
    for rid, name in db.execute("SELECT id, recipe_name FROM runs ORDER BY id"):
        m = dict(db.execute("SELECT name, value FROM metrics WHERE run = ?", (rid,)).fetchall())
        if "predicted_kl" not in m:
            continue
        g = lambda k: m.get(k, nan)
        def band(k, fmt):
            if g("predicted_" + k) != g("predicted_" + k):
                return "—"
            lo, hi = g(f"predicted_{k}_low"), g(f"predicted_{k}_high")
            inside = lo <= g(k) <= hi
            if lo != lo:
                return f"{g('predicted_' + k):{fmt}} (no band yet)"
            return f"{g('predicted_' + k):{fmt}} [{lo:{fmt}}, {hi:{fmt}}] " + ("✓" if inside else "✗")
        print(f"| {name} | {g('predicted_bits_per_weight'):.4f} | {g('bits_per_weight'):.4f} "
              f"| {band('kl', '.4f')} | {g('kl'):.4f} | {band('perplexity', '.3f')} "
              f"| {g('perplexity'):.3f} |")


if __name__ == "__main__":
    main()
