#!/usr/bin/python3
"""gguf_cmp.py A.gguf B.gguf: per tensor, same type? same bytes? (A = MCW export, B = llama-quantize)"""
import sys, os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama.cpp-src/gguf-py"))
import numpy as np
from gguf import GGUFReader
a, b = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
ta = {t.name: t for t in a.tensors}; tb = {t.name: t for t in b.tensors}
same_type = same_bytes = 0; diffs = []
for n, t in ta.items():
    u = tb.get(n)
    if u is None: diffs.append("%s missing in B" % n); continue
    if t.tensor_type != u.tensor_type:
        diffs.append("%s type %s vs %s" % (n, t.tensor_type.name, u.tensor_type.name)); continue
    same_type += 1
    x = np.asarray(t.data).view(np.uint8).ravel(); y = np.asarray(u.data).view(np.uint8).ravel()
    if x.shape == y.shape and np.array_equal(x, y): same_bytes += 1
    else: diffs.append("%s bytes differ (%d of %d bytes)" % (n, int((x != y).sum()) if x.shape == y.shape else -1, x.size))
extra = sorted(set(tb) - set(ta))
print("%s vs %s: %d tensors, same type %d, identical bytes %d%s" % (sys.argv[1], sys.argv[2], len(ta), same_type, same_bytes,
      ("; only in B: %s" % extra) if extra else ""))
for d in diffs[:12]: print("   ", d)
