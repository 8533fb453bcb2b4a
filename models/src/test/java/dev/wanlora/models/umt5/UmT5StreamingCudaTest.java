package dev.wanlora.models.umt5;

import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Locale;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * umT5 layer streaming on the GPU (pinned host images, the copy stream and its events): streamed == resident bit for
 * bit in bf16, plain and --fp8_t5, as UmT5StreamingTest proves on the CPU; then umT5-XXL at real size (seeded random
 * weights, one 512-token prompt): every layer streamed through 2 slots equals the resident encoder bit for bit, with
 * both times and the device memory each holds (the drop in free memory) printed beside the plan's figures. Run on a
 * GPU machine: {@code mvn -pl models -am test -Dtest=UmT5StreamingCudaTest}.
 */
@RequiresCuda
class UmT5StreamingCudaTest {

    @TempDir
    Path tmp;

    @Test
    void streamedEqualsResidentOnCuda() {
        UmT5StreamingTest.assertStreamedEqualsResident(CudaTests.backend(), DType.BF16, tmp);
    }

    @Test
    void realSizeStreamedEqualsResident() {
        CudaBackend cuda = CudaTests.backend();
        UmT5Config c = UmT5Config.xxl();
        float[] ids = new float[512], mask = new float[512];
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < 120; i++) {
            ids[i] = i == 119 ? 1 : 3 + r.nextInt(c.vocab() - 3);
            mask[i] = 1;
        }
        float[] resident = null;
        for (int streamed : new int[] {0, c.numLayers()}) {
            UmT5Weights.Streaming s = new UmT5Weights.Streaming(streamed, 2);
            cuda.synchronize();
            long free0 = cuda.context().freeMemoryBytes();
            try (UmT5Weights w = UmT5Weights.random(cuda, c, DType.BF16, false, 1234, s)) {
                cuda.synchronize();
                long weights = free0 - cuda.context().freeMemoryBytes();
                UmT5Encoder encoder = new UmT5Encoder(cuda, w);
                try (Tensor warm = encoder.encode(ids, mask, 1, 512, null)) {
                    cuda.synchronize();
                }
                long start = System.nanoTime();
                float[] out;
                long peak;
                try (Tensor t = encoder.encode(ids, mask, 1, 512, null)) {
                    cuda.synchronize();
                    peak = free0 - cuda.context().freeMemoryBytes();
                    out = cuda.toFloats(t);
                }
                double ms = (System.nanoTime() - start) / 1e6;
                long planned = SamplingMemoryPlan.textEncoderItems(new SamplingMemoryPlan.TextEncoder(c, DType.BF16, false, 2),
                        streamed).stream().mapToLong(i -> i.bytes()).sum();
                System.out.printf(Locale.ROOT, "umT5-XXL on %s, %d of 24 layers streamed: weights + slots %.2f GiB, after an"
                                + " encode %.2f GiB (plan: %.2f GiB with the encode buffers), one 512-token prompt %.1f ms,"
                                + " %d layer copies%n", cuda.name(), streamed, weights / 1073741824.0, peak / 1073741824.0,
                        planned / 1073741824.0, ms, w.streamer() == null ? 0 : w.streamer().loadCount());
                if (resident == null) resident = out;
                else assertArrayEquals(resident, out, "24 streamed layers vs resident at real size");
                for (float v : out) assertTrue(Float.isFinite(v));
            }
        }
    }
}
