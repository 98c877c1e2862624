#!/usr/bin/python3
"""Compare MCW against the prebuilt llama.cpp (node-llama-cpp's libllama) on MCW-exported GGUFs.

usage: /usr/bin/python3 compare.py FILE.gguf [FILE.gguf ...]   (writes results/<file>.json and prints a summary)
Env: QUICK=1 evaluates only the first 16384 tokens of eval.txt.
"""
import json, math, os, re, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MCW = os.environ.get("MCW", os.path.join(HERE, "mcw-bin"))
LCHECK = os.path.join(HERE, "tools-bin/lcheck")
LPPL = os.path.join(HERE, "tools-bin/llama-perplexity")
EVAL = os.environ["MCW_EVAL_TEXT"]
TMP = tempfile.mkdtemp(prefix="lcheck-")

TOK_STRINGS = [
    "Hello, world! The quick brown fox.",
    "12345 67",
    "!?.,;:'\"()[]{}<>-_=+*&^%$#@~`|\\/",
    "héllo wörld",
    "日本語 🙂 naïve café",
    "tabs\tand\nnewlines\r\n  double  spaces",
]
GEN_PROMPTS = ["The ", "Q: Why did the chicken cross the road?\nA:"]
PROBE_PROMPT = "The good time is "


def run(cmd, check=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed rc=%d: %s" % (cmd, p.returncode, p.stderr.decode(errors="replace")[-2000:]))
    return p


def mcw_eval(model, path, window, extra=(), max_tokens=None):
    cmd = [MCW, "eval", model, "--text", path, "--window", str(window), "--json"] + list(extra)
    if max_tokens:
        cmd += ["--max-tokens", str(max_tokens)]
    out = run(cmd).stdout.decode()
    return json.loads(out[out.index("{"):])


def lenv(precise=False, bos=False):
    return dict(os.environ, LCHECK_PRECISE="1" if precise else "0", LCHECK_BOS="1" if bos else "0")


def lcheck_ppl(model, path, window, max_tokens=0, bos=0, score_from=1, precise=False):
    out = subprocess.run([LCHECK, "ppl", model, path, str(window), str(max_tokens), str(bos), str(score_from)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=lenv(precise), check=True).stdout.decode()
    d = dict(kv.split("=") for kv in out.split())
    return {"tokens": int(d["tokens"]), "scored": int(d["scored"]), "nll": float(d["nll"]), "ppl": float(d["ppl"])}


def mcw_ids_from_text(b):
    """MCW prints pieces; byte vocab ids = byte values, [PADn] / <|bos|> / <|eos|> are specials."""
    ids, i = [], 0
    while i < len(b):
        m = re.match(rb"\[PAD(\d+)\]|<\|bos\|>|<\|eos\|>", b[i:])
        if m:
            g = m.group(0)
            ids.append(int(m.group(1)) if m.group(1) else (256 if g == b"<|bos|>" else 257))
            i += len(g)
        else:
            ids.append(b[i]); i += 1
    return ids


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def log_softmax(v):
    mx = max(v)
    lse = mx + math.log(sum(math.exp(x - mx) for x in v))
    return [x - lse for x in v]


def check(model):
    name = os.path.basename(model)
    r = {"file": name}
    quant = not re.search(r"-f32\.gguf$", name)
    # 1. load + warnings
    p = run([LCHECK, "info", model], check=False)
    r["loads"] = p.returncode == 0
    r["info"] = p.stdout.decode().strip().splitlines()
    r["warnings"] = sorted(set(l.strip() for l in p.stderr.decode(errors="replace").splitlines() if l.strip()))
    env = dict(os.environ, LCHECK_VERBOSE="2")
    with open(os.path.join(HERE, "results", name + ".load.log"), "w") as f:
        f.write(subprocess.run([LCHECK, "info", model], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env).stdout.decode(errors="replace"))
    if not r["loads"]:
        return r
    add_bos = any("add_bos=1" in l for l in r["info"])
    n_ctx_train = int(re.search(r"n_ctx_train=(\d+)", r["info"][0]).group(1))
    window = min(n_ctx_train, 256 if n_ctx_train <= 256 else 512)

    # 2. tokenization: llama.cpp ids vs MCW's byte-level ids, and MCW's own token count + NLL on each string
    toks = []
    for s in TOK_STRINGS:
        b = s.encode("utf-8")
        ll = [int(x) for x in run([LCHECK, "tok", model, s]).stdout.split()]
        path = os.path.join(TMP, "s.txt"); open(path, "wb").write(b)
        me = mcw_eval(model, path, window)
        le = lcheck_ppl(model, path, window)
        toks.append({"text": s, "llama_ids": ll, "byte_ids_equal": ll == list(b),
                     "mcw_tokens": me["tokens"], "llama_tokens": le["tokens"],
                     "mcw_nll": me["nll"], "llama_nll": le["nll"],
                     "ok": ll == list(b) and me["tokens"] == le["tokens"] == len(b) and abs(me["nll"] - le["nll"]) < 2e-2})
    r["tokenization"] = toks
    r["tokenization_equal"] = all(t["ok"] for t in toks)

    # 3. greedy generation
    n_gen = 200 if n_ctx_train <= 256 else 40
    gens = []
    for prompt in GEN_PROMPTS:
        ll = [int(x) for x in subprocess.run([LCHECK, "gen", model, prompt, str(n_gen)], stdout=subprocess.PIPE,
                                             stderr=subprocess.DEVNULL, env=lenv(False, add_bos), check=True).stdout.split()]
        llp = [int(x) for x in subprocess.run([LCHECK, "gen", model, prompt, str(n_gen)], stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, env=lenv(True, add_bos), check=True).stdout.split()]
        g = {"prompt": prompt, "n": n_gen, "llama_ids": ll, "llama_precise_ids": llp,
             "llama_vs_llama_precise_first_diff": first_diff(ll, llp)}
        for tag, extra in [("mcw", []), ("mcw_exact", ["--exact-activations"])]:
            if tag == "mcw_exact" and not quant:
                continue
            out = run([MCW, "generate", model, "--prompt", prompt, "--max-tokens", str(n_gen)] + extra).stdout
            ids = mcw_ids_from_text(out)
            d = first_diff(ids, ll)
            g[tag + "_ids"] = ids
            g[tag + "_first_diff"] = d  # None = all equal (vs llama.cpp defaults: f16 KV cache, flash attention)
            g[tag + "_first_diff_vs_precise"] = first_diff(ids, llp)  # vs llama.cpp with f32 KV, no FA
        gens.append(g)
    r["greedy"] = gens

    # 4. last-position log-probs for byte tokens 0..255 after PROBE_PROMPT (MCW via NLL differences)
    pb = PROBE_PROMPT.encode()
    lpath = os.path.join(TMP, "logits.txt")
    subprocess.run([LCHECK, "logits", model, PROBE_PROMPT, lpath], env=lenv(False), stderr=subprocess.DEVNULL, check=True)
    llp = log_softmax([float(x) for x in open(lpath).read().split()])
    subprocess.run([LCHECK, "logits", model, PROBE_PROMPT, lpath], env=lenv(True), stderr=subprocess.DEVNULL, check=True)
    llpp = log_softmax([float(x) for x in open(lpath).read().split()])
    probes = {}
    for tag, extra in [("mcw", []), ("mcw_exact", ["--exact-activations"])]:
        if tag == "mcw_exact" and not quant:
            continue
        path = os.path.join(TMP, "p.txt")
        open(path, "wb").write(pb)
        base = mcw_eval(model, path, window, extra)
        base_tot = base["nll"] * base["scored"]
        mlp = [float("nan")] * 256
        # big vocabularies: MCW loads slowly, so probe only llama.cpp's 16 most likely bytes
        xs = range(256) if len(llp) <= 1024 else sorted(range(256), key=lambda i: -llp[i])[:16]
        for x in xs:
            open(path, "wb").write(pb + bytes([x]))
            e = mcw_eval(model, path, window, extra)
            assert e["tokens"] == len(pb) + 1, (x, e)
            mlp[x] = -(e["nll"] * e["scored"] - base_tot)
        diffs = [abs(a - b) if a == a else 0.0 for a, b in zip(mlp, llp[:256])]
        diffs_p = [abs(a - b) if a == a else 0.0 for a, b in zip(mlp, llpp[:256])]
        mlp = [a if a == a else -1e30 for a in mlp]
        pm = [math.exp(a) for a in mlp]
        pl = [math.exp(b) for b in llp[:256]]
        probes[tag] = {
            "max_abs_logprob_diff": max(diffs),
            "max_abs_logprob_diff_top10": max(diffs[i] for i in sorted(range(256), key=lambda i: -llp[i])[:10]),
            "argmax_equal": max(range(256), key=lambda i: mlp[i]) == max(range(256), key=lambda i: llp[i]),
            "vs_precise_max_abs_logprob_diff": max(diffs_p),
            "vs_precise_max_abs_logprob_diff_top10": max(diffs_p[i] for i in sorted(range(256), key=lambda i: -llpp[i])[:10]),
            "top5_llama_precise": sorted(range(256), key=lambda i: -llpp[i])[:5],
            "top5_mcw": sorted(range(256), key=lambda i: -mlp[i])[:5],
            "top5_llama": sorted(range(256), key=lambda i: -llp[i])[:5],
            "prob_mass_bytes_mcw": sum(pm), "prob_mass_bytes_llama": sum(pl), "n_probed": len(xs),
        }
    r["logprob_probe"] = probes

    # 5. perplexity
    maxtok = 2048 if n_ctx_train > 256 else (16384 if os.environ.get("QUICK") else 0)
    ppl = {"window": window, "max_tokens": maxtok or "all"}
    m = mcw_eval(model, EVAL, window, [], maxtok or None)
    ppl["mcw"] = {k: m[k] for k in ("tokens", "scored", "nll", "perplexity")}
    if quant:
        m = mcw_eval(model, EVAL, window, ["--exact-activations"], maxtok or None)
        ppl["mcw_exact"] = {k: m[k] for k in ("tokens", "scored", "nll", "perplexity")}
    ppl["llama_mcw_scheme"] = lcheck_ppl(model, EVAL, window, maxtok)
    ppl["llama_precise_mcw_scheme"] = lcheck_ppl(model, EVAL, window, maxtok, precise=True)
    ppl["llama_lppl_scheme"] = lcheck_ppl(model, EVAL, window, maxtok, 1 if add_bos else 0, window // 2 + 1)
    cmd = [LPPL, "-m", model, "-f", EVAL, "-c", str(window), "-t", os.environ.get("LCHECK_THREADS", "2")]
    if maxtok:
        cmd += ["--chunks", str(maxtok // window)]
    for _ in range(3):  # its asynchronous logger occasionally loses the last line on a loaded machine
        out = run(cmd, check=False)
        txt = (out.stdout + out.stderr).decode(errors="replace")
        fm = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", txt)
        if fm:
            break
    ppl["llama_perplexity_tool"] = {"ppl": float(fm.group(1)) if fm else None, "pm": float(fm.group(2)) if fm else None,
                                   "cmd": " ".join(cmd), "rc": out.returncode}
    out = run(cmd + ["-fa", "off", "-ctk", "f32", "-ctv", "f32"], check=False)
    txt = (out.stdout + out.stderr).decode(errors="replace")
    fm = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", txt)
    ppl["llama_perplexity_tool_precise"] = {"ppl": float(fm.group(1)) if fm else None, "rc": out.returncode,
                                           "cmd": " ".join(cmd + ["-fa", "off", "-ctk", "f32", "-ctv", "f32"])}
    r["perplexity"] = ppl
    return r


def main():
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    for model in sys.argv[1:]:
        r = check(model)
        with open(os.path.join(HERE, "results", os.path.basename(model) + ".json"), "w") as f:
            json.dump(r, f, indent=1, ensure_ascii=False)
        g = r.get("greedy", [])
        p = r.get("perplexity", {})
        pr = r.get("logprob_probe", {})
        print("%-16s loads=%s tok_eq=%s greedy_first_diff(mcw)=%s/%s (exact)=%s/%s probe_top10_maxdiff=%s ppl mcw=%s mcw_exact=%s llama(mcw scheme)=%s llama-perplexity=%s llama(lppl scheme)=%s warnings=%s" % (
            r["file"], r["loads"], r.get("tokenization_equal"),
            [x.get("mcw_first_diff") for x in g], [x.get("mcw_first_diff_vs_precise") for x in g],
            [x.get("mcw_exact_first_diff") for x in g], [x.get("mcw_exact_first_diff_vs_precise") for x in g],
            {k: (round(v["max_abs_logprob_diff_top10"], 5), round(v["vs_precise_max_abs_logprob_diff_top10"], 5)) for k, v in pr.items()},
            p.get("mcw", {}).get("perplexity"), p.get("mcw_exact", {}).get("perplexity"),
            p.get("llama_mcw_scheme", {}).get("ppl"), p.get("llama_perplexity_tool", {}).get("ppl"),
            p.get("llama_lppl_scheme", {}).get("ppl"),
            r.get("warnings")), flush=True)


if __name__ == "__main__":
    main()
