package dev.wanlora.models.wan;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.models.golden.GoldenVerifier;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Fp8ComputeTest} on the GPU (cuBLASLt's fp8 GEMM, our quantize kernels, fp8 codes kept on the device and
 * streamed), and the GPU's whole --fp8_compute step against the CPU reference's.
 */
@RequiresCuda
@RequiresGolden("wan-tiny")
class Fp8ComputeCudaTest {
    private static SwapRuns cudaRuns, cpuRuns;
    private static Fp8ComputeRuns runs, cpu;

    @BeforeAll
    static void open(@TempDir Path tmp) throws java.io.IOException {
        java.nio.file.Files.createDirectories(tmp.resolve("cuda"));
        java.nio.file.Files.createDirectories(tmp.resolve("cpu"));
        cudaRuns = new SwapRuns(CudaTests.backend(), tmp.resolve("cuda"));
        cpuRuns = new SwapRuns(new CpuBackend(), tmp.resolve("cpu"));
        runs = new Fp8ComputeRuns(CudaTests.backend(), cudaRuns);
        cpu = new Fp8ComputeRuns(new CpuBackend(), cpuRuns);
    }

    @AfterAll
    static void close() {
        if (cudaRuns != null) cudaRuns.close();
        if (cpuRuns != null) cpuRuns.close();
    }

    @Test
    void flagOffChangesNothing() {
        runs.assertFlagOffIsUnchanged(ComputePrecision.BF16_MUSUBI, false);
    }

    @Test
    void swappedEqualsResident() {
        runs.assertSwapIsBitIdentical(cudaRuns.golden, ComputePrecision.BF16_MUSUBI, false, new BlockSwap(1, 2));
        runs.assertSwapIsBitIdentical(cudaRuns.fiveBlocks, ComputePrecision.BF16_MUSUBI, false, new BlockSwap(3, 2));
    }

    /**
     * Two training steps and a forward of the golden model, musubi's bf16 path with --fp8_compute, GPU vs CPU reference.
     * Both round activations to bf16 (u = 2⁻⁸) and differ by that noise (≈ 5e-3 on the prediction for the bf16 path
     * alone, Parity's BF16 bound); an input element whose bf16 values straddle an e4m3 rounding boundary gets codes one
     * e4m3 step (2⁻³ relative) apart, which happens for a fraction ≈ bf16 noise / e4m3 step ≈ 3 % of elements and adds
     * ≈ √0.03·2⁻³/√3 ≈ 1.2e-2 relative on those GEMMs' outputs at worst. Bound: prediction relL2 ≤ 3e-2, gradient
     * cosine ≥ 0.99; the figures are printed.
     */
    @Test
    void cudaMatchesTheCpuReference() {
        List<float[]> gpu, ref;
        try (WanDitWeights w = runs.load(cudaRuns.golden, ComputePrecision.BF16_MUSUBI, false, true, BlockSwap.NONE)) {
            gpu = cudaRuns.run(w, ComputePrecision.BF16_MUSUBI, true);
        }
        try (WanDitWeights w = cpu.load(cpuRuns.golden, ComputePrecision.BF16_MUSUBI, true, true, BlockSwap.NONE)) {
            ref = cpuRuns.run(w, ComputePrecision.BF16_MUSUBI, true);
        }
        assertEquals(ref.size(), gpu.size());
        ErrorStats pred = ErrorStats.compare(gpu.getLast(), ref.getLast());
        System.out.println("--fp8_compute cuda vs cpu [BF16_MUSUBI] pred " + pred.describe(3e-2) + ", losses " + gpu.get(0)[0]
                + " vs " + ref.get(0)[0]);
        assertTrue(pred.relL2() <= 3e-2, pred.describe(3e-2));
        double worstCosine = 1;
        for (int i = 2; i < gpu.size() - 1; i++) worstCosine = Math.min(worstCosine, ErrorStats.compare(gpu.get(i), ref.get(i)).cosine());
        System.out.println("--fp8_compute cuda vs cpu [BF16_MUSUBI] worst LoRA gradient cosine " + worstCosine);
        assertTrue(worstCosine >= 0.99, "worst gradient cosine " + worstCosine);
    }

    /** The --fp8_compute golden report on the GPU (bf16 activations), with Fp8ComputeTest's guards. */
    @Test
    void goldenNumerics() {
        List<GoldenVerifier.Comparison> lines = runs.goldenReport(GoldenVerifier.Mode.BF16_DEVICE);
        assertTrue(lines.size() > 40, "outputs and gradients; got " + lines.size());
        for (GoldenVerifier.Comparison c : lines) {
            assertEquals(0, c.stats().nonFinite(), c.describe());
            if (c.key().equals("output.pred")) assertTrue(c.stats().relL2() < 4e-2, c.describe());
            if (c.key().startsWith("grad.")) assertTrue(c.stats().cosine() > 0.99, c.describe());
        }
    }
}
