#!/bin/bash
# Reproduce the MCW-GGUF vs llama.cpp check. Needs: Node/npm (npm registry), g++, Debian python3-numpy.
# llama.cpp comes prebuilt from npm: @node-llama-cpp/linux-x64@3.22.1 (llama.cpp v0.5.0, commit 0ad4a86,
# CPU backends libggml-cpu-*.so). The tools are compiled from the llama.cpp source snapshot that
# node-llama-cpp ships (llama/gitRelease.bundle) and linked against the prebuilt shared libraries.
# Runs in WORK (default /tmp/mcw-llama-check), from an MCW build in the checkout above it.
# Not part of ctest: it needs the npm registry and ~3 GB of disk.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
M="${MCW:-$ROOT/build/app/mcw}"
A="$ROOT/assets/models"
export MCW_EVAL_TEXT="$A/fortunes-1m/eval.txt"
WORK="${WORK:-/tmp/mcw-llama-check}"
mkdir -p "$WORK" && cp "$HERE"/*.py "$HERE"/lcheck.cpp "$WORK"/ && cd "$WORK"

# 1. npm packages, no postinstall (nothing is downloaded from GitHub)
[ -f package.json ] || npm init -y >/dev/null
[ -d node_modules/@node-llama-cpp/linux-x64 ] || NODE_LLAMA_CPP_SKIP_DOWNLOAD=true \
    npm install --ignore-scripts --omit=optional node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1
B=node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
cat $B/_nlcBuildMetadata.json; echo
command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c 'import numpy' 2>/dev/null || apt-get install -y python3-numpy

# 2. source snapshot (headers + tools) from the bundle that node-llama-cpp ships
[ -d llama.cpp-src ] || git clone -q node_modules/node-llama-cpp/llama/gitRelease.bundle llama.cpp-src
S=llama.cpp-src

# 3. tools linked against the prebuilt libs (CPU backends are picked at run time from tools-bin/)
mkdir -p tools-bin
for f in $B/*.so; do ln -sf ../$f tools-bin/; done
ln -sf libllama.v0.5.0.so tools-bin/libllama.so; ln -sf libggml.v0.5.0.so tools-bin/libggml.so
CXXF="-O2 -std=c++17 -I$S/include -I$S/common -I$S/ggml/include -I$S/vendor"
LDF="-Ltools-bin -lllama-common -lllama -lggml -lggml-base -lpthread -Wl,-rpath,\$ORIGIN"
g++ $CXXF $S/tools/perplexity/perplexity.cpp $S/tools/perplexity/main.cpp -o tools-bin/llama-perplexity $LDF
g++ $CXXF $S/tools/tokenize/tokenize.cpp -o tools-bin/llama-tokenize $LDF
g++ $CXXF $S/tools/quantize/quantize.cpp $S/tools/quantize/main.cpp -o tools-bin/llama-quantize $LDF 2>/dev/null || \
    g++ $CXXF $S/tools/quantize/quantize.cpp -o tools-bin/llama-quantize $LDF
g++ -O2 -std=c++17 -I$S/include -I$S/ggml/include lcheck.cpp -o tools-bin/lcheck -Ltools-bin -lllama -lggml -lggml-base -Wl,-rpath,\$ORIGIN
/usr/bin/python3 -c "
import ctypes
for l in ['libggml-base.so','libggml.v0.5.0.so','libllama.v0.5.0.so']: ctypes.CDLL('tools-bin/'+l, mode=ctypes.RTLD_GLOBAL)
c=ctypes.CDLL('tools-bin/libllama-common.so'); f=c._Z16llama_build_infov; f.restype=ctypes.c_char_p; print('llama.cpp build info:', f().decode())"

# 4. GGUF files written by MCW
for m in 1 5; do for t in F32 Q8_0 Q6_K Q4_K_M; do
    $M export $A/fortunes-${m}m --format gguf --type $t --out f${m}-$(echo $t | tr A-Z a-z).gguf > export-f${m}-$t.log
done; done
[ -d tiny-synth ] || $M synth --shape tiny --out tiny-synth > /dev/null
[ -d l32-synth ] || $M synth --shape llama-3.2-1b --layers 1 --out l32-synth > /dev/null  # llama3 rope scaling, 128256 vocab
for t in F32 Q8_0 Q4_K_M; do
    $M export tiny-synth --format gguf --type $t --out tiny-$(echo $t | tr A-Z a-z).gguf > export-tiny-$t.log
    $M export l32-synth --format gguf --type $t --out l32-$(echo $t | tr A-Z a-z).gguf > export-l32-$t.log
done

# 5. the comparison (results/<file>.json, one summary line per file). A private copy of the mcw binary
#    is used so that a rebuild of the checkout during the run cannot mix versions. QUICK=1: first 16384
#    tokens of eval.txt only (the 1.2 GB l32 files always use 2048 tokens, window 512).
cp $M mcw-bin; sha256sum mcw-bin
LCHECK_THREADS=${LCHECK_THREADS:-1} QUICK=${QUICK:-1} /usr/bin/python3 compare.py f1-f32.gguf f1-q8_0.gguf f1-q6_k.gguf f1-q4_k_m.gguf \
    f5-f32.gguf f5-q8_0.gguf f5-q6_k.gguf f5-q4_k_m.gguf \
    tiny-f32.gguf tiny-q8_0.gguf tiny-q4_k_m.gguf l32-q8_0.gguf l32-q4_k_m.gguf l32-f32.gguf | tee summary.txt

# 6. llama-quantize from MCW's F32 GGUF vs MCW's own export: same tensor types and bytes?
if [ -x tools-bin/llama-quantize ]; then
    for pair in "f1 Q8_0" "f1 Q6_K" "f1 Q4_K_M" "f5 Q8_0" "f5 Q6_K" "f5 Q4_K_M" "l32 Q4_K_M"; do
        set -- $pair; lt=$(echo $2 | tr A-Z a-z)
        tools-bin/llama-quantize $1-f32.gguf lq-$1-$lt.gguf $2 2 > lq-$1-$lt.log 2>&1
        /usr/bin/python3 gguf_cmp.py $1-$lt.gguf lq-$1-$lt.gguf
    done | tee quantize-cmp.txt
fi
/usr/bin/python3 table.py > table.md; cat table.md
