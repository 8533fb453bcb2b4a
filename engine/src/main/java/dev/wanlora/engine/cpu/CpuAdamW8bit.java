package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.Backend;

/**
 * The CPU reference of {@link Backend#adamw8bit}: block-wise 8-bit AdamW. Its tensors' storage is reached through
 * {@link CpuTensor}'s package-private {@code data()}/{@code offset()}/{@code get}/{@code store}.
 */
final class CpuAdamW8bit {
    private CpuAdamW8bit() {}

    static void step(CpuTensor param, CpuTensor grad, CpuTensor mCodes, CpuTensor mAbsMax, CpuTensor vCodes,
                     CpuTensor vAbsMax, CpuTensor gradScale, Backend.AdamWStep hyper) {
        // TODO(train-pieces): block-wise dynamic quantization (issue 3)
        throw new UnsupportedOperationException("adamw8bit (cpu): implemented by the optim package, not yet landed");
    }
}
