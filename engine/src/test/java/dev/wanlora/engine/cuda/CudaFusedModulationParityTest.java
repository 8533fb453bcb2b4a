package dev.wanlora.engine.cuda;

import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;

/**
 * Issue 11's fused adaLN ops against the CPU reference (the unfused chain, bit for bit; CpuNormTest and
 * CpuModulationTest prove that) and against the GPU's own unfused chain:
 * <ul>
 * <li>{@code addGatedResidual} (add_gated_residual_fwd) = copy + gated_residual_fwd: the same fp32 expression per
 * element, so the GPU chain's bits exactly; against the CPU, one rounding of an fp32-vs-double result (Parity's
 * bounds).</li>
 * <li>{@code layerNormModulate} (layer_norm_modulate_fwd) = layer_norm_fwd + modulate_fwd: the same statistics code at
 * the same block size and the same per-element arithmetic, so the GPU chain's bits exactly; against the CPU, n may
 * sit one bf16 ulp away where the fp32 and double statistics straddle a rounding boundary, which moves out by
 * 2⁻⁸·|n·(1 + scale)| ≤ 2⁻⁸·4·1.5 ≈ 0.023 at the 4σ tail of n with |scale| ≤ 0.5 — inside Parity's elementwise bound
 * 2⁻⁶·(|out| + rms(out)) with rms(out) ≥ 1, and rare enough for relL2 ≤ 5e-3. mean and rstd in fp32 (F32 bounds).</li>
 * <li>{@code layerNormModulateBackward} (layer_norm_modulate_bwd) = modulate_bwd + layer_norm_bwd (no weight): the
 * same per-element arithmetic and reductions, so the GPU chain's bits exactly where the chain exists (dOut, x and dx
 * of one dtype: layer_norm_bwd takes dn and x of one dtype); against the CPU, dn may sit one ulp away (as n above),
 * which moves dx by rstd·2⁻⁸·|dn|, inside 2⁻⁶·(|dx| + rms(dx)) since dx ≈ rstd·dn where dn is large.</li>
 * </ul>
 * Shapes: a ragged tiny one (B = 2, L = 3, C = 40: the 16-byte path; C = 36: the scalar path) and Wan's 14B block at
 * 384x208x45 (B = 1, L = 3744, C = 5120); mod (B, 6, C) as a block's and (B, 2, C) as the head's.
 */
@RequiresCuda
class CudaFusedModulationParityTest {
    private static final float EPS = 1e-6f;
    private static final Shape[] SHAPES = {Shape.of(2, 3, 40), Shape.of(2, 3, 36), Shape.of(1, 3744, 5120)};

    @Test
    void addGatedResidualMatchesTheChain() {
        for (Shape s : SHAPES) {
            Pair mod = random(F32, Shape.of(s.dim(0), 6, s.dim(2)), 51, 0.5);
            for (DType[] io : new DType[][] {{BF16, BF16}, {BF16, F32}, {F32, F32}, {F32, BF16}}) {
                for (int gate : new int[] {2, -1}) {
                    Pair x = random(io[0], s, 52, 1), y = random(io[1], s, 53, 1), out = output(io[0], s);
                    CPU.addGatedResidual(out.cpu(), x.cpu(), y.cpu(), mod.cpu(), gate);
                    cuda().addGatedResidual(out.cuda(), x.cuda(), y.cuda(), mod.cuda(), gate);
                    String label = label("addGatedResidual", io[0], "x", s) + ",y=" + io[1] + ",gate=" + gate;
                    check(label + " vs cpu", out);
                    try (var chain = cuda().allocate(io[0], s)) {
                        cuda().copy(chain, x.cuda());
                        cuda().gatedResidual(chain, y.cuda(), mod.cuda(), gate);
                        CPU.write(out.cpu(), cuda().toFloats(chain));
                    }
                    checkExact(label + " vs cuda chain", out);
                    // In place (out = x): gatedResidual itself, against the chain's bits still in out's CPU side.
                    cuda().addGatedResidual(x.cuda(), x.cuda(), y.cuda(), mod.cuda(), gate);
                    cuda().copy(out.cuda(), x.cuda());
                    checkExact(label + " in place", out);
                    closeAll(x, y, out);
                }
            }
            closeAll(mod);
        }
    }

    @Test
    void layerNormModulateMatchesTheChain() {
        for (Shape s : SHAPES) {
            long rows = s.dim(0) * s.dim(1);
            for (int n : new int[] {6, 2}) {
                Pair mod = random(F32, Shape.of(s.dim(0), n, s.dim(2)), 61, 0.5);
                int shift = n == 6 ? 3 : 0, scale = n == 6 ? 4 : 1;
                for (DType[] io : new DType[][] {{BF16, BF16}, {F32, BF16}, {BF16, F32}, {F32, F32}}) {
                    Pair x = random(io[0], s, 62, 1), out = output(io[1], s);
                    Pair mean = output(F32, Shape.of(rows)), rstd = output(F32, Shape.of(rows));
                    CPU.layerNormModulate(out.cpu(), mean.cpu(), rstd.cpu(), x.cpu(), mod.cpu(), shift, scale, EPS);
                    cuda().layerNormModulate(out.cuda(), mean.cuda(), rstd.cuda(), x.cuda(), mod.cuda(), shift, scale, EPS);
                    String label = label("layerNormModulate", io[1], "x", s) + ",x=" + io[0] + ",n=" + n;
                    check(label + " vs cpu", out);
                    check(label("layerNormModulate.mean", F32, "x", s), mean);
                    check(label("layerNormModulate.rstd", F32, "x", s), rstd);
                    try (var norm = cuda().allocate(io[1], s); var chain = cuda().allocate(io[1], s);
                         var chainMean = cuda().allocate(F32, Shape.of(rows));
                         var chainRstd = cuda().allocate(F32, Shape.of(rows))) {
                        cuda().layerNorm(norm, chainMean, chainRstd, x.cuda(), null, null, EPS);
                        cuda().modulate(chain, norm, mod.cuda(), shift, scale);
                        CPU.write(out.cpu(), cuda().toFloats(chain));
                        CPU.write(rstd.cpu(), cuda().toFloats(chainRstd));
                    }
                    checkExact(label + " vs cuda chain", out);
                    checkExact(label("layerNormModulate.rstd", F32, "x", s) + " vs cuda chain", rstd);
                    closeAll(x, out, mean, rstd);
                }
                closeAll(mod);
            }
        }
    }

    @Test
    void layerNormModulateBackwardMatchesTheChain() {
        for (Shape s : SHAPES) {
            long rows = s.dim(0) * s.dim(1);
            Pair mod = random(F32, Shape.of(s.dim(0), 6, s.dim(2)), 71, 0.5);
            for (DType[] io : new DType[][] {{BF16, BF16}, {BF16, F32}, {F32, F32}, {F32, BF16}}) {
                for (boolean accumulate : new boolean[] {false, true}) {
                    Pair x = random(io[0], s, 72, 1), dOut = random(io[0], s, 73, 1);
                    Pair mean = output(F32, Shape.of(rows)), rstd = output(F32, Shape.of(rows));
                    try (var normed = cuda().allocate(io[0], s)) { // the forward's statistics, on the GPU for both sides
                        cuda().layerNormModulate(normed, mean.cuda(), rstd.cuda(), x.cuda(), mod.cuda(), 3, 4, EPS);
                    }
                    CPU.write(mean.cpu(), cuda().toFloats(mean.cuda()));
                    CPU.write(rstd.cpu(), cuda().toFloats(rstd.cuda()));
                    Pair dx = accumulate ? random(io[1], s, 74, 1) : output(io[1], s);
                    float[] before = cuda().toFloats(dx.cuda());
                    CPU.layerNormModulateBackward(dx.cpu(), dOut.cpu(), x.cpu(), mean.cpu(), rstd.cpu(), mod.cpu(), 4,
                            accumulate);
                    cuda().layerNormModulateBackward(dx.cuda(), dOut.cuda(), x.cuda(), mean.cuda(), rstd.cuda(),
                            mod.cuda(), 4, accumulate);
                    String label = label("layerNormModulateBackward", io[1], "x", s) + ",x=" + io[0] + ",accumulate="
                            + accumulate;
                    check(label + " vs cpu", dx);
                    try (var dn = cuda().allocate(io[1], s); var chain = cuda().allocate(io[1], s)) {
                        cuda().write(chain, before);
                        cuda().modulateBackward(dn, dOut.cuda(), mod.cuda(), 4);
                        if (io[0] == io[1]) {
                            cuda().layerNormBackward(chain, null, null, dn, x.cuda(), null, mean.cuda(), rstd.cuda(),
                                    accumulate);
                            CPU.write(dx.cpu(), cuda().toFloats(chain));
                            checkExact(label + " vs cuda chain", dx);
                        }
                    }
                    closeAll(x, dOut, mean, rstd, dx);
                }
            }
            closeAll(mod);
        }
    }
}
