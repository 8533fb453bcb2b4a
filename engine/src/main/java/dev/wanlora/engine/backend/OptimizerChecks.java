package dev.wanlora.engine.backend;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;

import static dev.wanlora.engine.backend.OpChecks.requireActivation;
import static dev.wanlora.engine.backend.OpChecks.requireDType;
import static dev.wanlora.engine.backend.OpChecks.requireElements;
import static dev.wanlora.engine.backend.OpChecks.requireSameShape;
import static dev.wanlora.engine.backend.OpChecks.requireScalarF32;

/**
 * {@link OpChecks} of the optimizer ops (gradient norm, clipping, AdamW, 8-bit AdamW, Prodigy, Adafactor): the same
 * building blocks and message template, in a file of their own so that OpChecks stays readable.
 */
public final class OptimizerChecks {
    private OptimizerChecks() {}

    public static long sumOfSquares(Tensor normSquared, Tensor g) {
        requireScalarF32("sumOfSquares", "normSquared", normSquared);
        requireActivation("sumOfSquares", "g", g);
        return g.numElements();
    }

    public static long adamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale,
                             Backend.AdamWStep hyper) {
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
    public static long adamw8bit(Tensor param, Tensor grad, Tensor mCodes, Tensor mAbsMax, Tensor vCodes,
                                 Tensor vAbsMax, Tensor gradScale, Backend.AdamWStep hyper, int blockSize) {
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

    private static void requireStep(String op, Backend.AdamWStep hyper) {
        if (hyper == null) throw new IllegalArgumentException(op + ": hyper is null; got null, expected an AdamWStep");
        if (hyper.step() < 1) {
            throw new IllegalArgumentException(op + ": step is 1-based; got step=" + hyper.step() + ", expected >= 1");
        }
    }

    /** Prodigy's passes: the per-parameter tensors (any null is skipped) F32 of param's shape; state (8) F32. */
    public static long prodigy(String op, Tensor param, Tensor grad, Tensor p0, Tensor m, Tensor v, Tensor s,
                               Tensor gradScale, Tensor state, Backend.ProdigyStep hyper) {
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
    public static long adafactor(Tensor param, Tensor grad, Tensor m, Tensor row, Tensor col, Tensor v, Tensor gradScale,
                                 Backend.AdafactorStep hyper) {
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

    public static void clipCoefficient(Tensor clip, Tensor normSquared) {
        requireScalarF32("clipCoefficient", "clip", clip);
        requireScalarF32("clipCoefficient", "normSquared", normSquared);
    }
}
