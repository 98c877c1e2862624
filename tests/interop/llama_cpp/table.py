#!/usr/bin/python3
import json, glob, os
order = ["f1-f32","f1-q8_0","f1-q6_k","f1-q4_k_m","f5-f32","f5-q8_0","f5-q6_k","f5-q4_k_m","tiny-f32","tiny-q8_0","tiny-q4_k_m","l32-f32","l32-q8_0","l32-q4_k_m"]
print("| file | loads | warnings | token ids equal (6 strings) | greedy first diff vs llama default (MCW / MCW exact), prompts A,B | vs llama f32-KV/no-FA | probe top10 max|Δlogp| MCW/exact vs llama precise | NLL MCW / MCW exact / llama(MCW windows) / llama precise | llama-perplexity -c W (default / precise) | tokens |")
print("|---|---|---|---|---|---|---|---|---|---|")
for n in order:
    p = "results/%s.gguf.json" % n
    if not os.path.exists(p): print("| %s | (not run) |" % n); continue
    r = json.load(open(p))
    w = "; ".join(x.split(": ",1)[-1][:60] for x in r["warnings"]) or "-"
    tok = all(t["byte_ids_equal"] and t["mcw_tokens"] == t["llama_tokens"] == len(t["text"].encode()) for t in r["tokenization"])
    g = r["greedy"]; N = g[0]["n"]
    f = lambda v: "=%d" % N if v is None else str(v)
    gd = ", ".join("%s/%s" % (f(x.get("mcw_first_diff")), f(x.get("mcw_exact_first_diff")) if "mcw_exact_first_diff" in x else "-") for x in g)
    gp = ", ".join("%s/%s" % (f(x.get("mcw_first_diff_vs_precise")), f(x.get("mcw_exact_first_diff_vs_precise")) if "mcw_exact_first_diff_vs_precise" in x else "-") for x in g)
    pr = r["logprob_probe"]
    pd = "/".join("%.4f" % pr[k]["vs_precise_max_abs_logprob_diff_top10"] for k in ("mcw","mcw_exact") if k in pr)
    P = r["perplexity"]
    nll = " / ".join("%.5f" % P[k]["nll"] if k in P else "-" for k in ("mcw","mcw_exact","llama_mcw_scheme","llama_precise_mcw_scheme"))
    ppl = " / ".join("%.6g" % P[k]["perplexity"] if "perplexity" in P[k] else "%.6g" % P[k]["ppl"] for k in ("mcw",) )
    lp = "%s / %s" % (P["llama_perplexity_tool"]["ppl"], P["llama_perplexity_tool_precise"]["ppl"])
    print("| %s | %s | %s | %s | %s | %s | %s | %s (ppl MCW %s, llama %.6g) | %s (W=%d) | %s |" % (n, "yes" if r["loads"] else "NO", w, "yes" if tok else "NO", gd, gp, pd, nll, ppl, P["llama_mcw_scheme"]["ppl"], lp, P["window"], P["max_tokens"]))
