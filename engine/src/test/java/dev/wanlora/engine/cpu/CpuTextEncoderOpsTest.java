package dev.wanlora.engine.cpu;

import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;
import static org.junit.jupiter.api.Assertions.*;

/** Hand-computed values for the umT5 ops of the CPU reference. */
class CpuTextEncoderOpsTest {
    private final CpuBackend cpu = new CpuBackend();

    @Test
    void embeddingGathersRows() {
        Tensor table = cpu.fromFloats(F32, Shape.of(3, 2), new float[] {0, 1, 10, 11, 20, 21});
        Tensor ids = cpu.fromFloats(F32, Shape.of(4), new float[] {2, 0, 2, 1});
        Tensor out = cpu.allocate(F32, Shape.of(4, 2));
        cpu.embedding(out, table, ids);
        assertArrayEquals(new float[] {20, 21, 0, 1, 20, 21, 10, 11}, cpu.toFloats(out));
        Tensor bad = cpu.fromFloats(F32, Shape.of(4), new float[] {0, 3, 0, 0});
        var e = assertThrows(IllegalArgumentException.class, () -> cpu.embedding(out, table, bad));
        assertEquals("embedding: ids[1] is not an index; got 3.0, expected an integer in [0, 3)", e.getMessage());
    }

    @Test
    void relativePositionBiasIndexesByOffset() {
        // 2 heads, 4 buckets; table[bucket, h] = 10·bucket + h. Lq = 2, Lk = 3: offsets j − i = −1 … 2 → buckets[0..3].
        Tensor table = cpu.fromFloats(F32, Shape.of(4, 2), new float[] {0, 1, 10, 11, 20, 21, 30, 31});
        Tensor buckets = cpu.fromFloats(F32, Shape.of(4), new float[] {3, 0, 1, 2}); // rel −1 → 3, 0 → 0, 1 → 1, 2 → 2
        Tensor out = cpu.allocate(F32, Shape.of(2, 2, 3));
        cpu.relativePositionBias(out, table, buckets);
        // head 0: row i=0: rel 0,1,2 → 0,10,20; row i=1: rel −1,0,1 → 30,0,10. head 1: the same + 1.
        assertArrayEquals(new float[] {0, 10, 20, 30, 0, 10, 1, 11, 21, 31, 1, 11}, cpu.toFloats(out));
    }

    @Test
    void attentionWithBiasIgnoresMaskedKeysAndDoesNotScale() {
        // One head of D = 1: q = 1, keys k = (0, ln 3, 99), v = (1, 5, 1000); key 2 masked. Scores 0 and ln 3 (no 1/√D)
        // → softmax 1/4, 3/4 → out = 1/4 + 15/4 = 4. Bias 0 except row 0 key 0: +ln 3 → scores ln 3, ln 3 → out 3.
        Tensor q = cpu.fromFloats(F32, Shape.of(1, 2, 1), new float[] {1, 1});
        Tensor k = cpu.fromFloats(F32, Shape.of(1, 3, 1), new float[] {0, (float) Math.log(3), 99});
        Tensor v = cpu.fromFloats(F32, Shape.of(1, 3, 1), new float[] {1, 5, 1000});
        Tensor bias = cpu.fromFloats(F32, Shape.of(1, 2, 3), new float[] {(float) Math.log(3), 0, 0, 0, 0, 0});
        Tensor mask = cpu.fromFloats(F32, Shape.of(1, 3), new float[] {1, 1, 0});
        Tensor out = cpu.allocate(F32, Shape.of(1, 2, 1));
        cpu.attentionWithBias(out, q, k, v, bias, mask, 1);
        float[] o = cpu.toFloats(out);
        assertEquals(3, o[0], 1e-6);
        assertEquals(4, o[1], 1e-6);
        // All keys masked: zeros.
        cpu.attentionWithBias(out, q, k, v, bias, cpu.allocate(F32, Shape.of(1, 3)), 1);
        assertArrayEquals(new float[] {0, 0}, cpu.toFloats(out));
    }

    @Test
    void gatedGeluRoundsTheGeluFirst() {
        // gelu_tanh(1) = 0.5·(1 + tanh(√(2/π)·1.044715)) = 0.8411920; in bf16 0.83984375; × 3 = 2.51953125 → bf16 2.515625.
        Tensor gate = cpu.fromFloats(F32, Shape.of(2), new float[] {1, 0});
        Tensor x = cpu.fromFloats(F32, Shape.of(2), new float[] {3, 7});
        Tensor out = cpu.allocate(BF16, Shape.of(2));
        cpu.gatedGelu(out, gate, x);
        assertArrayEquals(new float[] {2.515625f, 0}, cpu.toFloats(out));
        Tensor out32 = cpu.allocate(F32, Shape.of(2));
        cpu.gatedGelu(out32, gate, x);
        assertEquals(3 * 0.8411920, cpu.toFloats(out32)[0], 1e-6);
    }

    @Test
    void shapeErrorsNameTheTensor() {
        Tensor q = cpu.allocate(F32, Shape.of(1, 4, 8)), k = cpu.allocate(F32, Shape.of(1, 5, 8));
        Tensor out = cpu.allocate(F32, Shape.of(1, 4, 8)), mask = cpu.allocate(F32, Shape.of(1, 5));
        Tensor wrongBias = cpu.allocate(F32, Shape.of(2, 4, 4));
        var e = assertThrows(IllegalArgumentException.class, () -> cpu.attentionWithBias(out, q, k, k, wrongBias, mask, 2));
        assertEquals("attentionWithBias: wrong shape of bias; got bias=(2,4,4) f32, expected bias=(2,4,5)", e.getMessage());
        Tensor table = cpu.allocate(F32, Shape.of(32, 2));
        var b = assertThrows(IllegalArgumentException.class,
                () -> cpu.relativePositionBias(cpu.allocate(F32, Shape.of(2, 4, 5)), table, cpu.allocate(F32, Shape.of(7))));
        assertEquals("relativePositionBias: wrong shape of buckets; got buckets=(7) f32, expected buckets=(8)", b.getMessage());
    }
}
