#!/usr/bin/env bash
# Device entry: instruction mix of each library, then check_bench.py runs listed in RUNS (lib|args per line).
set -o pipefail
OUT=${OUT:-/tmp/attn-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.used --format=csv,noheader
for so in lib*.so; do
  echo "== $so: $(cuobjdump -sass "$so" | grep -oE "HGMMA[.A-Z0-9]*|HMMA[.A-Z0-9]*|LDSM[.A-Z0-9]*|LDL[.A-Z0-9]*|STL[.A-Z0-9]*" | sort | uniq -c | tr -s ' ' | tr '\n' ' ')"
done
RUNS=${RUNS:-"libattn.so|--checks=full"}
while IFS='|' read -r so args; do
  [ -n "$so" ] || continue
  PYTHONUNBUFFERED=1 timeout ${RUN_TIMEOUT:-600} python3 check_bench.py "./$so" $args 2>&1 | tee -a "$OUT/log.txt"
done <<< "$RUNS"
