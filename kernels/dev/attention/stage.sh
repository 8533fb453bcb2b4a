#!/usr/bin/env bash
# Copies the kernel source and this harness into /work/main/.gpu-attn (ignored there by /.gpu*/) for a device run,
# keeping the harness's relative include path: .gpu-attn/src/main/cuda/{attention,common}, .gpu-attn/dev/attention/.
# Builds libattn.so here (sm_90) so the device run needs no compile. Device command: cd .gpu-attn/dev/attention && bash run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); kernels=$(cd "$here/../.." && pwd); dst=/work/main/.gpu-attn
rm -rf "$dst"; mkdir -p "$dst/dev/attention" "$dst/src/main/cuda"
cp -r "$kernels/src/main/cuda/attention" "$kernels/src/main/cuda/common" "$dst/src/main/cuda/"
cp "$here/harness.cu" "$here/check_bench.py" "$here/run.sh" "$dst/dev/attention/"
nvcc -shared -Xcompiler -fPIC -O3 -std=c++17 -lineinfo -Xptxas -v -I"$kernels/src/main/cuda/common" \
  -gencode arch=compute_90,code=sm_90 -o "$dst/dev/attention/libattn.so" "$dst/dev/attention/harness.cu" > /tmp/attn-build.log 2>&1 \
  || { cat /tmp/attn-build.log; exit 1; }
grep -E "Compiling entry|registers|spill" /tmp/attn-build.log
