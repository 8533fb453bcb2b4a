#!/usr/bin/env bash
# Runs on the GPU machine from a bundle made by tools/gpu-bundle.sh (this script sits inside it):
#   bash BUNDLE/gpu-test.sh [tests] [bench] [golden]      (default: tests bench)
# tests:  every JUnit test tagged "cuda" (CUDA-vs-CPU parity etc.); a missing GPU fails instead of skipping.
# bench:  dev.wanlora.benchmarks.KernelBench at the 14B shapes.
# golden: wanlora verify-golden testdata/golden/wan-tiny and sampling-tiny --backend cuda (run from the repository
#         root, or set WANLORA_GOLDEN to a folder holding wan-tiny/ and sampling-tiny/).
# sample: dev.wanlora.benchmarks.SampleBench: 14B, 384x384x45, 20 UniPC steps, CFG 5: bf16, fp8_scaled, and
#         fp8_scaled with 10 blocks swapped (issue 10's target: <= 0.6x musubi's 21.1 s / 24.0 s per sample on an H100).
# demo:   wanlora demo --backend cuda (a tiny random Wan trained for two epochs on the GPU).
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
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main verify-golden "$golden/sampling-tiny" --backend cuda 2>&1 | tee "$logs/golden-sampling.log" || status=1
      ;;
    sample)
      for a in "bf16 0" "fp8_scaled 0" "fp8_scaled 10"; do
        "${java[@]}" -cp "$b/lib/*" dev.wanlora.benchmarks.SampleBench t2v-14B 384x384x45 20 5 $a 2>&1 | tee -a "$logs/sample.log" || status=1
      done
      ;;
    demo)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main demo --dir /tmp/wanlora-demo --backend cuda 2>&1 | tee "$logs/demo.log" || status=1
      ;;
    *) echo "gpu-test.sh: unknown step $step; expected tests, bench, golden, sample or demo" >&2; status=2 ;;
  esac
done
exit $status
