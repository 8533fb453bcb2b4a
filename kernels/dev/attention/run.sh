#!/usr/bin/env bash
# Device entry (run from a copy of this folder): build the harness unless a prebuilt libattn.so came along, dump the
# resource usage and instruction mix, then check and time. Logs go to $OUT.
set -o pipefail
OUT=${OUT:-/tmp/attn-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.used --format=csv,noheader
if [ ! -f libattn.so ]; then
  nvcc -shared -Xcompiler -fPIC -O3 -std=c++17 -lineinfo -Xptxas -v -I../../src/main/cuda/common -gencode arch=compute_90,code=sm_90 \
    -o libattn.so harness.cu 2>&1 | grep -E "entry|registers|spill" || exit 1
fi
cuobjdump -sass libattn.so > "$OUT/sass.txt" 2>&1 && \
  grep -oE "HMMA[.A-Z0-9]*|LDSM[.A-Z0-9]*|LDGSTS[.A-Z0-9]*|LDL[.A-Z0-9]*|STL[.A-Z0-9]*" "$OUT/sass.txt" | sort | uniq -c
PYTHONUNBUFFERED=1 python3 check_bench.py ./libattn.so "$@" 2>&1 | tee "$OUT/log.txt"
