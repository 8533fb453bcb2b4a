package dev.wanlora.cli;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.umt5.UmT5GoldenVerifier;
import dev.wanlora.models.golden.GoldenVerifier.Comparison;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;

/**
 * verify-golden's umT5 part, for a folder with {@code t5.safetensors} (sampling-tiny's format): the encoder from every
 * weight file, the bucket tables and the tokenizer cases; float32 on the CPU, musubi's bf16 path elsewhere.
 */
final class UmT5GoldenRun {
    private UmT5GoldenRun() {}

    /** Prints one line per comparison; returns {compared, failed}. */
    static long[] run(Backend backend, Path dir, boolean isCpu, PrintWriter out) {
        UmT5GoldenVerifier verifier = new UmT5GoldenVerifier(backend, dir, isCpu ? DType.F32 : DType.BF16);
        out.println("verify-golden " + dir + " on " + backend.name() + " (umT5 " + (isCpu ? "FP32_REFERENCE" : "BF16_DEVICE")
                + "): " + verifier.config());
        List<Comparison> lines = verifier.run(c -> {
            out.println(c.describe());
            out.flush();
        });
        return new long[] {lines.size(), lines.stream().filter(c -> !c.passed()).count()};
    }
}
