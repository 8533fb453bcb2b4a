package dev.wanlora.benchmarks;

import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.umt5.UmT5Config;
import dev.wanlora.models.umt5.UmT5Encoder;
import dev.wanlora.models.umt5.UmT5Weights;

import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Times the umT5-XXL encoder at real size with seeded random weights (no checkpoint needed): 4 prompts of 77, 120,
 * 230 and 512 real tokens padded to Wan's 512, encoded (a) one prompt per call as musubi does at sampling start-up
 * and (b) as one batch of 4; first with bf16 weights, then with fp8 weights as {@code --fp8_t5} keeps them (codes
 * dequantized right before each GEMM). Wall time after a warm-up call, with a device synchronize around each
 * measurement; device memory is the drop in free memory (weights, then weights + the largest call's buffers).
 * Run: {@code java --enable-native-access=ALL-UNNAMED -cp "lib/*" dev.wanlora.benchmarks.UmT5Bench [device]}.
 */
public final class UmT5Bench {
    private static final int[] SEQ_LENS = {77, 120, 230, 512};
    private static final int TEXT_LENGTH = 512;
    private static final int REPEATS = 3;

    private UmT5Bench() {}

    public static void main(String[] args) {
        int device = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        try (CudaBackend cuda = CudaBackend.open(device)) {
            System.out.println("UmT5Bench on " + cuda.name());
            for (boolean fp8 : new boolean[] {false, true}) run(cuda, fp8);
        }
    }

    private static void run(CudaBackend cuda, boolean fp8) {
        UmT5Config config = UmT5Config.xxl();
        long free0 = cuda.context().freeMemoryBytes();
        long t0 = System.nanoTime();
        try (UmT5Weights w = UmT5Weights.random(cuda, config, DType.BF16, fp8, 1234)) {
            cuda.synchronize();
            long weightsBytes = free0 - cuda.context().freeMemoryBytes();
            System.out.printf(Locale.ROOT, "%s, %s random weights %.2f GiB (made in %.1f s)%n", config,
                    fp8 ? "fp8 (--fp8_t5)" : "bf16", weightsBytes / 1073741824.0, (System.nanoTime() - t0) / 1e9);
            UmT5Encoder encoder = new UmT5Encoder(cuda, w);
            float[][] ids = new float[SEQ_LENS.length][], masks = new float[SEQ_LENS.length][];
            SplittableRandom r = new SplittableRandom(7);
            for (int p = 0; p < SEQ_LENS.length; p++) {
                ids[p] = new float[TEXT_LENGTH];
                masks[p] = new float[TEXT_LENGTH];
                for (int i = 0; i < SEQ_LENS[p]; i++) {
                    ids[p][i] = i == SEQ_LENS[p] - 1 ? 1 : 3 + r.nextInt(config.vocab() - 3);
                    masks[p][i] = 1;
                }
            }
            encodeEach(cuda, encoder, ids, masks); // warm-up: kernel loading, cuBLASLt heuristics
            long minFree = cuda.context().freeMemoryBytes();
            double each = Double.MAX_VALUE, batched = Double.MAX_VALUE;
            for (int rep = 0; rep < REPEATS; rep++) {
                long s = System.nanoTime();
                encodeEach(cuda, encoder, ids, masks);
                each = Math.min(each, (System.nanoTime() - s) / 1e6);
                s = System.nanoTime();
                float[] allIds = new float[SEQ_LENS.length * TEXT_LENGTH], allMasks = new float[allIds.length];
                for (int p = 0; p < SEQ_LENS.length; p++) {
                    System.arraycopy(ids[p], 0, allIds, p * TEXT_LENGTH, TEXT_LENGTH);
                    System.arraycopy(masks[p], 0, allMasks, p * TEXT_LENGTH, TEXT_LENGTH);
                }
                try (Tensor out = encoder.encode(allIds, allMasks, SEQ_LENS.length, TEXT_LENGTH, null)) {
                    cuda.synchronize();
                    minFree = Math.min(minFree, cuda.context().freeMemoryBytes());
                    if (rep == 0) requireFinite(cuda.toFloats(out));
                }
                batched = Math.min(batched, (System.nanoTime() - s) / 1e6);
            }
            System.out.printf(Locale.ROOT, "  4 prompts one at a time (musubi's way): %.1f ms (best of %d)%n", each, REPEATS);
            System.out.printf(Locale.ROOT, "  4 prompts as one batch:                  %.1f ms (best of %d)%n", batched, REPEATS);
            System.out.printf(Locale.ROOT, "  device memory: weights %.2f GiB, peak with a batch-4 call %.2f GiB%n",
                    weightsBytes / 1073741824.0, (free0 - minFree) / 1073741824.0);
        }
    }

    private static void requireFinite(float[] v) {
        for (float x : v) {
            if (!Float.isFinite(x)) throw new IllegalStateException("UmT5Bench: non-finite encoder output " + x);
        }
    }

    private static void encodeEach(CudaBackend cuda, UmT5Encoder encoder, float[][] ids, float[][] masks) {
        for (int p = 0; p < ids.length; p++) {
            try (Tensor out = encoder.encode(ids[p], masks[p], 1, TEXT_LENGTH, null)) {
                cuda.synchronize();
            }
        }
    }
}
