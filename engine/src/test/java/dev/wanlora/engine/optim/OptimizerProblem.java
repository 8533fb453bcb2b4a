package dev.wanlora.engine.optim;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A separable quadratic ½Σ a_i (x_i − c_i)² over LoRA-like matrices, for optimizer tests: {@link #gradient()} writes
 * grad = a·(x − c) into each parameter (so every step depends on the last one) and returns the loss.
 */
final class OptimizerProblem {
    final Backend backend;
    final Shape[] shapes;
    final float[][] a, c;
    final List<TrainableParameter> params = new ArrayList<>();

    OptimizerProblem(Backend backend, long seed, Shape... shapes) {
        this.backend = backend;
        this.shapes = shapes;
        a = new float[shapes.length][];
        c = new float[shapes.length][];
        var rng = new SplittableRandom(seed);
        for (int k = 0; k < shapes.length; k++) {
            int n = (int) shapes[k].numElements();
            a[k] = new float[n];
            c[k] = new float[n];
            float[] x0 = new float[n];
            for (int i = 0; i < n; i++) {
                a[k][i] = (float) (0.5 + 1.5 * rng.nextDouble());
                c[k][i] = (float) (rng.nextGaussian() * 0.1);
                x0[i] = k % 2 == 0 ? (float) (rng.nextGaussian() * 0.05) : 0f; // LoRA: down random, up zero
            }
            params.add(new TrainableParameter("p" + k, backend.fromFloats(DType.F32, shapes[k], x0),
                    backend.allocate(DType.F32, shapes[k])));
        }
    }

    double gradient() {
        double loss = 0;
        for (int k = 0; k < shapes.length; k++) {
            float[] g = gradientOf(k, backend.toFloats(params.get(k).value()));
            for (int i = 0; i < g.length; i++) loss += 0.5 * g[i] * g[i] / a[k][i];
            try (Tensor t = backend.fromFloats(DType.F32, shapes[k], g)) {
                backend.copy(params.get(k).grad(), t);
            }
        }
        return loss;
    }

    /** a·(x − c) in float, as the test oracles compute it for their own x. */
    float[] gradientOf(int k, float[] x) {
        float[] g = new float[x.length];
        for (int i = 0; i < x.length; i++) g[i] = a[k][i] * (x[i] - c[k][i]);
        return g;
    }

    float[] initial(int k) {
        return backend.toFloats(params.get(k).value());
    }

    float[] values() {
        int total = 0;
        for (Shape s : shapes) total += (int) s.numElements();
        float[] all = new float[total];
        int at = 0;
        for (TrainableParameter p : params) {
            float[] v = backend.toFloats(p.value());
            System.arraycopy(v, 0, all, at, v.length);
            at += v.length;
        }
        return all;
    }

    void close() {
        for (TrainableParameter p : params) {
            p.value().close();
            p.grad().close();
        }
    }
}
