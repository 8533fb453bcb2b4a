package dev.wanlora.models.umt5;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * umT5 layer streaming (issue #9): an encoder whose last N layers stream through device slots computes bit for bit
 * what the resident one does (the copies are exact and the ops are the same), for every N, ring size and --fp8_t5;
 * the streamer copies each streamed layer once per encode when the ring is smaller than the streamed layers.
 */
class UmT5StreamingTest {

    @TempDir
    Path tmp;

    @Test
    void streamedEqualsResidentOnCpu() {
        assertStreamedEqualsResident(new CpuBackend(), DType.F32, tmp);
    }

    @Test
    void goldenEncoderStreamedEqualsResident() {
        CpuBackend cpu = new CpuBackend();
        Path file = Golden.dir("sampling-tiny").resolve("t5.safetensors");
        float[] resident = null;
        try (SafeTensors st = SafeTensors.open(file)) {
            int layers = UmT5Weights.configOf(st).numLayers();
            for (int n : new int[] {0, 1, layers}) {
                float[] out = encode(cpu, file, DType.F32, false, new UmT5Weights.Streaming(n, 2), null, Input.golden());
                if (resident == null) resident = out;
                else assertArrayEquals(resident, out, "golden umT5 with " + n + " streamed layer(s)");
            }
        }
    }

    /** The seeded random weights (UmT5StreamingCudaTest's real-size case) stream to the same values as resident. */
    @Test
    void randomWeightsStreamedEqualResident() {
        CpuBackend cpu = new CpuBackend();
        UmT5Config c = new UmT5Config(50, 64, 64, 128, 4, 3, 32, 128);
        Input in = Input.random();
        for (boolean fp8 : new boolean[] {false, true}) {
            float[][] out = new float[2][];
            for (int n : new int[] {0, 3}) {
                try (UmT5Weights w = UmT5Weights.random(cpu, c, DType.F32, fp8, 99, new UmT5Weights.Streaming(n, 2));
                     Tensor t = new UmT5Encoder(cpu, w).encode(in.ids(), in.mask(), in.batch(), in.length(), null)) {
                    out[n == 0 ? 0 : 1] = cpu.toFloats(t);
                }
            }
            assertArrayEquals(out[0], out[1], "random weights, fp8 " + fp8);
        }
    }

    @Test
    void badStreamingIsRefused() {
        Path file = Golden.dir("sampling-tiny").resolve("t5.safetensors");
        CpuBackend cpu = new CpuBackend();
        try (SafeTensors st = SafeTensors.open(file)) {
            var e = assertThrows(IllegalArgumentException.class,
                    () -> UmT5Weights.load(cpu, st, DType.F32, false, new UmT5Weights.Streaming(99, 2)));
            assertTrue(e.getMessage().startsWith("umT5 streaming: 99 layer(s) through 2 slot(s); expected 0 to"), e.getMessage());
        }
    }

    /**
     * The shared body (also run on CUDA by UmT5StreamingCudaTest): random weights with widths that are multiples of 64
     * (so --fp8_t5 applies), 3 layers, two ragged sequences with padding; resident vs 1, 2 and 3 streamed layers
     * through 2 and 3 slots, plain and fp8. Bitwise equality: streaming only copies bytes, it changes no op.
     */
    static void assertStreamedEqualsResident(Backend backend, DType dtype, Path tmp) {
        UmT5Config c = new UmT5Config(50, 64, 64, 128, 4, 3, 32, 128);
        Path file = randomEncoder(c, tmp.resolve("random_umt5.safetensors"));
        for (boolean fp8 : new boolean[] {false, true}) {
            float[] resident = encode(backend, file, dtype, fp8, UmT5Weights.Streaming.NONE, null, Input.random());
            for (int n = 1; n <= c.numLayers(); n++) {
                for (int slots = 2; slots <= 3; slots++) {
                    long[] loads = new long[1];
                    float[] streamed = encode(backend, file, dtype, fp8, new UmT5Weights.Streaming(n, slots), loads, Input.random());
                    assertArrayEquals(resident, streamed, "fp8 " + fp8 + ", " + n + " streamed layer(s), " + slots + " slots");
                    // two encodes: each copies every streamed layer once, except those still in a slot from the first
                    long expected = n + (n <= slots ? 0 : n);
                    assertEquals(expected, loads[0], "loads with " + n + " streamed layers and " + slots + " slots");
                    System.out.printf("umT5 streaming [%s, %s, fp8=%b, %d of %d layers streamed, %d slots]: bit-identical, %d loads%n",
                            backend.name(), dtype, fp8, n, c.numLayers(), slots, loads[0]);
                }
            }
        }
    }

    /** Token ids and mask, row-major (batch, length). */
    record Input(float[] ids, float[] mask, int batch, int length) {
        /** Two sequences of 9 random ids below 50, the second with its last 5 padded. */
        static Input random() {
            SplittableRandom r = new SplittableRandom(11);
            float[] ids = new float[2 * 9], mask = new float[ids.length];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = r.nextInt(50);
                mask[i] = i < 9 || i % 9 < 4 ? 1 : 0;
            }
            return new Input(ids, mask, 2, 9);
        }

        /** The golden's two padded prompts (t5_io.safetensors: (2, 32)). */
        static Input golden() {
            try (SafeTensors io = SafeTensors.open(Golden.dir("sampling-tiny").resolve("t5_io.safetensors"))) {
                return new Input(UmT5GoldenVerifier.longsAsFloats(io, "input.ids"),
                        UmT5GoldenVerifier.longsAsFloats(io, "input.mask"), 2, 32);
            }
        }
    }

    /** Encodes {@code in} twice with one set of weights; the host copy of the second output ({@code loads[0]}: copies). */
    private static float[] encode(Backend backend, Path file, DType dtype, boolean fp8, UmT5Weights.Streaming streaming,
                                  long[] loads, Input in) {
        try (SafeTensors st = SafeTensors.open(file);
             UmT5Weights w = UmT5Weights.load(backend, st, dtype, fp8, streaming)) {
            UmT5Encoder encoder = new UmT5Encoder(backend, w);
            try (Tensor first = encoder.encode(in.ids(), in.mask(), in.batch(), in.length(), null)) {
                assertEquals(Shape.of(in.batch(), in.length(), w.config().dim()), first.shape());
            }
            try (Tensor second = encoder.encode(in.ids(), in.mask(), in.batch(), in.length(), null)) {
                if (loads != null) loads[0] = w.streamer() == null ? 0 : w.streamer().loadCount();
                float[] out = backend.toFloats(second);
                for (float v : out) assertTrue(Float.isFinite(v));
                return out;
            }
        }
    }

    /** A umT5 file of config c (Wan names), bf16 weights: Linear N(0, 0.05²)-ish, norms near 1, embedding and bias ±1. */
    static Path randomEncoder(UmT5Config c, Path file) {
        SplittableRandom r = new SplittableRandom(3);
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        java.util.function.BiConsumer<String, Shape> tensor = (name, shape) -> {
            float[] v = new float[(int) shape.numElements()];
            boolean isNorm = shape.rank() == 1, isLinear = name.contains(".attn.") || name.contains(".ffn.");
            for (int i = 0; i < v.length; i++) {
                double u = r.nextDouble() * 2 - 1;
                v[i] = (float) (isNorm ? 1 + 0.1 * u : isLinear ? 0.1 * u : u);
            }
            entries.add(SafeTensorsWriter.Entry.ofFloats(name, DType.BF16, shape, v));
        };
        tensor.accept("token_embedding.weight", Shape.of(c.vocab(), c.dim()));
        for (int i = 0; i < c.numLayers(); i++) {
            String b = "blocks." + i + ".";
            tensor.accept(b + "norm1.weight", Shape.of(c.dim()));
            for (String p : new String[] {"q", "k", "v"}) tensor.accept(b + "attn." + p + ".weight", Shape.of(c.dimAttn(), c.dim()));
            tensor.accept(b + "attn.o.weight", Shape.of(c.dim(), c.dimAttn()));
            tensor.accept(b + "norm2.weight", Shape.of(c.dim()));
            tensor.accept(b + "ffn.gate.0.weight", Shape.of(c.dimFfn(), c.dim()));
            tensor.accept(b + "ffn.fc1.weight", Shape.of(c.dimFfn(), c.dim()));
            tensor.accept(b + "ffn.fc2.weight", Shape.of(c.dim(), c.dimFfn()));
            tensor.accept(b + "pos_embedding.embedding.weight", Shape.of(c.numBuckets(), c.numHeads()));
        }
        tensor.accept("norm.weight", Shape.of(c.dim()));
        SafeTensorsWriter.write(file, entries, java.util.Map.of());
        return file;
    }
}
