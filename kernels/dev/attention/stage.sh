#!/usr/bin/env bash
# Copies the kernel source and this harness into $DST (default /work/main/.gpu-attn, ignored there by /.gpu*/) for a
# device run, keeping the harness's relative include path: $DST/src/main/cuda/{attention,attention_sm90a,common},
# $DST/dev/attention/. Builds the harness library here for sm_90a (the wgmma kernels need it; the portable kernels
# compile for it too): libattn.so. Device command: cd .gpu-attn/dev/attention && bash run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); kernels=$(cd "$here/../.." && pwd); dst=${DST:-/work/main/.gpu-attn}
rm -rf "$dst"; mkdir -p "$dst/dev/attention" "$dst/src/main/cuda"
cp -r "$kernels/src/main/cuda/attention" "$kernels/src/main/cuda/attention_sm90a" "$kernels/src/main/cuda/common" \
  "$dst/src/main/cuda/"
cp "$here"/*.cu "$here/check_bench.py" "$here/run.sh" "$dst/dev/attention/"
build() {  # out.so extra-flags...
  local so=$1; shift
  nvcc -shared -Xcompiler -fPIC -O3 -std=c++17 -lineinfo -Xptxas -v -I"$kernels/src/main/cuda/common" "$@" \
    -gencode arch=compute_90a,code=sm_90a -o "$dst/dev/attention/$so" "$dst/dev/attention/harness.cu" > /tmp/attn-build.log 2>&1 \
    || { cat /tmp/attn-build.log; exit 1; }
  echo "$so: $(grep -E "registers|spill" /tmp/attn-build.log | tr -s ' ' | tr '\n' ' ' | cut -c1-400)"
}
build libattn.so

