package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.Backend.ConvGeometry;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.assertMessage;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.randn;
import static dev.wanlora.engine.cpu.CpuTesting.values;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** The VAE's video ops on the CPU: conv3d (space, time, strides, cache), upsampleNearest2x and softmax, hand values. */
class CpuVideoTest {

    @Test
    void conv3dSpatialTapsAndPadding() {
        // x = [[1,2],[3,4]] (1 frame, 1 channel), 3×3 kernel: 1 at the centre, 10 at the top-left tap, bias 0.5, pad 1:
        // out[h,w] = x[h,w] + 10·x[h−1,w−1] + 0.5 = [[1.5, 2.5], [3.5, 4 + 10 + 0.5]].
        var x = f32(new float[] {1, 2, 3, 4}, 1, 2, 2, 1);
        var w = f32(new float[] {10, 0, 0, 0, 1, 0, 0, 0, 0}, 1, 1, 3, 3, 1);
        var out = zeros(DType.F32, 1, 2, 2, 1);
        CPU.conv3d(out, null, x, w, f32(new float[] {0.5f}, 1), ConvGeometry.same(1));
        assertArrayEquals(new float[] {1.5f, 2.5f, 3.5f, 14.5f}, values(out), 0f);
    }

    @Test
    void conv3dReadsTheCacheBeforeTheChunk() {
        // Causal time kernel (3,1,1) with weights (1, 2, 4) over the stream concat(cache = (1, 2), x = (3)):
        // 1·1 + 2·2 + 4·3 = 17.
        var cache = f32(new float[] {1, 2}, 2, 1, 1, 1);
        var x = f32(new float[] {3}, 1, 1, 1, 1);
        var out = zeros(DType.F32, 1, 1, 1, 1);
        CPU.conv3d(out, cache, x, f32(new float[] {1, 2, 4}, 1, 3, 1, 1, 1), null, ConvGeometry.same(0));
        assertArrayEquals(new float[] {17}, values(out), 0f);
    }

    @Test
    void conv3dStrides() {
        // Wan's downsample2d: ZeroPad2d((0,1,0,1)) then a 3×3 stride-2 conv of ones on [[1,2],[3,4]]: one output,
        // the window rows/cols 0..2 with row/col 2 the zero pad: 1 + 2 + 3 + 4 = 10.
        var x = f32(new float[] {1, 2, 3, 4}, 1, 2, 2, 1);
        var ones = f32(new float[] {1, 1, 1, 1, 1, 1, 1, 1, 1}, 1, 1, 3, 3, 1);
        var out = zeros(DType.F32, 1, 1, 1, 1);
        CPU.conv3d(out, null, x, ones, null, new ConvGeometry(1, 2, 0, 1));
        assertArrayEquals(new float[] {10}, values(out), 0f);
        // downsample3d's time_conv: stream (cache 1) + (2, 3, 4, 5), weights (1, 10, 100), time stride 2, no padding:
        // t=0 reads frames 0..2 = 1 + 20 + 300 = 321, t=1 reads frames 2..4 = 3 + 40 + 500 = 543.
        var t = zeros(DType.F32, 2, 1, 1, 1);
        CPU.conv3d(t, f32(new float[] {1}, 1, 1, 1, 1), f32(new float[] {2, 3, 4, 5}, 4, 1, 1, 1),
                f32(new float[] {1, 10, 100}, 1, 3, 1, 1, 1), null, new ConvGeometry(2, 1, 0, 0));
        assertArrayEquals(new float[] {321, 543}, values(t), 0f);
    }

    @Test
    void conv3dChannels() {
        // 1×1, Cin = Cout = 2: out = w·x + b with x = (1, 2), w = [[1, 2], [3, 4]], b = (0.5, −1) → (5.5, 10).
        var out = zeros(DType.F32, 1, 1, 1, 2);
        CPU.conv3d(out, null, f32(new float[] {1, 2}, 1, 1, 1, 2), f32(new float[] {1, 2, 3, 4}, 2, 1, 1, 1, 2),
                f32(new float[] {0.5f, -1}, 2), ConvGeometry.same(0));
        assertArrayEquals(new float[] {5.5f, 10}, values(out), 0f);
    }

    @Test
    void conv3dWithACacheEqualsTheWholeStream() {
        // A chunk after a 2-frame cache is the tail of the convolution of the concatenated stream (Wan's feature cache).
        var stream = randn(1, DType.F32, 5, 4, 6, 3);
        var w = randn(2, DType.F32, 5, 3, 3, 3, 3);
        var b = randn(3, DType.F32, 5);
        var whole = zeros(DType.F32, 3, 4, 6, 5);
        CPU.conv3d(whole, null, stream, w, b, ConvGeometry.same(1));
        var chunk = zeros(DType.F32, 3, 4, 6, 5);
        long frame = 4 * 6 * 3;
        CPU.conv3d(chunk, stream.view(0, Shape.of(2, 4, 6, 3)), stream.view(2 * frame, Shape.of(3, 4, 6, 3)), w, b,
                ConvGeometry.same(1));
        assertArrayEquals(values(whole), values(chunk), 0f);
    }

    @Test
    void conv3dRejectsMisfits() {
        var x = zeros(DType.F32, 1, 4, 4, 3);
        assertMessage("conv3d: weight does not fit x; got weight=(5,3,3,3,2) f32 for x=(1,4,4,3) f32, expected"
                        + " weight=(Cout, KT, KH, KW, 3) with positive sizes",
                () -> CPU.conv3d(zeros(DType.F32, 1, 4, 4, 5), zeros(DType.F32, 2, 4, 4, 3), x,
                        zeros(DType.F32, 5, 3, 3, 3, 2), null, ConvGeometry.same(1)));
        assertMessage("conv3d: wrong shape of out; got out=(1,4,4,5) f32, expected out=(1,4,4,6)",
                () -> CPU.conv3d(zeros(DType.F32, 1, 4, 4, 5), zeros(DType.F32, 2, 4, 4, 3), x,
                        zeros(DType.F32, 6, 3, 3, 3, 3), null, ConvGeometry.same(1)));
        assertMessage("conv3d: the kernel does not tile the input exactly; got x=(1,4,4,3) f32 with kernel (3,3,3) and"
                        + " ConvGeometry[timeStride=1, spaceStride=1, padBefore=1, padAfter=1], expected"
                        + " (Tc + Tx − KT) % timeStride = 0 and (H + pads − KH) % spaceStride = 0",
                () -> CPU.conv3d(zeros(DType.F32, 1, 4, 4, 5), null, x, zeros(DType.F32, 5, 3, 3, 3, 3), null,
                        ConvGeometry.same(1)));
    }

    @Test
    void upsampleCopiesEachPixelIntoA2x2Block() {
        var out = zeros(DType.F32, 1, 2, 4, 1);
        CPU.upsampleNearest2x(out, f32(new float[] {1, 2}, 1, 1, 2, 1));
        assertArrayEquals(new float[] {1, 1, 2, 2, 1, 1, 2, 2}, values(out), 0f);
        var rgb = zeros(DType.F32, 1, 2, 2, 2);
        CPU.upsampleNearest2x(rgb, f32(new float[] {7, 8}, 1, 1, 1, 2));
        assertArrayEquals(new float[] {7, 8, 7, 8, 7, 8, 7, 8}, values(rgb), 0f);
    }

    @Test
    void softmaxHandValues() {
        // softmax(log(3, 1, 4)) = (3/8, 1/8, 4/8); with scale 2 on log(·)/2 the same. In place (out = x).
        var x = f32(new float[] {(float) Math.log(3), 0, (float) Math.log(4)}, 1, 3);
        CPU.softmax(x, x, 1);
        assertArrayEquals(new float[] {0.375f, 0.125f, 0.5f}, values(x), 6e-8f);
        var half = f32(new float[] {(float) (Math.log(3) / 2), 0, (float) (Math.log(4) / 2)}, 1, 3);
        var out = zeros(DType.F32, 1, 3);
        CPU.softmax(out, half, 2);
        assertArrayEquals(new float[] {0.375f, 0.125f, 0.5f}, values(out), 6e-8f);
    }
}
