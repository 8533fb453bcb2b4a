package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.OpChecks.AttentionDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;

/** Row gathers: token embeddings and T5's relative-position bias. Values are copied, rounded to out's dtype on store. */
final class CpuEmbedding {
    private CpuEmbedding() {}

    /** out[r, :] = table[ids[r], :]; see Backend#embedding. Throws for an id that is not an integer in [0, V). */
    static void embedding(CpuTensor out, CpuTensor table, CpuTensor ids, MatrixDims d) {
        int cols = (int) d.cols();
        long vocab = table.shape().dim(0);
        for (int r = 0; r < d.rows(); r++) index("embedding", "ids", ids.get(r), r, vocab);
        CpuRows.forEach(d.rows(), cols, r -> {
            int from = (int) ids.get(r) * cols;
            for (int c = 0; c < cols; c++) out.store(r * cols + c, table.get(from + c));
        });
    }

    /** out[h, i, j] = table[buckets[j − i + Lq − 1], h]; see Backend#relativePositionBias. */
    static void relativePositionBias(CpuTensor out, CpuTensor table, CpuTensor buckets, AttentionDims d) {
        int lq = (int) d.queries(), lk = (int) d.keys(), heads = d.heads();
        long numBuckets = table.shape().dim(0);
        for (int r = 0; r < lq + lk - 1; r++) index("relativePositionBias", "buckets", buckets.get(r), r, numBuckets);
        CpuRows.forEach((long) heads * lq, lk, row -> {
            int h = row / lq, i = row % lq;
            for (int j = 0; j < lk; j++) {
                int bucket = (int) buckets.get(j - i + lq - 1);
                out.store(row * lk + j, table.get(bucket * heads + h));
            }
        });
    }

    private static void index(String op, String name, float v, int at, long count) {
        if (!(v >= 0 && v < count && v == Math.rint(v))) {
            throw new IllegalArgumentException(op + ": " + name + "[" + at + "] is not an index; got " + v
                    + ", expected an integer in [0, " + count + ")");
        }
    }
}
