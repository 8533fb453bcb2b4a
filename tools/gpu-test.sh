#!/usr/bin/env bash
# Runs on the GPU machine from a bundle made by tools/gpu-bundle.sh (this script sits inside it):
#   bash BUNDLE/gpu-test.sh [tests] [bench] [golden]      (default: tests bench)
# tests:  every JUnit test tagged "cuda" (CUDA-vs-CPU parity etc.); a missing GPU fails instead of skipping.
# bench:  dev.wanlora.benchmarks.KernelBench at the 14B shapes.
# golden: wanlora verify-golden testdata/golden/wan-tiny and sampling-tiny (solvers, CFG loop, umT5 and tokenizer)
#         --backend cuda (run from the repository root, or set WANLORA_GOLDEN to a folder holding both).
# sample: dev.wanlora.benchmarks.SampleBench: 14B, 384x384x45, 20 UniPC steps, CFG 5 (phases: encode, DiT per step, decode): bf16, fp8_scaled, and
#         fp8_scaled with 10 blocks swapped (issue 10's target: <= 0.6x musubi's 21.1 s / 24.0 s per sample on an H100).
# sampleprofile: SampleBench's op profile of one CFG step (two 14B forwards) at 384x384x45, bf16 and fp8_scaled.
# demo:   wanlora demo --backend cuda (a tiny random Wan trained for two epochs on the GPU).
# umt5:   dev.wanlora.benchmarks.UmT5Bench (real-size random-weight umT5-XXL, 4 prompts, bf16 and fp8: time, memory).
# vaegolden: wanlora verify-golden testdata/golden/vae-tiny --backend cuda (the VAE in bf16 against musubi's goldens).
# vaebench:  dev.wanlora.benchmarks.VaeBench (random-weight release VAE: decode of [16,12,48,48], encode, conv3d).
# vaetorch:  tools/torch_vae_bench.py (the same decode and conv3d shapes in PyTorch on the same GPU: issue 9's ratio).
# convtests: the VAE's GPU tests only (CudaVideoParityTest: conv3d on every tile shape, upsample, softmax;
#         CudaRmsNormSiluParityTest; WanVaeCudaTest).
# sampletests: the sampler's GPU tests only (SampleCommandCudaTest: wanlora sample with the real umT5/VAE wiring on the
#         GPU; UmT5StreamingCudaTest: umT5 with streamed layers = resident; DenoisingLoopReuseCudaTest: the loop's reuse of
#         each step's time embedding and each text's cross-attention k/v = the plain loop, bit for bit;
#         DenoisingLoopBatch2CudaTest: CFG as one batch-2 forward = two batch-1 forwards within bf16 noise;
#         SamplingGoldenCudaTest: the 8-step CFG loop (batch-2 CFG) against musubi's golden in bf16).
# samplecfg: SampleBench's bf16 sample (as `sample`) with CFG as two batch-1 forwards (-Dwanlora.cfgMode=two_batch_1):
#         the A/B of batch-2 CFG, which `sample` runs (what `wanlora sample` plans at 384x384x45, also with swap 10 under
#         --max_vram 24G).
# loadtests: the loader's GPU tests only (CudaLoadOpsParityTest: quantizeFp8 on every 14B/1.3B block Linear shape and
#         the golden fp8 data, writeBytes through the staging ring; WanDitWeightsLoadCudaTest: GPU load = CPU load).
# attntests: attention on both kernel paths (issue 11): CudaAttentionTest (the device's default: the Hopper sm_90a
#         kernels on compute capability 9.0), CudaAttentionPortableTest (the portable sm_80 kernels forced),
#         CudaAttentionFusedTest (the Hopper fused backward forced) and the model-level GPU tests that run attention
#         (saved attention, swap, sampling goldens), three times: WANLORA_KERNELS=auto with the two-pass backward, the
#         same with -Dwanlora.attentionBackward=fused (every model-level test through the fused backward), and
#         WANLORA_KERNELS=portable (WANLORA_ATTN_MODES="auto:fused" runs one of them).
# portabletests: every JUnit test tagged "cuda" with WANLORA_KERNELS=portable (the whole parity suite on the
#         portable path; `tests` runs it on the default path).
# e2e:    the user's run from files on disk (issue 13): writes a real-size random t2v-14B bf16 checkpoint and seed-shaped
#         caches (384x208x45) under $WANLORA_E2E_DIR (default ./e2e-work, on the disk), measures the disk with dd
#         (page cache dropped), then runs `wanlora train` with the seed's command line (--fp8_base --fp8_scaled
#         --blocks_to_swap 10, adamw8bit, rank 32, 20 steps) cold (page cache dropped) and warm, `wanlora bench` at the
#         same shape (on the file's weights and on random ones), then the t2v-1.3B in bf16 / ComfyUI fp8_scaled / fp8_e4m3fn files and the 14B ComfyUI fp8 file with
#         --fp8_base, each only while the e2e step has run less than $WANLORA_E2E_BUDGET_S (default 200 s). Each run reports time to the end
#         of step 1, the load summary, s/it, peak GPU memory sampled from nvidia-smi every 100 ms and the host's peak RSS
#         (VmHWM), in $OUT/e2e.log; WANLORA_E2E_READERS="1 4" adds a cold 14B run per read-ahead reader count (default 4); every run's own output goes to $OUT/e2e-runs.log. Needs root (drop_caches).
# fp8tests: --fp8_compute's GPU checks (issue 11): CudaFp8GemmParityTest (our per-tensor quantize kernels bit for bit,
#         cuBLASLt's fp8 GEMM on 14B Linear shapes vs the CPU's exact sum), Fp8ComputeCudaTest (flag off unchanged, swap
#         bit-identity, GPU step vs the CPU reference, golden guards) and verify-golden wan-tiny --backend cuda --fp8_compute
#         (the numerics against musubi's goldens, reported).
# fp8compute: --fp8_compute's speed (issue 11 / 10): SampleBench t2v-14B 384x384x45, 20 UniPC steps, CFG 5, fp8_scaled
#         then fp8_compute; wanlora bench t2v-14B 384x208x45 fp8_scaled --blocks_to_swap 10 without then with --fp8_compute.
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
    sampleprofile)
      for a in "bf16 0" "fp8_scaled 0"; do
        "${java[@]}" -cp "$b/lib/*" dev.wanlora.benchmarks.SampleBench t2v-14B 384x384x45 3 5 $a cuda profile 2>&1 | tee -a "$logs/sample-profile.log" || status=1
      done
      ;;
    demo)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main demo --dir /tmp/wanlora-demo --backend cuda 2>&1 | tee "$logs/demo.log" || status=1
      ;;
    umt5)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.benchmarks.UmT5Bench 2>&1 | tee "$logs/umt5-bench.log" || status=1
      ;;
    vaegolden)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main verify-golden "$golden/vae-tiny" --backend cuda 2>&1 | tee "$logs/vaegolden.log" || status=1
      ;;
    vaebench)
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.benchmarks.VaeBench 2>&1 | tee "$logs/vaebench.log" || status=1
      ;;
    vaetorch)
      python3 "${WANLORA_TOOLS:-$PWD/tools}/torch_vae_bench.py" 2>&1 | tee "$logs/vaetorch.log" || status=1
      ;;
    convtests)
      "${java[@]}" -Dwanlora.cudaRequired=true -jar "$b"/test/junit-platform-console-standalone-*.jar execute \
        --class-path "$(ls "$b"/lib/*.jar "$b"/test/*.jar | tr '\n' ':')" --select-class dev.wanlora.engine.cuda.CudaVideoParityTest \
        --select-class dev.wanlora.engine.cuda.CudaRmsNormSiluParityTest --select-class dev.wanlora.models.wan.vae.WanVaeCudaTest \
        --details=tree --disable-banner 2>&1 | tee "$logs/convtests.log" || status=1
      ;;
    sampletests)
      "${java[@]}" -Dwanlora.cudaRequired=true -jar "$b"/test/junit-platform-console-standalone-*.jar execute \
        --class-path "$(ls "$b"/lib/*.jar "$b"/test/*.jar | tr '\n' ':')" --select-class dev.wanlora.cli.SampleCommandCudaTest \
        --select-class dev.wanlora.models.umt5.UmT5StreamingCudaTest --select-class dev.wanlora.models.sampling.DenoisingLoopReuseCudaTest \
        --select-class dev.wanlora.models.sampling.DenoisingLoopBatch2CudaTest --select-class dev.wanlora.models.sampling.SamplingGoldenCudaTest \
        --details=tree --disable-banner 2>&1 | tee "$logs/sampletests.log" || status=1
      ;;
    samplecfg)
      "${java[@]}" -Dwanlora.cfgMode=two_batch_1 -cp "$b/lib/*" dev.wanlora.benchmarks.SampleBench t2v-14B 384x384x45 20 5 bf16 0 2>&1 | tee -a "$logs/sample.log" || status=1
      ;;
    loadtests)
      "${java[@]}" -Dwanlora.cudaRequired=true -jar "$b"/test/junit-platform-console-standalone-*.jar execute \
        --class-path "$(ls "$b"/lib/*.jar "$b"/test/*.jar | tr '\n' ':')" --select-class dev.wanlora.engine.cuda.CudaLoadOpsParityTest \
        --select-class dev.wanlora.models.wan.WanDitWeightsLoadCudaTest \
        --details=tree --disable-banner 2>&1 | tee "$logs/loadtests.log" || status=1
      ;;
    attntests)
      for mode in ${WANLORA_ATTN_MODES:-auto:passes auto:fused portable:passes}; do
        set -- ${mode/:/ }
        echo "== WANLORA_KERNELS=$1, -Dwanlora.attentionBackward=$2" | tee -a "$logs/attntests.log"
        WANLORA_KERNELS=$1 "${java[@]}" -Dwanlora.attentionBackward=$2 -Dwanlora.cudaRequired=true -jar "$b"/test/junit-platform-console-standalone-*.jar execute \
          --class-path "$(ls "$b"/lib/*.jar "$b"/test/*.jar | tr '\n' ':')" --select-class dev.wanlora.engine.cuda.CudaAttentionTest \
          --select-class dev.wanlora.engine.cuda.CudaAttentionPortableTest --select-class dev.wanlora.engine.cuda.CudaAttentionFusedTest \
          --select-class dev.wanlora.models.wan.WanDitSavedAttentionCudaTest \
          --select-class dev.wanlora.models.wan.WanDitSwapCudaTest --select-class dev.wanlora.models.sampling.SamplingGoldenCudaTest \
          --details=tree --disable-banner 2>&1 | tee -a "$logs/attntests.log" || status=1
      done
      ;;
    portabletests)
      WANLORA_KERNELS=portable "${java[@]}" -Dwanlora.cudaRequired=true -jar "$b"/test/junit-platform-console-standalone-*.jar execute \
        --class-path "$(ls "$b"/lib/*.jar "$b"/test/*.jar | tr '\n' ':')" \
        $(for t in "$b"/test/*-tests.jar; do echo "--scan-class-path=$t"; done) \
        --include-tag cuda --details=tree --disable-banner 2>&1 | tee "$logs/tests-portable.log" || status=1
      ;;
    fp8tests)
      "${java[@]}" -Dwanlora.cudaRequired=true -jar "$b"/test/junit-platform-console-standalone-*.jar execute \
        --class-path "$(ls "$b"/lib/*.jar "$b"/test/*.jar | tr '\n' ':')" --select-class dev.wanlora.engine.cuda.CudaFp8GemmParityTest \
        --select-class dev.wanlora.models.wan.Fp8ComputeCudaTest \
        --details=tree --disable-banner 2>&1 | tee "$logs/fp8tests.log" || status=1
      "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main verify-golden "$golden/wan-tiny" --backend cuda --fp8_compute 2>&1 \
        | tee "$logs/fp8golden.log" || status=1
      ;;
    fp8compute)
      for w in fp8_scaled fp8_compute; do
        "${java[@]}" -cp "$b/lib/*" dev.wanlora.benchmarks.SampleBench t2v-14B 384x384x45 20 5 $w 0 2>&1 | tee -a "$logs/fp8compute.log" || status=1
      done
      for flag in "" --fp8_compute; do
        "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main bench --task t2v-14B --resolution 384x208 --frames 45 --fp8_scaled \
          --blocks_to_swap 10 --top_ops 4 $flag 2>&1 | tee -a "$logs/fp8compute.log" || status=1
      done
      ;;
    e2e)
      bash "$b/gpu-e2e.sh" "$b" "$logs" "${java[@]}" || status=1
      ;;
    *) echo "gpu-test.sh: unknown step $step; expected tests, portabletests, attntests, loadtests, convtests, sampletests, fp8tests, fp8compute, bench, golden, demo, e2e, sample, samplecfg, sampleprofile, umt5, vaegolden, vaebench or vaetorch" >&2; status=2 ;;
  esac
done
exit $status
