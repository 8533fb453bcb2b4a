package dev.wanlora.models.wan.vae;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.tensor.DType;
import org.junit.jupiter.api.Test;

import java.util.Locale;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The decoder's working memory is flat in the number of frames and equals {@link WanVae#decodeWorkingBytes}: measured
 * on the CPU with random weights at two narrow configurations and frame counts, then stated for the release model.
 */
class WanVaeMemoryTest {

    @Test
    void decodeMemoryIsFlatInFramesAndMatchesTheFormula() {
        CpuBackend cpu = new CpuBackend();
        for (int[] c : new int[][] {{4, 4, 6}, {5, 6, 2}}) { // {dim, h, w}; d ≠ 3, or the head's 3 channels share a buffer shape
            WanVaeConfig config = new WanVaeConfig(c[0], 16);
            long formula = WanVae.decodeWorkingBytes(config, c[1], c[2], DType.F32);
            try (WanVaeWeights weights = WanVaeWeights.random(cpu, config, DType.F32, WanVaeWeights.Part.DECODER, 1);
                 WanVae vae = new WanVae(cpu, weights)) {
                for (int frames : new int[] {2, 4}) {
                    float[] latent = new float[16 * frames * c[1] * c[2]];
                    SplittableRandom r = new SplittableRandom(frames);
                    for (int i = 0; i < latent.length; i++) latent[i] = (float) r.nextGaussian();
                    vae.decode(latent, frames, c[1], c[2], (f, rgb) -> {}, (name, chunk) -> {});
                    assertEquals(formula, vae.workingBytes(), "dim " + c[0] + " at " + c[1] + "x" + c[2] + ", " + frames
                            + " latent frames");
                }
            }
        }
    }

    @Test
    void releaseModelBudgetAt832x480() {
        long bytes = WanVae.decodeWorkingBytes(WanVaeConfig.wan21(), 60, 104, DType.BF16);
        System.out.printf(Locale.ROOT, "VAE decode working memory, 832x480, bf16, any frame count: %.2f GiB%n",
                bytes / (double) (1L << 30));
        assertEquals(4.39, bytes / (double) (1L << 30), 0.005);
    }
}
