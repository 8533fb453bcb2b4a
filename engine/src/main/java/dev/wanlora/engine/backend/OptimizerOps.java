package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.Backend.AdafactorStep;
import dev.wanlora.engine.backend.Backend.AdamWStep;
import dev.wanlora.engine.backend.Backend.ProdigyStep;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;

import static dev.wanlora.engine.backend.OpChecks.*;

/**
 * The optimizer family of {@link Backend}: gradient norm and clipping, AdamW, 8-bit AdamW, Prodigy, Adafactor.
 * Contracts, their checks ({@link Checked}, once for every backend) and the hooks a backend implements
 * ({@link Kernels}); the recipe is in {@link Backend}'s class comment. The hyper-parameter records and the state
 * sizes stay on {@link Backend}.
 */
public interface OptimizerOps {

    /** This backend's checked optimizer ops; the defaults below forward here. */
    Checked<?> optimizerOps();

    /** normSquared (1) F32 += Σ g² over the tensor, reduced in fp32 or wider. */
    default void sumOfSquares(Tensor normSquared, Tensor g) { optimizerOps().sumOfSquares(normSquared, g); }

    /**
     * One AdamW step (torch semantics: decoupled weight decay, bias correction) on F32 param/grad/m/v, with the
     * gradient first multiplied by gradScale (1) F32 (the clip coefficient, computed on the device so no host
     * synchronization is needed): p −= lr·wd·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
     * p −= lr·(m/(1−β1^step)) / (sqrt(v/(1−β2^step)) + eps). step is 1-based.
     */
    default void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, AdamWStep hyper) {
        optimizerOps().adamw(param, grad, m, v, gradScale, hyper);
    }

    /**
     * One 8-bit AdamW step (bitsandbytes AdamW8bit semantics, block-wise dynamic quantization): both moments are
     * stored as U8 codes of the signed (m) / unsigned (v) dynamic quantization maps with one F32 absmax per block of
     * {@link Backend#ADAMW8BIT_BLOCK_SIZE} elements. Each step dequantizes, applies the AdamW update in fp32 in
     * bitsandbytes' order (Adam step p += −lr·c2/c1·m/(√v + c2·eps), then p ·= 1 − lr·wd; a non-finite gradient
     * element zeroes m and v and leaves p), and requantizes with the new per-block absmax (the reference is
     * {@code CpuAdamW8bit}, the maps and rounding are {@code DynamicQuantization}). mCodes, vCodes (n) U8;
     * mAbsMax, vAbsMax (ceil(n/block)) F32.
     */
    default void adamw8bit(Tensor param, Tensor grad, Tensor mCodes, Tensor mAbsMax, Tensor vCodes, Tensor vAbsMax,
                           Tensor gradScale, AdamWStep hyper) {
        optimizerOps().adamw8bit(param, grad, mCodes, mAbsMax, vCodes, vAbsMax, gradScale, hyper);
    }

    /**
     * clip (1) F32 = min(1, maxNorm/(sqrt(normSquared) + 1e-6)) (torch.nn.utils.clip_grad_norm_), or 1 when
     * maxNorm ≤ 0.
     */
    default void clipCoefficient(Tensor clip, Tensor normSquared, float maxNorm) {
        optimizerOps().clipCoefficient(clip, normSquared, maxNorm);
    }

    /**
     * Prodigy (prodigyopt.Prodigy, d-adaptation of Adam's step size), first pass over one parameter: g =
     * f32(grad·gradScale) (+ wd·p when not decoupled); p0 = p when the step count k is 0 (the initial point); m =
     * β1·m + d(1−β1)·g; v = β2·v + d²(1−β2)·g²; s = β3·s + (d/d0)·(safeguardWarmup ? d : dlr)·g with dlr =
     * d·lr·(bias correction); then state[4] += (d/d0)·dlr·Σ g·(p0 − p) and state[5] += Σ |s| (double sums, added once
     * in F32). Nothing happens when lr is 0 (Prodigy skips such groups). param, grad, p0, m, v, s F32 of one shape;
     * state ({@link Backend#PRODIGY_STATE_SIZE}) F32 = {d, d_max, d_numerator, k, numerator sum, denominator sum, dlr,
     * skip}.
     */
    default void prodigyAccumulate(Tensor param, Tensor grad, Tensor p0, Tensor m, Tensor v, Tensor s,
                                   Tensor gradScale, Tensor state, ProdigyStep hyper) {
        optimizerOps().prodigyAccumulate(param, grad, p0, m, v, s, gradScale, state, hyper);
    }

    /**
     * Prodigy's step-size update, once per step after {@link #prodigyAccumulate} over every parameter: dlr =
     * d·lr·(bias correction) is kept in state[6]; a zero denominator sum sets skip (state[7] = 1, the step makes no
     * update, as upstream returns early); otherwise d_numerator = β3·d_numerator + state[4], d̂ = d_coef·d_numerator /
     * state[5], d = max(d, d̂) while d is still d0, d_max = max(d_max, d̂), d = min(d_max, d·growth_rate), k += 1. Both
     * sums are reset to 0.
     */
    default void prodigyAdapt(Tensor state, ProdigyStep hyper) { optimizerOps().prodigyAdapt(state, hyper); }

    /**
     * Prodigy's parameter update after {@link #prodigyAdapt} (nothing when skip is set): with d the new estimate and
     * dlr = state[6], p −= wd·dlr·p when decoupled, then p −= dlr·m/(sqrt(v) + d·eps) (β1 = 0: dlr·d·g/(…) with g as in
     * the first pass).
     */
    default void prodigyUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, Tensor state,
                               ProdigyStep hyper) {
        optimizerOps().prodigyUpdate(param, grad, m, v, gradScale, state, hyper);
    }

    /**
     * One Adafactor step on one parameter (transformers.optimization.Adafactor): g = f32(grad·gradScale); lr =
     * (scaleParameter ? max(eps2, RMS(p)) : 1)·(relativeStep ? min(warmupInit ? 1e-6·t : 1e-2, 1/√t) : learningRate);
     * β2t = 1 − t^decayRate; for a 2-D (R, C) parameter the second moment is factored: row (R) and col (C) F32 keep
     * the EMAs (β2t) of the row and column means of g² + eps1 and u = g / sqrt(row_i / mean(row)) / sqrt(col_j); a 1-D
     * one keeps v (n) F32 with u = g / sqrt(v). Then u /= max(1, RMS(u)/clipThreshold), u ·= lr; with β1 (m not
     * null) m = β1·m + (1−β1)·u and u = m; p −= wd·lr·p; p −= u. Reductions in double, state rounded to F32. Unused
     * state tensors are null (row/col for 1-D, v for 2-D, m without β1).
     */
    default void adafactor(Tensor param, Tensor grad, Tensor m, Tensor row, Tensor col, Tensor v, Tensor gradScale,
                           AdafactorStep hyper) {
        optimizerOps().adafactor(param, grad, m, row, col, v, gradScale, hyper);
    }

    /** A backend's optimizer family, called by {@link Checked} with checked arguments of the backend's tensor type. */
    interface Kernels<T extends Tensor> {
        void sumOfSquares(T normSquared, T g);
        void adamw(T param, T grad, T m, T v, T gradScale, AdamWStep hyper);
        void adamw8bit(T param, T grad, T mCodes, T mAbsMax, T vCodes, T vAbsMax, T gradScale, AdamWStep hyper);
        void clipCoefficient(T clip, T normSquared, float maxNorm);
        void prodigyAccumulate(T param, T grad, T p0, T m, T v, T s, T gradScale, T state, ProdigyStep hyper);
        void prodigyAdapt(T state, ProdigyStep hyper);
        void prodigyUpdate(T param, T grad, T m, T v, T gradScale, T state, ProdigyStep hyper);
        /** m, row, col, v are null where the contract leaves them out. */
        void adafactor(T param, T grad, T m, T row, T col, T v, T gradScale, AdafactorStep hyper);
    }

    /** The checks of every optimizer op (shapes, dtypes, steps, ownership, aliasing), then the {@link Kernels}. */
    final class Checked<T extends Tensor> {
        private final CheckedBackend<T> backend;
        private final Kernels<T> kernels;

        public Checked(CheckedBackend<T> backend, Kernels<T> kernels) {
            this.backend = backend;
            this.kernels = kernels;
        }

        public void sumOfSquares(Tensor normSquared, Tensor g) {
            String op = "sumOfSquares";
            checkSumOfSquares(normSquared, g);
            T tn = backend.own(op, "normSquared", normSquared), tg = backend.own(op, "g", g);
            backend.alias().disjoint(op, "normSquared", tn, "g", tg);
            kernels.sumOfSquares(tn, tg);
        }

        public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, AdamWStep hyper) {
            String op = "adamw";
            checkAdamw(param, grad, m, v, gradScale, hyper);
            T tp = backend.own(op, "param", param), tg = backend.own(op, "grad", grad), tm = backend.own(op, "m", m);
            T tv = backend.own(op, "v", v), ts = backend.own(op, "gradScale", gradScale);
            backend.alias().outputs(op, new String[] {"param", "m", "v"}, array(tp, tm, tv),
                    new String[] {"grad", "gradScale"}, array(tg, ts));
            kernels.adamw(tp, tg, tm, tv, ts, hyper);
        }

        public void adamw8bit(Tensor param, Tensor grad, Tensor mCodes, Tensor mAbsMax, Tensor vCodes, Tensor vAbsMax,
                              Tensor gradScale, AdamWStep hyper) {
            String op = "adamw8bit";
            checkAdamw8bit(param, grad, mCodes, mAbsMax, vCodes, vAbsMax, gradScale, hyper,
                    Backend.ADAMW8BIT_BLOCK_SIZE);
            T tp = backend.own(op, "param", param), tg = backend.own(op, "grad", grad);
            T ts = backend.own(op, "gradScale", gradScale);
            T tmc = backend.own(op, "mCodes", mCodes), tma = backend.own(op, "mAbsMax", mAbsMax);
            T tvc = backend.own(op, "vCodes", vCodes), tva = backend.own(op, "vAbsMax", vAbsMax);
            backend.alias().outputs(op, new String[] {"param", "mCodes", "mAbsMax", "vCodes", "vAbsMax"},
                    array(tp, tmc, tma, tvc, tva), new String[] {"grad", "gradScale"}, array(tg, ts));
            kernels.adamw8bit(tp, tg, tmc, tma, tvc, tva, ts, hyper);
        }

        public void clipCoefficient(Tensor clip, Tensor normSquared, float maxNorm) {
            String op = "clipCoefficient";
            checkClipCoefficient(clip, normSquared);
            T tc = backend.own(op, "clip", clip), tn = backend.own(op, "normSquared", normSquared);
            backend.alias().sameOrDisjoint(op, "clip", tc, "normSquared", tn);
            kernels.clipCoefficient(tc, tn, maxNorm);
        }

        public void prodigyAccumulate(Tensor param, Tensor grad, Tensor p0, Tensor m, Tensor v, Tensor s,
                                      Tensor gradScale, Tensor state, ProdigyStep hyper) {
            String op = "prodigyAccumulate";
            checkProdigy(op, param, grad, p0, m, v, s, gradScale, state, hyper);
            T tp = backend.own(op, "param", param), tg = backend.own(op, "grad", grad), t0 = backend.own(op, "p0", p0);
            T tm = backend.own(op, "m", m), tv = backend.own(op, "v", v), ts = backend.own(op, "s", s);
            T tscale = backend.own(op, "gradScale", gradScale), tstate = backend.own(op, "state", state);
            backend.alias().outputs(op, new String[] {"p0", "m", "v", "s", "state"}, array(t0, tm, tv, ts, tstate),
                    new String[] {"param", "grad", "gradScale"}, array(tp, tg, tscale));
            kernels.prodigyAccumulate(tp, tg, t0, tm, tv, ts, tscale, tstate, hyper);
        }

        public void prodigyAdapt(Tensor state, ProdigyStep hyper) {
            checkProdigy("prodigyAdapt", null, null, null, null, null, null, null, state, hyper);
            kernels.prodigyAdapt(backend.own("prodigyAdapt", "state", state), hyper);
        }

        public void prodigyUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, Tensor state,
                                  ProdigyStep hyper) {
            String op = "prodigyUpdate";
            checkProdigy(op, param, grad, null, m, v, null, gradScale, state, hyper);
            T tp = backend.own(op, "param", param), tg = backend.own(op, "grad", grad), tm = backend.own(op, "m", m);
            T tv = backend.own(op, "v", v), tscale = backend.own(op, "gradScale", gradScale);
            T tstate = backend.own(op, "state", state);
            backend.alias().outputs(op, new String[] {"param"}, array(tp),
                    new String[] {"grad", "m", "v", "gradScale", "state"}, array(tg, tm, tv, tscale, tstate));
            kernels.prodigyUpdate(tp, tg, tm, tv, tscale, tstate, hyper);
        }

        public void adafactor(Tensor param, Tensor grad, Tensor m, Tensor row, Tensor col, Tensor v, Tensor gradScale,
                              AdafactorStep hyper) {
            String op = "adafactor";
            checkAdafactor(param, grad, m, row, col, v, gradScale, hyper);
            T tp = backend.own(op, "param", param), tg = backend.own(op, "grad", grad), tm = backend.own(op, "m", m);
            T tr = backend.own(op, "row", row), tc = backend.own(op, "col", col), tv = backend.own(op, "v", v);
            T tscale = backend.own(op, "gradScale", gradScale);
            backend.alias().outputs(op, new String[] {"param", "m", "row", "col", "v"}, array(tp, tm, tr, tc, tv),
                    new String[] {"grad", "gradScale"}, array(tg, tscale));
            kernels.adafactor(tp, tg, tm, tr, tc, tv, tscale, hyper);
        }

        private static long checkSumOfSquares(Tensor normSquared, Tensor g) {
            requireScalarF32("sumOfSquares", "normSquared", normSquared);
            requireActivation("sumOfSquares", "g", g);
            return g.numElements();
        }

        private static long checkAdamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale,
                                 AdamWStep hyper) {
            String op = "adamw";
            requireDType(op, "param", param, DType.F32);
            requireDType(op, "grad", grad, DType.F32);
            requireSameShape(op, "grad", grad, "param", param);
            requireDType(op, "m", m, DType.F32);
            requireSameShape(op, "m", m, "param", param);
            requireDType(op, "v", v, DType.F32);
            requireSameShape(op, "v", v, "param", param);
            requireScalarF32(op, "gradScale", gradScale);
            requireStep(op, hyper);
            return param.numElements();
        }

        /**
         * mCodes, vCodes (n) U8; mAbsMax, vAbsMax (ceil(n/blockSize)) F32; param, grad (n) F32.
         */
        private static long checkAdamw8bit(Tensor param, Tensor grad, Tensor mCodes, Tensor mAbsMax, Tensor vCodes,
                                     Tensor vAbsMax, Tensor gradScale, AdamWStep hyper, int blockSize) {
            String op = "adamw8bit";
            requireDType(op, "param", param, DType.F32);
            requireDType(op, "grad", grad, DType.F32);
            requireSameShape(op, "grad", grad, "param", param);
            long n = param.numElements();
            long blocks = (n + blockSize - 1) / blockSize;
            requireDType(op, "mCodes", mCodes, DType.U8);
            requireElements(op, "mCodes", mCodes, n);
            requireDType(op, "vCodes", vCodes, DType.U8);
            requireElements(op, "vCodes", vCodes, n);
            requireDType(op, "mAbsMax", mAbsMax, DType.F32);
            requireElements(op, "mAbsMax", mAbsMax, blocks);
            requireDType(op, "vAbsMax", vAbsMax, DType.F32);
            requireElements(op, "vAbsMax", vAbsMax, blocks);
            requireScalarF32(op, "gradScale", gradScale);
            requireStep(op, hyper);
            return n;
        }

        private static void requireStep(String op, AdamWStep hyper) {
            if (hyper == null) throw new IllegalArgumentException(op + ": hyper is null; got null, expected an AdamWStep");
            if (hyper.step() < 1) {
                throw new IllegalArgumentException(op + ": step is 1-based; got step=" + hyper.step() + ", expected >= 1");
            }
        }

        /** Prodigy's passes: the per-parameter tensors (any null is skipped) F32 of param's shape; state (8) F32. */
        private static long checkProdigy(String op, Tensor param, Tensor grad, Tensor p0, Tensor m, Tensor v, Tensor s,
                                   Tensor gradScale, Tensor state, ProdigyStep hyper) {
            if (hyper == null) throw new IllegalArgumentException(op + ": hyper is null; got null, expected a ProdigyStep");
            requireDType(op, "state", state, DType.F32);
            requireElements(op, "state", state, Backend.PRODIGY_STATE_SIZE);
            if (param == null) return 0;
            requireDType(op, "param", param, DType.F32);
            String[] names = {"grad", "p0", "m", "v", "s"};
            Tensor[] tensors = {grad, p0, m, v, s};
            for (int i = 0; i < names.length; i++) {
                if (tensors[i] == null) continue;
                requireDType(op, names[i], tensors[i], DType.F32);
                requireSameShape(op, names[i], tensors[i], "param", param);
            }
            requireScalarF32(op, "gradScale", gradScale);
            return param.numElements();
        }

        /** Adafactor: param, grad (n) or (R, C) F32; m like param or null; row (R), col (C) for 2-D, v like param for 1-D. */
        private static long checkAdafactor(Tensor param, Tensor grad, Tensor m, Tensor row, Tensor col, Tensor v, Tensor gradScale,
                                     AdafactorStep hyper) {
            String op = "adafactor";
            if (hyper == null) throw new IllegalArgumentException(op + ": hyper is null; got null, expected an AdafactorStep");
            if (hyper.step() < 1) {
                throw new IllegalArgumentException(op + ": step is 1-based; got step=" + hyper.step() + ", expected >= 1");
            }
            requireDType(op, "param", param, DType.F32);
            requireDType(op, "grad", grad, DType.F32);
            requireSameShape(op, "grad", grad, "param", param);
            if (m != null) {
                requireDType(op, "m", m, DType.F32);
                requireSameShape(op, "m", m, "param", param);
            }
            requireScalarF32(op, "gradScale", gradScale);
            int rank = param.shape().rank();
            if (rank == 2) {
                if (row == null || col == null || v != null) {
                    throw new IllegalArgumentException(op + ": a 2-D param has a factored second moment; got row=" + row + ", col="
                            + col + ", v=" + v + ", expected row (" + param.shape().dim(0) + "), col (" + param.shape().dim(1)
                            + ") and v null");
                }
                requireDType(op, "row", row, DType.F32);
                requireElements(op, "row", row, param.shape().dim(0));
                requireDType(op, "col", col, DType.F32);
                requireElements(op, "col", col, param.shape().dim(1));
            } else if (rank == 1) {
                if (v == null || row != null || col != null) {
                    throw new IllegalArgumentException(op + ": a 1-D param has a full second moment; got row=" + row + ", col="
                            + col + ", v=" + v + ", expected v " + param.shape() + " and row, col null");
                }
                requireDType(op, "v", v, DType.F32);
                requireSameShape(op, "v", v, "param", param);
            } else {
                throw new UnsupportedOperationException(op + ": param " + param.shape() + " has rank " + rank
                        + "; supported: 1-D and 2-D parameters (LoRA matrices)");
            }
            return param.numElements();
        }

        private static void checkClipCoefficient(Tensor clip, Tensor normSquared) {
            requireScalarF32("clipCoefficient", "clip", clip);
            requireScalarF32("clipCoefficient", "normSquared", normSquared);
        }
    }
}
