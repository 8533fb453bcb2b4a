#!/usr/bin/env bash
# Runs on the GPU machine from a bundle made by tools/gpu-bundle.sh (this script sits inside it):
#   bash BUNDLE/gpu-test.sh [tests] [bench] [golden]      (default: tests bench)
# tests:  every JUnit test tagged "cuda" (CUDA-vs-CPU parity etc.); a missing GPU fails instead of skipping.
# bench:  dev.wanlora.benchmarks.KernelBench at the 14B shapes.
# golden: wanlora verify-golden testdata/golden/wan-tiny --backend cuda (run from the repository root, or set
#         WANLORA_GOLDEN to a folder holding wan-tiny/).
# demo:   wanlora demo --backend cuda (a tiny random Wan trained for two epochs on the GPU).
# umt5:   wanlora verify-golden sampling-tiny --backend cuda (umT5 in bf16 vs musubi's goldens), then
#         dev.wanlora.benchmarks.UmT5Bench (real-size random-weight umT5-XXL, 4 prompts, bf16 and fp8: time, memory).
# vaegolden: wanlora verify-golden testdata/golden/vae-tiny --backend cuda (the VAE in bf16 against musubi's goldens).
# vaebench:  dev.wanlora.benchmarks.VaeBench (random-weight release VAE: decode of [16,12,48,48], encode, conv3d).
# Logs go to $OUT (or ./gpu-logs when OUT is unset); the exit status is non-zero when any step failed.
set -uo pipefail
b=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
logs=${OUT:-$PWD/gpu-logs}
golden=${WANLORA_GOLDEN:-$PWD/testdata/golden}
mkdir -p "$logs"
java=("$b/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xss8m -ea
      -Dwanlora.goldenDir="$golden" -Dgolden.required=false ${WANLORA_JAVA_OPTS:-})
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests bench)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$logs/gpu.txt"
status=0
for step in "${steps[@]}"; do
  case $step in
    tests)
      "${java[@]}" -Dwanlora.cudaRequired=true -jar "$b"/test/junit-platform-console-standalone-*.jar execute \
        --class-path "$(ls "$b"/lib/*.jar "$b"/test/*.jar | tr '\n' ':')" \
        $(for t in "$b"/test/*-tests.jar; do echo "--scan-class-path=$t"; done) \
        --include-tag cuda --details=tree --disable-banner 2>&1 | tee "$logs/tests.log" || status=1
      ;;
    bench)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.benchmarks.KernelBench 2>&1 | tee "$logs/bench.log" || status=1
      ;;
    golden)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main verify-golden "$golden/wan-tiny" --backend cuda 2>&1 | tee "$logs/golden.log" || status=1
      ;;
    demo)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main demo --dir /tmp/wanlora-demo --backend cuda 2>&1 | tee "$logs/demo.log" || status=1
      ;;
    umt5)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main verify-golden "$golden/sampling-tiny" --backend cuda 2>&1 | tee "$logs/umt5-golden.log" || status=1
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.benchmarks.UmT5Bench 2>&1 | tee "$logs/umt5-bench.log" || status=1
      ;;
    vaegolden)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main verify-golden "$golden/vae-tiny" --backend cuda 2>&1 | tee "$logs/vaegolden.log" || status=1
      ;;
    vaebench)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.benchmarks.VaeBench 2>&1 | tee "$logs/vaebench.log" || status=1
      ;;
    *) echo "gpu-test.sh: unknown step $step; expected tests, bench, golden, demo, umt5, vaegolden or vaebench" >&2; status=2 ;;
  esac
done
exit $status
