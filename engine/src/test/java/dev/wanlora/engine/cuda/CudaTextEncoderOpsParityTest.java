package dev.wanlora.engine.cuda;

import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;

/**
 * CUDA vs CPU for the umT5 encoder's ops (embedding, relativePositionBias, attentionWithBias, gatedGelu) over a ragged
 * tiny case and the real umT5-XXL shapes (4 prompts of 512 tokens, 64 heads of 64, d 4096, FFN 10240). Gathers are
 * copies and must match exactly; the others use {@link Parity}'s bounds (attention reduces over Lk ≤ 512 keys and
 * D = 64 dims in fp32, well inside F32's 1e-5).
 */
@RequiresCuda
class CudaTextEncoderOpsParityTest {
    private static final DType[][] IO = {{BF16, BF16}, {F32, F32}, {BF16, F32}, {F32, BF16}};

    private static Pair ids(int count, int bound, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[count];
        for (int i = 0; i < count; i++) v[i] = r.nextInt(bound);
        return of(F32, Shape.of(count), v);
    }

    @Test
    void embedding() {
        int[][] cases = {{7, 11, 40}, {4 * 512, 32000, 4096}}; // (R, V, C): ragged; 4 prompts × 512 of d 4096
        for (DType[] io : IO) {
            for (int[] c : cases) {
                Pair table = random(io[0], Shape.of(c[1], c[2]), 31, 1), id = ids(c[0], c[1], 32);
                Pair out = output(io[1], Shape.of(c[0], c[2]));
                CPU.embedding(out.cpu(), table.cpu(), id.cpu());
                cuda().embedding(out.cuda(), table.cuda(), id.cuda());
                checkExact(label("embedding", io[1], "table", table.shape()), out);
                closeAll(table, id, out);
            }
        }
    }

    @Test
    void relativePositionBias() {
        int[][] cases = {{3, 7, 5}, {64, 512, 512}}; // (N, Lq, Lk)
        for (DType[] io : IO) {
            for (int[] c : cases) {
                Pair table = random(io[0], Shape.of(32, c[0]), 33, 1), buckets = ids(c[1] + c[2] - 1, 32, 34);
                Pair out = output(io[1], Shape.of(c[0], c[1], c[2]));
                CPU.relativePositionBias(out.cpu(), table.cpu(), buckets.cpu());
                cuda().relativePositionBias(out.cuda(), table.cuda(), buckets.cuda());
                checkExact(label("relativePositionBias", io[1], "out", out.shape()), out);
                closeAll(table, buckets, out);
            }
        }
    }

    @Test
    void attentionWithBias() {
        // (B, Lq, Lk, N, D) with per-sample real lengths: ragged tiny (D = 40: lanes beyond D idle; one sample fully
        // real, one of 3), sampling-tiny's golden encoder (4 heads of 16, text_len 32), then umT5-XXL with 4 prompts
        // padded to 512 (lengths 512, 77, 13, 1: a single real key included).
        int[][] shapes = {{2, 7, 7, 3, 40}, {2, 32, 32, 4, 16}, {4, 512, 512, 64, 64}};
        int[][] lengths = {{7, 3}, {16, 18}, {512, 77, 13, 1}};
        for (DType t : new DType[] {BF16, F32}) {
            for (DType biasType : new DType[] {BF16, F32}) {
                for (int s = 0; s < shapes.length; s++) {
                    int[] c = shapes[s];
                    int b = c[0], lq = c[1], lk = c[2], n = c[3], d = c[4];
                    // T5 has no 1/√D: q·k is O(√D·scale²); scale 0.3 keeps logits O(1–3) as in a trained encoder.
                    Pair q = random(t, Shape.of(b, lq, n * d), 41, 0.3), k = random(t, Shape.of(b, lk, n * d), 42, 0.3);
                    Pair v = random(t, Shape.of(b, lk, n * d), 43, 1), bias = random(biasType, Shape.of(n, lq, lk), 44, 2);
                    float[] mask = new float[b * lk];
                    for (int i = 0; i < b; i++) for (int j = 0; j < lengths[s][i]; j++) mask[i * lk + j] = 1;
                    Pair keyMask = of(F32, Shape.of(b, lk), mask), out = output(t, q.shape());
                    CPU.attentionWithBias(out.cpu(), q.cpu(), k.cpu(), v.cpu(), bias.cpu(), keyMask.cpu(), n);
                    cuda().attentionWithBias(out.cuda(), q.cuda(), k.cuda(), v.cuda(), bias.cuda(), keyMask.cuda(), n);
                    check(label("attentionWithBias", t, "q", q.shape()) + "[bias " + biasType + "]", out);
                    closeAll(q, k, v, bias, keyMask, out);
                }
            }
        }
    }

    @Test
    void gatedGelu() {
        for (DType[] io : IO) {
            for (Shape s : new Shape[] {Shape.of(3, 40), Shape.of(4 * 512, 10240)}) {
                Pair gate = random(io[0], s, 51, 3), x = random(io[0], s, 52, 1), out = output(io[1], s);
                CPU.gatedGelu(out.cpu(), gate.cpu(), x.cpu());
                cuda().gatedGelu(out.cuda(), gate.cuda(), x.cuda());
                check(label("gatedGelu", io[1], "x", s), out);
                closeAll(gate, x, out);
            }
        }
        // In place over x, as the encoder runs it.
        Pair gate = random(BF16, Shape.of(4 * 512, 10240), 53, 3), x = random(BF16, Shape.of(4 * 512, 10240), 54, 1);
        CPU.gatedGelu(x.cpu(), gate.cpu(), x.cpu());
        cuda().gatedGelu(x.cuda(), gate.cuda(), x.cuda());
        check(label("gatedGelu(in place)", BF16, "x", x.shape()), x);
        closeAll(gate, x);
    }
}
