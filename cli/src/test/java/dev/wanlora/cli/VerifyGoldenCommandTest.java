package dev.wanlora.cli;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.wanlora.cli.CommandRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code wanlora verify-golden}: exit codes and lines. (The full golden run is WanDitGoldenTest in models.) */
class VerifyGoldenCommandTest {

    @TempDir
    Path tmp;

    @Test
    void aWrongReferenceFailsWithExitCode1() throws IOException {
        Path golden = Golden.dir("wan-tiny");
        Files.copy(golden.resolve("model.safetensors"), tmp.resolve("model.safetensors"));
        // fp32.safetensors with output.pred scaled by 1.001: relL2 1e-3, far above the 1e-5 bound.
        try (SafeTensors st = SafeTensors.open(golden.resolve("fp32.safetensors"))) {
            List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
            for (String key : st.keys()) {
                SafeTensors.TensorInfo info = st.info(key);
                if (key.equals("output.pred")) {
                    float[] v = st.floats(key);
                    for (int i = 0; i < v.length; i++) v[i] *= 1.001f;
                    entries.add(SafeTensorsWriter.Entry.ofFloats(key, info.dtype(), info.shape(), v));
                } else {
                    entries.add(new SafeTensorsWriter.Entry(key, info.dtype(), info.shape(), st.data(key)));
                }
            }
            SafeTensorsWriter.write(tmp.resolve("fp32.safetensors"), entries, Map.of());
        }
        CommandRun r = run("verify-golden", tmp.toString());
        assertEquals(1, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("fp32   output.pred ") && l.endsWith("FAIL")), r.out());
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("fp32   output.loss ") && l.endsWith("OK")), r.out());
        assertTrue(r.out().contains(" compared, 1 failed, "), r.out());
    }

    @Test
    void aVaeFolderRunsTheVaeAndAWrongReferenceFails() throws IOException {
        Path golden = Golden.dir("vae-tiny");
        Files.copy(golden.resolve("vae.safetensors"), tmp.resolve("vae.safetensors"));
        // encode.safetensors with output.mu scaled by 1.001: relL2 1e-3, far above the 1e-5 bound; encoder.out still OK.
        try (SafeTensors st = SafeTensors.open(golden.resolve("encode.safetensors"))) {
            List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
            for (String key : st.keys()) {
                SafeTensors.TensorInfo info = st.info(key);
                if (key.equals("output.mu")) {
                    float[] v = st.floats(key);
                    for (int i = 0; i < v.length; i++) v[i] *= 1.001f;
                    entries.add(SafeTensorsWriter.Entry.ofFloats(key, info.dtype(), info.shape(), v));
                } else {
                    entries.add(new SafeTensorsWriter.Entry(key, info.dtype(), info.shape(), st.data(key)));
                }
            }
            SafeTensorsWriter.write(tmp.resolve("encode.safetensors"), entries, Map.of());
        }
        CommandRun r = run("verify-golden", tmp.toString());
        assertEquals(1, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("): VAE WanVaeConfig[dim=7, zDim=16]"), r.out());
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("fp32 encode.safetensors output.mu ") && l.endsWith("FAIL")), r.out());
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("fp32 encode.safetensors encoder.out ") && l.endsWith("OK")), r.out());
        assertTrue(r.out().contains("2 compared, 1 failed, "), r.out());
    }

    @Test
    void userMistakesAreOneLine() {
        CommandRun noModel = run("verify-golden", tmp.toString());
        assertEquals(Main.USER_ERROR, noModel.exitCode());
        assertEquals("wanlora verify-golden: " + tmp + ": no model.safetensors; expected a folder in the golden format of"
                + " testdata/golden/README.md (model.safetensors plus fp32/bf16/fp8/train.safetensors)\n", noModel.err());
        CommandRun badBackend = run("verify-golden", tmp.toString(), "--backend", "tpu");
        assertEquals(Main.USER_ERROR, badBackend.exitCode());
        assertEquals("wanlora verify-golden: --backend tpu is not known; supported: cpu, cuda, cuda:N\n", badBackend.err());
    }

    @Test
    void aSamplingFolderRunsTheSolverAndLoopComparisons() throws IOException {
        CommandRun all = run("verify-golden", Golden.dir("sampling-tiny").toString());
        assertEquals(0, all.exitCode(), all.out() + all.err());
        assertTrue(all.out().lines().anyMatch(l -> l.startsWith("uni32  s20_fs14p5.prev_sample") && l.endsWith("OK")), all.out());
        assertTrue(all.out().lines().anyMatch(l -> l.startsWith("loop32 final ") && l.endsWith("OK")), all.out());

        Files.copy(Golden.dir("sampling-tiny").resolve("loop.safetensors"), tmp.resolve("loop.safetensors"));
        CommandRun noDit = run("verify-golden", tmp.toString());
        assertEquals(Main.USER_ERROR, noDit.exitCode());
        assertTrue(noDit.err().startsWith("wanlora verify-golden: " + tmp.resolve("loop.safetensors") + ": the loop needs a DiT;"),
                noDit.err());
        assertEquals(1, noDit.err().lines().count(), noDit.err());
    }
}
