package dev.wanlora.engine.cuda;

import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;

/**
 * The fused rmsNormSilu (rms_norm_silu.cu) against the CPU's unfused chain (rmsNorm then silu, Backend's default) and
 * against the GPU's own unfused chain (rms_norm_fwd + silu_fwd). Widths cover every lane count of the kernel (C = 8:
 * 1 lane a row, 16, 40 (ragged: the chain), 96 (16 lanes, the VAE's d), 192, 384 (32 lanes, 2 groups each),
 * 1024 (4 groups), 1032 (above the kernel: the chain)), ragged row counts that leave a warp's last rows empty, and the
 * VAE's largest (589824 rows of 96, one 384×384×4 chunk). Bounds as {@link Parity}: bf16 outputs differ by one
 * rounding at most (rstd's last bit moves with the summation order), rstd in fp32.
 */
@RequiresCuda
class CudaRmsNormSiluParityTest {
    private static final float EPS = (float) (1e-24 / 96);

    @Test
    void fusedMatchesTheUnfusedChain() {
        Shape[] shapes = {Shape.of(3, 8), Shape.of(5, 16), Shape.of(3, 40), Shape.of(7, 96), Shape.of(33, 192),
                Shape.of(11, 384), Shape.of(3, 1024), Shape.of(2, 1032), Shape.of(589824, 96)};
        for (Shape s : shapes) {
            for (DType wType : new DType[] {F32, BF16}) {
                Pair x = random(BF16, s, 21, 2), w = random(wType, Shape.of(s.cols()), 22, 1);
                Pair out = output(BF16, s), rstd = output(F32, Shape.of(s.rows()));
                CPU.rmsNormSilu(out.cpu(), rstd.cpu(), x.cpu(), w.cpu(), EPS);
                cuda().rmsNormSilu(out.cuda(), rstd.cuda(), x.cuda(), w.cuda(), EPS);
                check(label("rmsNormSilu", BF16, "x", s) + ",w=" + wType + " vs cpu", out);
                check(label("rmsNormSilu.rstd", F32, "x", s), rstd);
                // The GPU's unfused chain into the CPU side's buffers: the fused kernel only skips a round trip.
                try (var chain = cuda().allocate(BF16, s); var chainRstd = cuda().allocate(F32, Shape.of(s.rows()))) {
                    cuda().rmsNorm(chain, chainRstd, x.cuda(), w.cuda(), EPS);
                    cuda().silu(chain, chain);
                    CPU.write(out.cpu(), cuda().toFloats(chain));
                }
                check(label("rmsNormSilu", BF16, "x", s) + ",w=" + wType + " vs cuda chain", out);
                closeAll(x, w, out, rstd);
            }
        }
    }
}
