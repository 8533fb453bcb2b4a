package dev.wanlora.engine.cuda;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp16;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.numeric.Fp8BlockQuantizer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The loader's device ops against the CPU reference, byte for byte (no tolerance: the quantizer must be bit-identical
 * to {@link Fp8BlockQuantizer}, and writeBytes moves bytes). quantizeFp8 on every block Linear shape of the real 14B
 * (and 1.3B) model, with special values planted in some blocks, and on the golden fp8 data made by musubi's own
 * quantizer; writeBytes of sources larger than the staging ring, through many chunks and pieces.
 */
@RequiresCuda
class CudaLoadOpsParityTest {
    private final CudaBackend cuda = CudaTests.backend();

    /** (O, I) of the ten block Linears: q/k/v/o (C, C), ffn.0 (F, C), ffn.2 (C, F); 14B C=5120 F=13824, 1.3B 1536/8960. */
    private static final long[][] SHAPES_14B = {{5120, 5120}, {13824, 5120}, {5120, 13824}};
    private static final long[][] SHAPES_1_3B = {{1536, 1536}, {8960, 1536}, {1536, 8960}};

    @Test
    void quantizeFp8OnEvery14BShapeBf16() {
        for (long[] s : SHAPES_14B) check(DType.BF16, Shape.of(s[0], s[1]), 14);
    }

    @Test
    void quantizeFp8On1_3BShapesAndF16F32Weights() {
        for (long[] s : SHAPES_1_3B) check(DType.BF16, Shape.of(s[0], s[1]), 13);
        check(DType.F16, Shape.of(1536, 8960), 16);
        check(DType.F32, Shape.of(1536, 8960), 32);
        check(DType.BF16, Shape.of(3, 64), 3); // ragged tiny: fewer threads than a warp
    }

    @Test
    void quantizeFp8MatchesMusubiGolden() {
        Path dir = Golden.dir("wan-tiny");
        int tensors = 0;
        try (var model = SafeTensors.open(dir.resolve("model.safetensors"));
             var golden = SafeTensors.open(dir.resolve("fp8.safetensors"))) {
            for (String key : golden.keys()) {
                if (!key.startsWith("fp8.")) continue;
                String weightKey = key.substring("fp8.".length());
                Shape shape = model.info(weightKey).shape();
                try (CudaTensor w = cuda.fromBytes(DType.BF16, shape, model.data(weightKey));
                     CudaTensor codes = cuda.allocate(DType.F8_E4M3, shape);
                     CudaTensor scale = cuda.allocate(DType.BF16, Shape.of(shape.dim(0), shape.dim(1) / 64, 1))) {
                    cuda.quantizeFp8(codes, scale, w);
                    assertArrayEquals(golden.data(key).toArray(ValueLayout.JAVA_BYTE), codeBytes(codes), key);
                    String scaleKey = "fp8scale." + weightKey.replace(".weight", ".scale_weight");
                    assertArrayEquals(bits(golden.floats(scaleKey)), bits(cuda.toFloats(scale)), scaleKey);
                }
                tensors++;
            }
        }
        System.out.println("quantizeFp8[cuda] golden: " + tensors + " tensors byte-identical to musubi's quantizer");
        assertEquals(20, tensors);
    }

    /** Three 100 MB sources (more than the 256 MiB ring together) and a small one: every byte arrives. */
    @Test
    void writeBytesMovesEveryByteThroughTheRing(@TempDir Path dir) throws IOException {
        long size = 3 * UploadStaging.CHUNK_BYTES + 12_345;
        Path file = dir.resolve("bytes.bin");
        byte[] data = new byte[(int) size];
        new SplittableRandom(5).nextBytes(data);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.wrap(data);
            while (b.hasRemaining()) ch.write(b);
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            CudaTensor[] targets = new CudaTensor[3];
            try {
                for (int k = 0; k < 3; k++) {
                    targets[k] = cuda.allocate(DType.U8, Shape.of(size - k));
                    cuda.writeBytes(targets[k], new dev.wanlora.engine.io.ByteSource.FileRange(file, ch, k, size - k));
                }
                for (int k = 0; k < 3; k++) {
                    float[] got = cuda.toFloats(targets[k]);
                    for (int i = 0; i < got.length; i++) {
                        if ((int) got[i] != (data[i + k] & 0xff)) fail("target " + k + " byte " + i + ": got " + got[i]);
                    }
                }
                try (CudaTensor small = cuda.allocate(DType.U8, Shape.of(10))) {
                    cuda.writeBytes(small, new dev.wanlora.engine.io.ByteSource.FileRange(file, ch, 100, 10));
                    float[] got = cuda.toFloats(small);
                    for (int i = 0; i < 10; i++) assertEquals(data[100 + i] & 0xff, (int) got[i]);
                }
            } finally {
                for (CudaTensor t : targets) if (t != null) t.close();
            }
        }
        System.out.printf("writeBytes[cuda] 3 × %.1f MiB + 10 bytes through the staging ring: identical%n", size / 1048576.0);
    }

    /**
     * One case: gaussian values whose scale changes per row (1e-6 .. 1e2, so blocks use the whole e4m3 range and
     * bf16/f16 subnormals appear), with blocks planted with NaN, ±Inf, -0, all zeros, and a tie at the clamp.
     */
    private void check(DType dtype, Shape shape, long seed) {
        int n = Math.toIntExact(shape.numElements());
        long rows = shape.dim(0), cols = shape.dim(1);
        float[] w = new float[n];
        SplittableRandom random = new SplittableRandom(seed);
        for (long r = 0; r < rows; r++) {
            double rowScale = Math.pow(10, -6 + 8 * random.nextDouble());
            for (long c = 0; c < cols; c++) w[(int) (r * cols + c)] = round(dtype, (float) (random.nextGaussian() * rowScale));
        }
        long blocks = n / 64;
        plant(w, random.nextLong(blocks), Float.NaN);
        plant(w, random.nextLong(blocks), Float.POSITIVE_INFINITY);
        plant(w, random.nextLong(blocks), Float.NEGATIVE_INFINITY);
        long zeros = random.nextLong(blocks);
        for (int i = 0; i < 64; i++) w[(int) (zeros * 64 + i)] = (i % 2 == 0) ? 0f : -0f;
        Fp8BlockQuantizer.Result expected = Fp8BlockQuantizer.quantize(w, shape, dtype);
        Shape scaleShape = Shape.of(rows, cols / 64, 1);
        try (CudaTensor wt = cuda.fromFloats(dtype, shape, w); CudaTensor codes = cuda.allocate(DType.F8_E4M3, shape);
             CudaTensor scale = cuda.allocate(dtype == DType.BF16 ? DType.BF16 : DType.F32, scaleShape)) {
            cuda.quantizeFp8(codes, scale, wt);
            byte[] got = codeBytes(codes);
            int diff = 0;
            for (int i = 0; i < n; i++) if (got[i] != expected.codes()[i]) diff++;
            int[] expectedScales = bits(expected.scales()), gotScales = bits(cuda.toFloats(scale));
            int scaleDiff = 0;
            for (int i = 0; i < expectedScales.length; i++) if (expectedScales[i] != gotScales[i]) scaleDiff++;
            System.out.printf("quantizeFp8[cuda,%s,w=%s] codes differing: %d of %d, scales differing: %d of %d%n",
                    dtype, shape, diff, n, scaleDiff, expectedScales.length);
            assertEquals(0, diff, "codes must be byte-identical to Fp8BlockQuantizer");
            assertEquals(0, scaleDiff, "scales must be identical to Fp8BlockQuantizer");
        }
    }

    private static void plant(float[] w, long block, float value) { w[(int) (block * 64 + 17)] = value; }

    private static float round(DType dtype, float v) {
        return switch (dtype) {
            case BF16 -> Bf16.round(v);
            case F16 -> Fp16.round(v);
            default -> v;
        };
    }

    /** The e4m3 bytes of a codes tensor (toFloats decodes exactly; encoding the value back gives the code, -0 too). */
    private byte[] codeBytes(Tensor codes) {
        float[] v = cuda.toFloats(codes);
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) b[i] = Fp8.e4m3FromFloat(v[i]);
        return b;
    }

    /** Float bits with every NaN canonical (a NaN scale is NaN whatever its payload). */
    private static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) b[i] = Float.floatToIntBits(v[i]);
        return b;
    }

}
