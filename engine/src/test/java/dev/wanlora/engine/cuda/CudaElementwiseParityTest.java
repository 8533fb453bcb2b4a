package dev.wanlora.engine.cuda;

import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.numeric.Fp8BlockQuantizer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;

/**
 * CUDA vs CPU for the elementwise, modulation, RoPE, layout, embedding, conversion and fp8 ops, over a ragged tiny
 * shape, an odd shape (scalar kernel path), a misaligned view (scalar path on a vector-friendly size) and the real
 * 14B shape (L = 3744 tokens of C = 5120, 40 heads of 128). Bounds: see {@link Parity}.
 */
@RequiresCuda
class CudaElementwiseParityTest {
    /** (in, out) dtype pairs every activation op is instantiated for. */
    private static final DType[][] IO = {{BF16, BF16}, {F32, F32}, {BF16, F32}, {F32, BF16}};
    private static final Shape[] FLAT = {Shape.of(3, 40), Shape.of(5, 37), Shape.of(3744, 5120)};

    private interface Unary { void apply(Pair out, Pair x); }

    private void unary(String op, double scale, Unary f) {
        for (DType[] io : IO) {
            for (Shape s : FLAT) {
                Pair x = random(io[0], s, 11, scale), out = output(io[1], s);
                f.apply(out, x);
                check(label(op, io[1], "x", s), out);
                closeAll(x, out);
            }
        }
        // A view one element in: the kernels' scalar path on a size the vector path would take.
        Pair x = random(BF16, Shape.of(4097), 12, scale), out = output(BF16, Shape.of(4097));
        Pair xv = x.view(1, Shape.of(4096)), ov = out.view(1, Shape.of(4096));
        f.apply(ov, xv);
        check(label(op, BF16, "view(x,1)", Shape.of(4096)), ov);
        closeAll(x, out);
    }

    @Test
    void activationsAndScale() {
        unary("silu", 3, (o, x) -> { CPU.silu(o.cpu(), x.cpu()); cuda().silu(o.cuda(), x.cuda()); });
        unary("geluTanh", 3, (o, x) -> { CPU.geluTanh(o.cpu(), x.cpu()); cuda().geluTanh(o.cuda(), x.cuda()); });
        unary("scale", 1, (o, x) -> { CPU.scale(o.cpu(), x.cpu(), -0.37f); cuda().scale(o.cuda(), x.cuda(), -0.37f); });
    }

    @Test
    void inPlaceActivation() {
        Pair x = random(BF16, Shape.of(3744, 5120), 13, 2);
        CPU.silu(x.cpu(), x.cpu());
        cuda().silu(x.cuda(), x.cuda());
        check(label("silu(in place)", BF16, "x", x.shape()), x);
        closeAll(x);
    }

    @Test
    void addAndGeluBackward() {
        for (DType[] io : IO) {
            for (Shape s : FLAT) {
                Pair a = random(io[0], s, 21, 1), b = random(io[0], s, 22, 1), out = output(io[1], s);
                CPU.add(out.cpu(), a.cpu(), b.cpu());
                cuda().add(out.cuda(), a.cuda(), b.cuda());
                check(label("add", io[1], "a", s), out);
                CPU.geluTanhBackward(out.cpu(), a.cpu(), b.cpu());
                cuda().geluTanhBackward(out.cuda(), a.cuda(), b.cuda());
                check(label("geluTanhBackward", io[1], "x", s), out);
                closeAll(a, b, out);
            }
        }
    }

    @Test
    void addRowVector() {
        for (DType[] io : IO) {
            for (DType vType : new DType[] {BF16, F32}) {
                for (Shape s : FLAT) {
                    Pair x = random(io[0], s, 31, 1), v = random(vType, Shape.of(s.cols()), 32, 1), out = output(io[1], s);
                    CPU.addRowVector(out.cpu(), x.cpu(), v.cpu());
                    cuda().addRowVector(out.cuda(), x.cuda(), v.cuda());
                    check(label("addRowVector", io[1], "x", s) + "v=" + vType, out);
                    closeAll(x, v, out);
                }
            }
        }
    }

    private static final Shape[] TOKENS = {Shape.of(2, 77, 40), Shape.of(1, 3, 37), Shape.of(1, 3744, 5120)};

    @Test
    void modulationAndGatedResidual() {
        for (DType[] io : IO) {
            for (Shape s : TOKENS) {
                Shape modShape = Shape.of(s.dim(0), 6, s.dim(2));
                Pair x = random(io[0], s, 41, 1), y = random(io[1], s, 42, 1), mod = random(F32, modShape, 43, 0.5);
                Pair out = output(io[1], s);
                CPU.modulate(out.cpu(), x.cpu(), mod.cpu(), 0, 1);
                cuda().modulate(out.cuda(), x.cuda(), mod.cuda(), 0, 1);
                check(label("modulate", io[1], "x", s), out);
                CPU.modulateBackward(out.cpu(), x.cpu(), mod.cpu(), 4);
                cuda().modulateBackward(out.cuda(), x.cuda(), mod.cuda(), 4);
                check(label("modulateBackward", io[1], "dOut", s), out);
                CPU.gatedResidualBackward(out.cpu(), x.cpu(), mod.cpu(), 2);
                cuda().gatedResidualBackward(out.cuda(), x.cuda(), mod.cuda(), 2);
                check(label("gatedResidualBackward", io[1], "dx", s), out);
                // x (io[0]) += y (io[1]) · gate, then a plain residual (gateIndex -1).
                CPU.gatedResidual(x.cpu(), y.cpu(), mod.cpu(), 5);
                cuda().gatedResidual(x.cuda(), y.cuda(), mod.cuda(), 5);
                check(label("gatedResidual", io[0], "x", s), x);
                CPU.gatedResidual(x.cpu(), y.cpu(), null, -1);
                cuda().gatedResidual(x.cuda(), y.cuda(), null, -1);
                check(label("gatedResidual(no gate)", io[0], "x", s), x);
                closeAll(x, y, mod, out);
            }
        }
    }

    @Test
    void rope() {
        int[][] cases = {{2, 77, 2, 20}, {1, 5, 3, 6}, {1, 3744, 40, 128}}; // B, L, N, D
        for (DType[] io : IO) {
            for (int[] c : cases) {
                Shape s = Shape.of(c[0], c[1], (long) c[2] * c[3]), table = Shape.of(c[1], c[3] / 2);
                float[] angle = gaussian(Math.toIntExact(table.numElements()), 51, 3);
                float[] cos = new float[angle.length], sin = new float[angle.length];
                for (int i = 0; i < angle.length; i++) {
                    cos[i] = (float) Math.cos(angle[i]);
                    sin[i] = (float) Math.sin(angle[i]);
                }
                Pair x = random(io[0], s, 52, 1), cc = of(F32, table, cos), ss = of(F32, table, sin), out = output(io[1], s);
                CPU.rope(out.cpu(), x.cpu(), cc.cpu(), ss.cpu(), c[2]);
                cuda().rope(out.cuda(), x.cuda(), cc.cuda(), ss.cuda(), c[2]);
                check(label("rope", io[1], "x", s), out);
                CPU.ropeBackward(out.cpu(), x.cpu(), cc.cpu(), ss.cpu(), c[2]);
                cuda().ropeBackward(out.cuda(), x.cuda(), cc.cuda(), ss.cuda(), c[2]);
                check(label("ropeBackward", io[1], "dOut", s), out);
                closeAll(x, cc, ss, out);
            }
        }
    }

    @Test
    void patchLayoutsAreExact() {
        int[][] cases = {{1, 16, 3, 8, 12}, {2, 3, 1, 2, 6}, {1, 16, 21, 60, 104}}; // B, C, F, H, W
        for (DType t : new DType[] {BF16, F32}) {
            for (int[] c : cases) {
                Shape lat = Shape.of(c[0], c[1], c[2], c[3], c[4]);
                Shape tok = Shape.of(c[0], (long) c[2] * (c[3] / 2) * (c[4] / 2), 4L * c[1]);
                Pair latents = random(t, lat, 61, 1), tokens = output(t, tok), image = output(t, lat), dTokens = output(t, tok);
                CPU.patchify(tokens.cpu(), latents.cpu(), c[1], c[2], c[3], c[4]);
                cuda().patchify(tokens.cuda(), latents.cuda(), c[1], c[2], c[3], c[4]);
                checkExact(label("patchify", t, "latents", lat), tokens);
                CPU.unpatchify(image.cpu(), tokens.cpu(), c[1], c[2], c[3], c[4]);
                cuda().unpatchify(image.cuda(), tokens.cuda(), c[1], c[2], c[3], c[4]);
                checkExact(label("unpatchify", t, "tokens", tok), image);
                CPU.unpatchifyBackward(dTokens.cpu(), latents.cpu(), c[1], c[2], c[3], c[4]);
                cuda().unpatchifyBackward(dTokens.cuda(), latents.cuda(), c[1], c[2], c[3], c[4]);
                checkExact(label("unpatchifyBackward", t, "dOut", lat), dTokens);
                closeAll(latents, tokens, image, dTokens);
            }
        }
    }

    @Test
    void sinusoidalEmbedding() {
        // float64 on both sides, one rounding to f32: equal unless a double result differs in its last bits across
        // libms AND sits on a float rounding boundary (≈ 2^-29 per element), so the F32 bound has huge headroom.
        Pair t = of(F32, Shape.of(4), new float[] {1f, 500.5f, 999f, 1000f * 0.7f + 1}), out = output(F32, Shape.of(4, 256));
        CPU.sinusoidalEmbedding(out.cpu(), t.cpu());
        cuda().sinusoidalEmbedding(out.cuda(), t.cuda());
        check(label("sinusoidalEmbedding", F32, "t", t.shape()), out);
        closeAll(t, out);
    }

    @Test
    void dequantizeFp8IsExact() {
        for (long[] oi : new long[][] {{3, 128}, {5120, 5120}}) {
            float[] w = gaussian(Math.toIntExact(oi[0] * oi[1]), 71, 0.02);
            dev.wanlora.engine.numeric.Bf16.roundInPlace(w); // a bf16 checkpoint's weight
            Fp8BlockQuantizer.Result q = Fp8BlockQuantizer.quantize(w, (int) oi[0], (int) oi[1], BF16);
            for (DType scaleType : new DType[] {BF16, F32}) {
                var codes = java.lang.foreign.MemorySegment.ofArray(q.codes());
                Pair wq = new Pair(CPU.fromBytes(DType.F8_E4M3, Shape.of(oi), codes),
                        cuda().fromBytes(DType.F8_E4M3, Shape.of(oi), codes));
                Pair scale = of(scaleType, Shape.of(oi[0], oi[1] / 64, 1), q.scales());
                for (DType outType : new DType[] {BF16, F32}) {
                    Pair out = output(outType, Shape.of(oi));
                    CPU.dequantizeFp8(out.cpu(), wq.cpu(), scale.cpu());
                    cuda().dequantizeFp8(out.cuda(), wq.cuda(), scale.cuda());
                    checkExact(label("dequantizeFp8", outType, "scale=" + scaleType + ",wq", wq.shape()), out);
                    closeAll(out);
                }
                closeAll(wq, scale);
            }
        }
    }

    @Test
    void conversionsAreExact() {
        DType[] types = {F32, BF16, DType.F16, DType.F8_E4M3, DType.F8_E5M2};
        for (DType from : types) {
            for (DType to : types) {
                for (Shape s : new Shape[] {Shape.of(77), Shape.of(3744, 5120)}) {
                    // Values within every format's range (|x| < 448), so narrowing never overflows.
                    Pair src = random(from, s, 81, 20), dst = output(to, s);
                    CPU.copy(dst.cpu(), src.cpu());
                    cuda().copy(dst.cuda(), src.cuda());
                    checkExact(label("copy", to, "src(" + from + ")", s), dst);
                    closeAll(src, dst);
                }
            }
        }
    }

    @Test
    void fill() {
        for (DType t : new DType[] {F32, BF16, DType.F16, DType.F8_E4M3}) {
            Pair x = output(t, Shape.of(1001));
            CPU.fill(x.view(1, Shape.of(999)).cpu(), 0.3f);
            cuda().fill(x.view(1, Shape.of(999)).cuda(), 0.3f);
            CPU.fill(x.view(0, Shape.of(1)).cpu(), -2f);
            cuda().fill(x.view(0, Shape.of(1)).cuda(), -2f);
            CPU.fill(x.view(1000, Shape.of(1)).cpu(), 5f);
            cuda().fill(x.view(1000, Shape.of(1)).cuda(), 5f);
            checkExact(label("fill", t, "x", x.shape()), x);
            closeAll(x);
        }
    }
}
