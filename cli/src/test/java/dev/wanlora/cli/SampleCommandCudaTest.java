package dev.wanlora.cli;

import dev.wanlora.pipeline.sample.RealSampleModelsTest;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.engine.testing.Golden;
import org.jcodec.api.FrameGrab;
import org.jcodec.common.io.NIOUtils;
import org.jcodec.common.model.Picture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static dev.wanlora.cli.CommandRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code wanlora sample --backend cuda} with the real wiring: wan-tiny's bf16 DiT, the golden tiny umT5 (widened to
 * 4096, bf16 on the GPU, then with --fp8_t5) and the golden tiny Wan VAE (bf16 on the GPU). The numerics of each model
 * on CUDA are held by UmT5GoldenCudaTest and WanVaeCudaTest; this proves the wiring: loads, dtypes, encode → free →
 * DiT → decode → mp4.
 */
@RequiresCuda
class SampleCommandCudaTest {

    @TempDir
    Path tmp;

    @Test
    void realUmT5AndVaeMakeAVideoOnTheGpu() throws Exception {
        Path t5 = RealSampleModelsTest.widenedT5(tmp);
        for (boolean fp8 : new boolean[] {false, true}) {
            Path out = Files.createDirectories(tmp.resolve(fp8 ? "fp8" : "bf16"));
            List<String> args = new java.util.ArrayList<>(List.of("sample", "--dit",
                    Golden.dir("wan-tiny").resolve("model.safetensors").toString(), "--t5", t5.toString(),
                    "--t5_tokenizer", Golden.dir("sampling-tiny").resolve("tokenizer").toString(),
                    "--vae", Golden.dir("vae-tiny").resolve("vae.safetensors").toString(),
                    "--prompt", "a fox in the snow --w 64 --h 48 --f 5 --s 3 --d 7 --l 3.0", "--output_dir", out.toString(),
                    "--output_name", "g", "--backend", "cuda"));
            if (fp8) args.add("--fp8_t5");
            CommandRun r = run(args.toArray(String[]::new));
            assertEquals(0, r.exitCode(), r.out() + r.err());
            assertTrue(r.out().contains("encoded by umT5 (2 layers" + (fp8 ? ", fp8" : "") + ") from t5-wide.safetensors"), r.out());
            List<Path> files;
            try (Stream<Path> s = Files.list(out.resolve("sample"))) {
                files = s.toList();
            }
            assertEquals(1, files.size(), files.toString());
            try (var ch = NIOUtils.readableChannel(files.getFirst().toFile())) {
                FrameGrab grab = FrameGrab.createFrameGrab(ch);
                for (int f = 0; f < 5; f++) {
                    Picture p = grab.getNativeFrame();
                    assertNotNull(p, "frame " + f);
                    assertEquals(64, p.getCroppedWidth());
                    assertEquals(48, p.getCroppedHeight());
                }
            }
        }
    }
}
