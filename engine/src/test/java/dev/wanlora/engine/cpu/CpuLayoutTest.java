package dev.wanlora.engine.cpu;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.tensor.DType;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.assertGradient;
import static dev.wanlora.engine.cpu.CpuTesting.assertMessage;
import static dev.wanlora.engine.cpu.CpuTesting.assertValues;
import static dev.wanlora.engine.cpu.CpuTesting.dotLoss;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.gaussian;
import static dev.wanlora.engine.cpu.CpuTesting.randn;
import static dev.wanlora.engine.cpu.CpuTesting.values;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** Patch layouts (spec §1.2, §1.6) and the sinusoidal time embedding. */
class CpuLayoutTest {

    private static float[] iota(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = i;
        return v;
    }

    @Test
    void patchifyHandValues() {
        // (B, C, F, H, W) = (1, 1, 1, 2, 4), latents [[0,1,2,3],[4,5,6,7]]: two tokens (w = 0, 1), each (kh, kw):
        // token 0 = (0, 1, 4, 5), token 1 = (2, 3, 6, 7).
        var out = zeros(DType.F32, 1, 2, 4);
        CPU.patchify(out, f32(iota(8), 1, 1, 1, 2, 4), 1, 1, 2, 4);
        assertValues(new float[] {0, 1, 4, 5, 2, 3, 6, 7}, out);
        // C = 2, F = 2, H = W = 2: one token per frame with features c·4 + kh·2 + kw, so frame f holds
        // channel 0 then channel 1 of that frame: (0,1,2,3, 8,9,10,11) and (4,5,6,7, 12,13,14,15).
        var out2 = zeros(DType.F32, 1, 2, 8);
        CPU.patchify(out2, f32(iota(16), 1, 2, 2, 2, 2), 2, 2, 2, 2);
        assertValues(new float[] {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15}, out2);
    }

    @Test
    void unpatchifyHandValuesAndBackward() {
        // One token, C = 2, features ph·4 + pw·2 + ch = 0..7: out(ch, 0, ph, pw) = ph·4 + pw·2 + ch, so channel 0 is
        // [[0,2],[4,6]] and channel 1 is [[1,3],[5,7]].
        var out = zeros(DType.F32, 1, 2, 1, 2, 2);
        CPU.unpatchify(out, f32(iota(8), 1, 1, 8), 2, 1, 2, 2);
        assertValues(new float[] {0, 2, 4, 6, 1, 3, 5, 7}, out);
        var back = zeros(DType.F32, 1, 1, 8);
        CPU.unpatchifyBackward(back, out, 2, 1, 2, 2);
        assertValues(iota(8), back); // the gather undoes the scatter
    }

    @Test
    void unpatchifyBackwardMatchesFiniteDifferences() {
        // Ragged: B = 2, C = 3, F = 2, H = 4, W = 6 → L = 2·2·3 = 12 tokens of 12 features.
        var tokens = randn(1, DType.F32, 2, 12, 12);
        float[] g = gaussian(2, 2 * 3 * 2 * 4 * 6);
        var out = zeros(DType.F32, 2, 3, 2, 4, 6);
        var dTokens = zeros(DType.F32, 2, 12, 12);
        CPU.unpatchifyBackward(dTokens, f32(g, 2, 3, 2, 4, 6), 3, 2, 4, 6);
        assertGradient("unpatchifyBackward[cpu,f32,tokens=(2,12,12)]", dTokens, tokens, () -> {
            CPU.unpatchify(out, tokens, 3, 2, 4, 6);
            return dotLoss(out, g);
        });
    }

    @Test
    void sinusoidalEmbeddingHandValues() {
        // half = 2: ω = (10000⁰, 10000^(−1/2)) = (1, 0.01). t = 0 → (1, 1, 0, 0);
        // t = 1 → (cos 1, cos 0.01, sin 1, sin 0.01) = (0.540302306, 0.999950000, 0.841470985, 0.009999833).
        var out = zeros(DType.F32, 2, 4);
        CPU.sinusoidalEmbedding(out, f32(new float[] {0, 1}, 2));
        assertArrayEquals(new float[] {1, 1, 0, 0, 0.540302306f, 0.999950000f, 0.841470985f, 0.009999833f},
                values(out), 6e-8f);
    }

    /**
     * Patchify orders a patch (c, kh, kw), the head orders it (ph, pw, c). So unpatchify(permute(patchify(x))) = x,
     * with permute moving feature c·4 + kh·2 + kw to kh·2C + kw·C + c: an independent check that both layouts use
     * the same token order and spatial positions. Ragged: B = 2, C = 3, F = 2, H = 4, W = 6.
     */
    @Test
    void patchifyAndUnpatchifyAreInversesUpToTheFeatureOrder() {
        int b = 2, c = 3, f = 2, h = 4, w = 6, tokens = f * (h / 2) * (w / 2);
        var latents = randn(3, DType.F32, b, c, f, h, w);
        var patches = zeros(DType.F32, b, tokens, 4 * c);
        CPU.patchify(patches, latents, c, f, h, w);
        float[] p = values(patches), permuted = new float[p.length];
        for (int t = 0; t < b * tokens; t++) {
            for (int ch = 0; ch < c; ch++) {
                for (int kh = 0; kh < 2; kh++) {
                    for (int kw = 0; kw < 2; kw++) {
                        permuted[t * 4 * c + kh * 2 * c + kw * c + ch] = p[t * 4 * c + ch * 4 + kh * 2 + kw];
                    }
                }
            }
        }
        var image = zeros(DType.F32, b, c, f, h, w);
        CPU.unpatchify(image, f32(permuted, b, tokens, 4 * c), c, f, h, w);
        assertValues(values(latents), image);
        // bf16 outputs of pure layout ops are the rounded inputs.
        var patches16 = zeros(DType.BF16, b, tokens, 4 * c);
        CPU.patchify(patches16, latents, c, f, h, w);
        Bf16.roundInPlace(p);
        assertValues(p, patches16);
    }

    @Test
    void sinusoidalEmbeddingAtWansSize() {
        // half = 128 and musubi's timestep 1000·0.7 + 1 = 701: element j = cos(701·10000^(−j/128)), 128 + j = sin(…).
        var out = zeros(DType.F32, 1, 256);
        CPU.sinusoidalEmbedding(out, f32(new float[] {701}, 1));
        float[] v = values(out);
        for (int j : new int[] {0, 1, 64, 127}) {
            double angle = 701 * Math.pow(10000, -j / 128.0);
            assertArrayEquals(new float[] {(float) Math.cos(angle), (float) Math.sin(angle)},
                    new float[] {v[j], v[128 + j]}, 0f, "j=" + j);
        }
    }

    @Test
    void argumentChecksNameTheProblem() {
        var latents = zeros(DType.F32, 1, 16, 3, 8, 12);
        assertMessage("patchify: wrong shape of out; got out=(1,72,63) f32, expected out=(1,72,64)",
                () -> CPU.patchify(zeros(DType.F32, 1, 72, 63), latents, 16, 3, 8, 12));
        assertMessage("patchify: latent height and width must be even for the (1,2,2) patch; got height=8, width=11, "
                + "expected even sizes", () -> CPU.patchify(zeros(DType.F32, 1, 72, 64), latents, 16, 3, 8, 11));
        assertMessage("unpatchify: wrong shape of out; got out=(1,16,3,8,12) f32, expected out=(1,16,3,8,10)",
                () -> CPU.unpatchify(latents, zeros(DType.F32, 1, 60, 64), 16, 3, 8, 10));
    }
}
