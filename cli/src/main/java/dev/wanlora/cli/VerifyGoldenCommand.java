package dev.wanlora.cli;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.engine.Backends;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.models.golden.GoldenVerifier;
import dev.wanlora.models.sampling.SamplingGoldenVerifier;
import dev.wanlora.models.umt5.UmT5GoldenVerifier;
import dev.wanlora.models.wan.vae.VaeGoldenVerifier;
import dev.wanlora.pipeline.UserError;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.function.Consumer;

/**
 * {@code wanlora verify-golden DIR [--backend cpu|cuda]}: runs our Wan DiT on a folder in the golden format
 * (testdata/golden/README.md), our VAE on a folder with {@code vae.safetensors} (testdata/golden/vae-tiny), our
 * sampling solvers and CFG loop on a sampling folder (unipc.safetensors, loop.safetensors), and our umT5 encoder and
 * tokenizer on a folder with t5.safetensors (a sampling folder may hold both: every comparison runs), and prints one line
 * per compared tensor (relL2, max abs, cosine, bound, OK/FAIL); exit code 1 when any comparison fails.
 */
@Command(name = "verify-golden", mixinStandardHelpOptions = true,
        description = "Compare our Wan DiT (forward, LoRA gradients, fp8 quantizer, AdamW steps), VAE (decode, encode,"
                + " every stage), sampling solvers and CFG loop, or umT5 encoder and tokenizer with musubi's golden tensors.")
final class VerifyGoldenCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "DIR", description = "Folder with model.safetensors and fp32/bf16/fp8/train.safetensors,"
            + " with vae.safetensors and decode/encode.safetensors, or a sampling folder (unipc.safetensors, loop.safetensors;"
            + " the loop's DiT: dit.safetensors there or ../wan-tiny/model.safetensors; t5.safetensors: the umT5 cases too).")
    Path dir;

    @Option(names = "--backend", paramLabel = "NAME", defaultValue = "cpu",
            description = "cpu: float32 math vs the float32 goldens (relL2 <= 1e-5); cuda or cuda:N: musubi's bf16 path"
                    + " vs the same goldens (pred relL2 <= 8e-3, gradient cosine >= 0.9995; VAE relL2 <= 3e-2, mu 2e-2)."
                    + " Default: ${DEFAULT-VALUE}.")
    String backendName;

    @Option(names = "--fp8_compute", description = "Also run the DiT golden's fp8 step with the block Linears' forward GEMMs"
            + " in per-tensor fp8 (train's opt-in --fp8_compute) and report its distance to the fp8 and float32 goldens"
            + " (reported, not judged).")
    boolean fp8Compute;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        long start = System.nanoTime();
        try (Backend backend = Backends.create(backendName)) {
            GoldenVerifier.Mode mode = backendName.equals("cpu")
                    ? GoldenVerifier.Mode.FP32_REFERENCE : GoldenVerifier.Mode.BF16_DEVICE;
            Consumer<GoldenVerifier.Comparison> print = c -> {
                out.println(c.describe());
                out.flush();
            };
            List<GoldenVerifier.Comparison> lines = new ArrayList<>();
            long umt5Compared = 0, umt5Failed = 0;
            boolean isUmT5 = UmT5GoldenVerifier.recognises(dir) && !Files.isRegularFile(dir.resolve("model.safetensors"));
            if (SamplingGoldenVerifier.isSamplingFolder(dir)) {
                SamplingGoldenVerifier sampling = new SamplingGoldenVerifier(backend, dir);
                out.println("verify-golden " + dir + " on " + backend.name() + " (" + mode + "): solvers and the CFG"
                        + " loop (DiT " + sampling.loopDit() + ")");
                lines.addAll(sampling.run(mode, print));
            } else if (VaeGoldenVerifier.recognises(dir)) {
                VaeGoldenVerifier verifier = new VaeGoldenVerifier(backend, dir);
                out.println("verify-golden " + dir + " on " + backend.name() + " (" + mode + "): VAE " + verifier.config());
                lines.addAll(verifier.run(mode, print));
            } else if (!isUmT5) {
                GoldenVerifier verifier = new GoldenVerifier(backend, dir);
                out.println("verify-golden " + dir + " on " + backend.name() + " (" + mode + "): " + verifier.config());
                lines.addAll(verifier.run(mode, print));
                if (fp8Compute) {
                    out.println("--fp8_compute: the fp8 step with per-tensor fp8 GEMMs (fp8c: vs fp8.safetensors;"
                            + " fp8c~torch: vs fp32.safetensors), reported");
                    lines.addAll(verifier.runFp8Compute(mode, print));
                }
            }
            if (isUmT5) {
                long[] umt5 = UmT5GoldenRun.run(backend, dir, backendName.equals("cpu"), out);
                umt5Compared = umt5[0];
                umt5Failed = umt5[1];
            }
            long failed = lines.stream().filter(c -> !c.passed()).count() + umt5Failed;
            out.printf("%d compared, %d failed, %.1f s%n", lines.size() + umt5Compared, failed, (System.nanoTime() - start) / 1e9);
            return failed == 0 ? 0 : 1;
        } catch (IllegalArgumentException | UnsupportedOperationException e) {
            throw new UserError(e.getMessage(), e);
        }
    }
}
