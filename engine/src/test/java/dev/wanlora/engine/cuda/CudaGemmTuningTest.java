package dev.wanlora.engine.cuda;

import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;
import static org.junit.jupiter.api.Assertions.*;

/**
 * GEMM algorithm choice (CudaGemm's timing of cuBLASLt's candidates): the result of the call that timed them is
 * still right — for beta = 0 (timed in place in c) and beta ≠ 0 (timed into a temporary, c kept) — with the GEMM
 * parity bounds of {@link CudaGemmParityTest}; a second backend in the same process takes the same algorithm from the
 * cache, so its results are bit-identical (what a resume on the same machine relies on); and the report names every
 * shape with how its algorithm was chosen.
 */
@RequiresCuda
class CudaGemmTuningTest {

    @Test
    void timedCallsGiveTheRightResultAndASecondBackendTheSameBits() {
        int m = 512, k = 1024, n = 1536; // 3 GFLOP-scale work per call: several candidates exist on every card
        Pair a = random(BF16, Shape.of(m, k), 51, 1), w = random(BF16, Shape.of(n, k), 52, 0.03);
        Pair y = output(BF16, Shape.of(m, n));
        CPU.gemm(y.cpu(), a.cpu(), false, w.cpu(), true, 1, 0, null);
        cuda().gemm(y.cuda(), a.cuda(), false, w.cuda(), true, 1, 0, null);
        check(label("gemmNT tuned, beta 0", BF16, "a", a.shape()), y);

        // beta ≠ 0 with an F32 output (a LoRA gradient's accumulation): timing must leave c as it was.
        Pair g = random(F32, Shape.of(k, n), 53, 1), dy = random(BF16, Shape.of(m, n), 54, 1);
        CPU.gemm(g.cpu(), a.cpu(), true, dy.cpu(), false, 0.5f, 1, null);
        cuda().gemm(g.cuda(), a.cuda(), true, dy.cuda(), false, 0.5f, 1, null);
        check(label("gemmTN tuned, beta 1", F32, "a", a.shape()), g);

        float[] first = cuda().toFloats(y.cuda());
        try (CudaBackend second = CudaBackend.open(cuda().context().ordinal())) {
            Tensor a2 = second.fromFloats(BF16, a.shape(), CPU.toFloats(a.cpu()));
            Tensor w2 = second.fromFloats(BF16, w.shape(), CPU.toFloats(w.cpu()));
            Tensor y2 = second.allocate(BF16, y.shape());
            second.gemm(y2, a2, false, w2, true, 1, 0, null);
            float[] again = second.toFloats(y2);
            int differ = 0;
            for (int i = 0; i < first.length; i++) if (Float.floatToIntBits(first[i]) != Float.floatToIntBits(again[i])) differ++;
            System.out.println("gemm tuned on a second backend: " + differ + " of " + first.length + " elements differ"
                    + (differ == 0 ? " OK" : " FAIL"));
            List<String> report = second.gemmAlgorithms();
            report.forEach(line -> System.out.println("  second backend: " + line));
            assertEquals(0, differ, "a second backend in the same process must run the same algorithm");
            if (CudaGemm.IS_TUNING) {
                assertTrue(report.getFirst().contains("from the cache") || report.getFirst().contains("only candidate"),
                        report.getFirst());
            }
            a2.close();
            w2.close();
            y2.close();
        }
        System.out.println(cuda().gemmTuning());
        List<String> report = cuda().gemmAlgorithms();
        report.forEach(line -> System.out.println("  " + line));
        assertTrue(report.stream().anyMatch(l -> l.startsWith("m512 n1536 k1024 NT BF16->BF16: ")), report.toString());
        assertTrue(report.stream().anyMatch(l -> l.startsWith("m1024 n1536 k512 TN BF16->F32: ")), report.toString());
        closeAll(a, w, y, g, dy);
    }
}
