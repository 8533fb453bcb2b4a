package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.ModulationOps;
import dev.wanlora.engine.backend.OpChecks.TokenDims;

/**
 * Wan's adaLN pieces: modulation x·(1 + scale) + shift and the gated residual x + y·gate, with per-sample F32
 * vectors mod (B, n, C) broadcast over the L tokens. Computed in double, rounded on store (Wan runs them in fp32).
 */
final class CpuModulation implements ModulationOps.Kernels<CpuTensor> {
    /** One task per token row (b, l). */
    @Override
    public void modulate(CpuTensor out, CpuTensor x, CpuTensor mod, int shiftIndex, int scaleIndex, TokenDims d) {
        int tokens = (int) d.tokens(), cols = (int) d.channels(), n = (int) mod.shape().dim(1);
        CpuRows.forEach(d.batch() * tokens, 2L * cols, row -> {
            int b = row / tokens, base = row * cols;
            int shift = (b * n + shiftIndex) * cols, scale = (b * n + scaleIndex) * cols;
            for (int c = 0; c < cols; c++) {
                out.store(base + c, x.get(base + c) * (1.0 + mod.get(scale + c)) + mod.get(shift + c));
            }
        });
    }

    /** Forward: out = x·(1 + scale) + shift, so dx = dOut·(1 + scale). */
    @Override
    public void modulateBackward(CpuTensor dx, CpuTensor dOut, CpuTensor mod, int scaleIndex, TokenDims d) {
        int tokens = (int) d.tokens(), cols = (int) d.channels(), n = (int) mod.shape().dim(1);
        CpuRows.forEach(d.batch() * tokens, cols, row -> {
            int b = row / tokens, base = row * cols, scale = (b * n + scaleIndex) * cols;
            for (int c = 0; c < cols; c++) dx.store(base + c, dOut.get(base + c) * (1.0 + mod.get(scale + c)));
        });
    }

    /** x += y·gate (gateIndex &lt; 0: x += y), in place; one task per token row. */
    @Override
    public void gatedResidual(CpuTensor x, CpuTensor y, CpuTensor mod, int gateIndex, TokenDims d) {
        int tokens = (int) d.tokens(), cols = (int) d.channels();
        CpuRows.forEach(d.batch() * tokens, cols, row -> {
            int base = row * cols, gate = gateIndex < 0 ? -1 : (row / tokens * (int) mod.shape().dim(1) + gateIndex) * cols;
            for (int c = 0; c < cols; c++) {
                double g = gate < 0 ? 1.0 : mod.get(gate + c);
                x.store(base + c, x.get(base + c) + y.get(base + c) * g);
            }
        });
    }

    /** The chain it fuses, literally: copy(out, x) (rounding x to out's dtype), then {@link #gatedResidual} on out. */
    @Override
    public void addGatedResidual(CpuTensor out, CpuTensor x, CpuTensor y, CpuTensor mod, int gateIndex, TokenDims d) {
        CpuRows.forEachChunk(out.size(), (from, to) -> {
            for (int i = from; i < to; i++) out.store(i, x.get(i));
        });
        gatedResidual(out, y, mod, gateIndex, d);
    }

    /** Forward: x' = x + y·gate, so dy = dx'·gate (= 1 without a gate). */
    @Override
    public void gatedResidualBackward(CpuTensor dy, CpuTensor dx, CpuTensor mod, int gateIndex, TokenDims d) {
        int tokens = (int) d.tokens(), cols = (int) d.channels();
        CpuRows.forEach(d.batch() * tokens, cols, row -> {
            int base = row * cols, gate = gateIndex < 0 ? -1 : (row / tokens * (int) mod.shape().dim(1) + gateIndex) * cols;
            for (int c = 0; c < cols; c++) {
                double g = gate < 0 ? 1.0 : mod.get(gate + c);
                dy.store(base + c, dx.get(base + c) * g);
            }
        });
    }
}
