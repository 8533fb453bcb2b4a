#!/usr/bin/env bash
# Runs wanlora's training-step benchmark on the GPU machine from a bundle made by tools/gpu-bundle.sh (this script
# sits inside it; tools/gpu-bundle.sh keeps jmh-core, jopt-simple and commons-math3 in lib/ for the jmh step):
#   bash BUNDLE/gpu-bench.sh [step...]
# steps (default: bench14 bench13):
#   bench14    wanlora bench --task t2v-14B at 384x208x45 (10 steps after 3 warm-up, one-step op profile)
#   bench14swap the same with --blocks_to_swap 10 (musubi's reference setting)
#   bench13    the same for t2v-1.3B
#   bench14big wanlora bench --task t2v-14B at 832x480x81 (3 steps after 1 warm-up)
#   bench14-24g  issue 12: t2v-14B under --max_vram 24G with --blocks_to_swap auto (swap + activation offload chosen by
#              the plan) at 832x480x81, 768x416x81 and 384x208x45, and 384x208x45 with musubi's --blocks_to_swap 10;
#              each with the driver's peak (nvidia-smi memory.used sampled every 100 ms, context included) and the
#              host's peak RSS (VmHWM)
#   bench14-nolimit  the same 14B shapes 832x480x81 and 384x208x45 without a memory limit (the s/it ratio)
#   bench14-seed24g  the seed dataset's other two sections under --max_vram 24G with auto: 768x768x1 and 768x416x21
#              (384x208x45 is in bench14-24g)
#   jmh        issue 11's table per resolution: TrainStepBenchmark (JMH, single-shot seconds per step, 2 warm-up + 5
#              measured steps per trial, 1 fork) over a subset of its 32-trial grid that fits one 10-minute call: t2v-14B
#              fp8_scaled swap 10 at 768x768x1, 768x416x21, 384x208x45, 832x480x81, then t2v-1.3B fp8_scaled swap 0 at
#              the same four shapes. WANLORA_JMH_ARGS="-p task=... -p shape=... -p swap=... -p weights=..." runs one
#              other subset instead. Writes $OUT/train-step-table.md and .json (s/it, peak, % of the GEMM floor, phases).
#   speedab    issue 11's before/after in one call: bench14swap with the GEMM algorithm choice and the kept fp8 backward
#              weights off (WANLORA_GEMM_TUNE=off WANLORA_KEEP_BACKWARD_WEIGHTS=off), each alone, then both on
#   speedtests the GPU tests of issue 11's changes: CudaGemmTuningTest, CudaGemmParityTest, WanDitBackwardWeightsCudaTest
#   tests      the engine's Backend.write / staging / allocator-counter / timeline GPU tests (CudaUploadTest)
# Every step logs to $OUT/<step>.log (or ./gpu-logs); WANLORA_LIB=DIR runs the wanlora jars in DIR ahead of lib/
# (an A/B build). The exit status is non-zero when any step failed.
set -uo pipefail
b=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
logs=${OUT:-$PWD/gpu-logs}
mkdir -p "$logs"
cp="$b/lib/*"
[ -n "${WANLORA_LIB:-}" ] && cp="$WANLORA_LIB/*:$cp"
java=("$b/jre/bin/java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Xss8m ${WANLORA_JAVA_OPTS:-})
tag=${WANLORA_TAG:-}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(bench14 bench13)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$logs/gpu.txt"
status=0
bench() { "${java[@]}" -cp "$cp" dev.wanlora.cli.Main bench "$@"; }
# bench with the driver's peak memory: nvidia-smi samples memory.used (MiB, everything the driver counts) meanwhile
peakbench() {
  local samples; samples=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$samples" &
  local smi=$!
  bench "$@"; local rc=$?
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  echo "driver peak (nvidia-smi memory.used): $(sort -n "$samples" | tail -1) MiB for: bench $*"
  rm -f "$samples"
  return $rc
}
big14=(--task t2v-14B --steps 3 --warmup 1 --top_ops 0)
for step in "${steps[@]}"; do
  log="$logs/$step$tag.log"
  case $step in
    bench14) bench --task t2v-14B --resolution 384x208 --frames 45 2>&1 | tee "$log" || status=1 ;;
    bench14swap) bench --task t2v-14B --resolution 384x208 --frames 45 --blocks_to_swap 10 2>&1 | tee "$log" || status=1 ;;
    bench13) bench --task t2v-1.3B --resolution 384x208 --frames 45 2>&1 | tee "$log" || status=1 ;;
    bench14big) bench --task t2v-14B --resolution 832x480 --frames 81 --steps 3 --warmup 1 2>&1 | tee "$log" || status=1 ;;
    bench14-24g)
      {
        peakbench "${big14[@]}" --resolution 832x480 --frames 81 --blocks_to_swap auto --max_vram 24G
        peakbench "${big14[@]}" --resolution 768x416 --frames 81 --blocks_to_swap auto --max_vram 24G
        peakbench --task t2v-14B --top_ops 0 --resolution 384x208 --frames 45 --blocks_to_swap auto --max_vram 24G
        peakbench --task t2v-14B --top_ops 0 --resolution 384x208 --frames 45 --blocks_to_swap 10 --max_vram 24G
      } 2>&1 | tee "$log" || status=1
      ;;
    bench14-seed24g)
      {
        peakbench --task t2v-14B --top_ops 0 --resolution 768x768 --frames 1 --blocks_to_swap auto --max_vram 24G
        peakbench --task t2v-14B --top_ops 0 --resolution 768x416 --frames 21 --blocks_to_swap auto --max_vram 24G
      } 2>&1 | tee "$log" || status=1
      ;;
    bench14-nolimit)
      {
        peakbench "${big14[@]}" --resolution 832x480 --frames 81
        peakbench --task t2v-14B --top_ops 0 --resolution 384x208 --frames 45
      } 2>&1 | tee "$log" || status=1
      ;;
    jmh)
      rows="$logs/train-step-rows$tag.tsv"
      rm -f "$rows"
      jmh() { WANLORA_TRAIN_STEP_TABLE="$rows" "${java[@]}" -cp "$cp" org.openjdk.jmh.Main TrainStepBenchmark -wi 2 -i 5 -f 1 \
        -jvm "$b/jre/bin/java" "$@"; }
      {
        if [ -n "${WANLORA_JMH_ARGS:-}" ]; then
          # shellcheck disable=SC2086
          jmh $WANLORA_JMH_ARGS
        else
          echo "jmh: a subset of the grid (the full 32 trials take over an hour): 14B fp8_scaled swap 10 and 1.3B fp8_scaled swap 0, four shapes each"
          jmh -p task=t2v-14B -p weights=fp8_scaled -p swap=10 -p shape=768x768x1,768x416x21,384x208x45,832x480x81
          jmh -p task=t2v-1.3B -p weights=fp8_scaled -p swap=0 -p shape=768x768x1,768x416x21,384x208x45,832x480x81
        fi
        "${java[@]}" -cp "$cp" dev.wanlora.benchmarks.TrainStepTable "$rows" "$logs/train-step-table$tag"
      } 2>&1 | tee "$log" || status=1
      ;;
    speedab)
      {
        echo "== before: WANLORA_GEMM_TUNE=off WANLORA_KEEP_BACKWARD_WEIGHTS=off"
        WANLORA_GEMM_TUNE=off WANLORA_KEEP_BACKWARD_WEIGHTS=off bench --task t2v-14B --resolution 384x208 --frames 45 --blocks_to_swap 10 --top_ops 4
        echo "== GEMM algorithm choice only (WANLORA_KEEP_BACKWARD_WEIGHTS=off)"
        WANLORA_KEEP_BACKWARD_WEIGHTS=off bench --task t2v-14B --resolution 384x208 --frames 45 --blocks_to_swap 10 --top_ops 0
        echo "== kept fp8 backward weights only (WANLORA_GEMM_TUNE=off)"
        WANLORA_GEMM_TUNE=off bench --task t2v-14B --resolution 384x208 --frames 45 --blocks_to_swap 10 --top_ops 0
        echo "== after: both on (the GEMM choices now come from the cache)"
        bench --task t2v-14B --resolution 384x208 --frames 45 --blocks_to_swap 10 --top_ops 4
      } 2>&1 | tee "$log" || status=1
      ;;
    speedtests)
      "${java[@]}" -ea -Dwanlora.cudaRequired=true -Dwanlora.goldenDir="${WANLORA_GOLDEN:-$PWD/testdata/golden}" \
        -jar "$b"/test/junit-platform-console-standalone-*.jar execute \
        --class-path "$(ls "$b"/lib/*.jar "$b"/test/*.jar | tr '\n' ':')" --select-class dev.wanlora.engine.cuda.CudaGemmTuningTest \
        --select-class dev.wanlora.engine.cuda.CudaGemmParityTest --select-class dev.wanlora.models.wan.WanDitBackwardWeightsCudaTest \
        --details=tree --disable-banner 2>&1 | tee "$log" || status=1
      ;;
    tests)
      "${java[@]}" -Dwanlora.cudaRequired=true -jar "$b"/test/junit-platform-console-standalone-*.jar execute \
        --class-path "$(ls "$b"/lib/*.jar "$b"/test/*.jar | tr '\n' ':')" --select-class dev.wanlora.engine.cuda.CudaUploadTest \
        --details=tree --disable-banner 2>&1 | tee "$log" || status=1
      ;;
    *) echo "gpu-bench.sh: unknown step $step; expected bench14, bench14swap, bench13, bench14big, bench14-24g, bench14-nolimit, bench14-seed24g, jmh, speedab, speedtests or tests" >&2; status=2 ;;
  esac
done
exit $status
