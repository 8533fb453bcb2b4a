package dev.wanlora.models.wan;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

/** TEMPORARY until engine's Fp8BlockQuantizer lands: musubi's block-64 quantizer (spec §3.2). */
record Fp8BlockQuantization(byte[] codes, float[] scales, DType scaleDType) {
    static Fp8BlockQuantization quantize(DType weightDType, Shape shape, float[] w) {
        int out = (int) shape.dim(0), in = (int) shape.dim(1), blocks = in / 64;
        DType scaleDType = weightDType == DType.F32 ? DType.F32 : DType.BF16;
        byte[] codes = new byte[w.length];
        float[] scales = new float[out * blocks];
        for (int o = 0; o < out; o++) {
            for (int k = 0; k < blocks; k++) {
                float max = 0;
                for (int j = 0; j < 64; j++) max = Math.max(max, Math.abs(w[o * in + k * 64 + j]));
                float scale = max / 448f;
                if (scaleDType == DType.BF16) scale = Bf16.round(scale);
                scale = Math.max(scale, scaleDType == DType.BF16 ? Bf16.round(1e-8f) : 1e-8f);
                scales[o * blocks + k] = scale;
                for (int j = 0; j < 64; j++) {
                    float q = w[o * in + k * 64 + j] / scale;
                    q = Float.isNaN(q) ? 0 : Math.max(-448f, Math.min(448f, q));
                    codes[o * in + k * 64 + j] = Fp8.e4m3FromFloat(q);
                }
            }
        }
        return new Fp8BlockQuantization(codes, scales, scaleDType);
    }
}
