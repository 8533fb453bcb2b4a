package dev.wanlora.models.umt5;

import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.engine.tensor.DType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

/**
 * umT5 layer streaming on the GPU (pinned host images, the copy stream and its events): streamed == resident bit for
 * bit in bf16, plain and --fp8_t5, as UmT5StreamingTest proves on the CPU. Run on a GPU machine:
 * {@code mvn -pl models -am test -Dtest=UmT5StreamingCudaTest}.
 */
@RequiresCuda
class UmT5StreamingCudaTest {

    @TempDir
    Path tmp;

    @Test
    void streamedEqualsResidentOnCuda() {
        UmT5StreamingTest.assertStreamedEqualsResident(CudaTests.backend(), DType.BF16, tmp);
    }
}
