package dev.wanlora.cli;

import dev.wanlora.pipeline.sample.RealSampleModelsTest;
import dev.wanlora.engine.testing.Golden;
import org.jcodec.api.FrameGrab;
import org.jcodec.common.io.NIOUtils;
import org.jcodec.common.model.Picture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static dev.wanlora.cli.CommandRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code wanlora sample} end to end on the CPU with wan-tiny's DiT (fp8-scaled, one block streamed) and the demo's
 * stand-in text encoder and decoder.
 */
class SampleCommandTest {

    @TempDir
    Path tmp;

    @Test
    void writesAPlayableVideoAndAPng() throws Exception {
        Path prompts = Files.writeString(tmp.resolve("p.txt"), """
                # two samples: a 5-frame video (2 latent frames) and a still image
                a fox in the snow --w 64 --h 48 --f 5 --s 3 --d 7
                a lake --w 32 --h 32 --s 2 --d 8 --l 1.0
                """);
        CommandRun r = run("sample", "--dit", Golden.dir("wan-tiny").resolve("model.safetensors").toString(),
                "--prompts", prompts.toString(), "--output_dir", tmp.toString(), "--output_name", "t",
                "--stand_in_models", "--fp8_base", "--fp8_scaled", "--blocks_to_swap", "1", "--backend", "cpu");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("random stand-ins replace umT5 and the VAE"), r.out());
        assertTrue(r.out().contains("sample 01/02 [####################] 3/3 steps"), r.out());
        List<Path> files;
        try (Stream<Path> s = Files.list(tmp.resolve("sample"))) {
            files = s.sorted().toList();
        }
        assertEquals(2, files.size(), files.toString());
        Path mp4 = files.stream().filter(f -> f.toString().endsWith(".mp4")).findFirst().orElseThrow();
        Path png = files.stream().filter(f -> f.toString().endsWith("_000.png")).findFirst().orElseThrow();
        assertTrue(mp4.getFileName().toString().matches("t_00_\\d{14}_7\\.mp4"), mp4.toString());
        assertTrue(png.getFileName().toString().matches("t_01_\\d{14}_8_000\\.png"), png.toString());
        try (var ch = NIOUtils.readableChannel(mp4.toFile())) {
            FrameGrab grab = FrameGrab.createFrameGrab(ch);
            for (int f = 0; f < 5; f++) {
                Picture p = grab.getNativeFrame();
                assertNotNull(p, "frame " + f);
                assertEquals(64, p.getCroppedWidth());
                assertEquals(48, p.getCroppedHeight());
            }
        }
        var image = ImageIO.read(png.toFile());
        assertEquals(32, image.getWidth());
        assertEquals(32, image.getHeight());
    }

    /**
     * The real wiring end to end: wan-tiny's DiT, the golden tiny umT5 (.pth, widened to the DiT's 4096-wide text with
     * zeros: {@link RealSampleModelsTest#widenedT5}) with its tokenizer, and the golden tiny Wan VAE (z_dim 16, so it
     * decodes the DiT's 16-channel latents): an mp4 of 4·(2 − 1) + 1 = 5 frames at 8× the latent size, read back.
     */
    @Test
    void realUmT5AndVaeMakeAVideo() throws Exception {
        Path t5 = RealSampleModelsTest.widenedT5(tmp);
        Path tokenizer = Golden.dir("sampling-tiny").resolve("tokenizer");
        CommandRun r = run("sample", "--dit", Golden.dir("wan-tiny").resolve("model.safetensors").toString(),
                "--t5", t5.toString(), "--t5_tokenizer", tokenizer.toString(),
                "--vae", Golden.dir("vae-tiny").resolve("vae.safetensors").toString(),
                "--prompt", "a fox in the snow --w 32 --h 32 --f 5 --s 2 --d 7 --l 3.0", "--output_dir", tmp.toString(),
                "--output_name", "r", "--backend", "cpu");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("encoded by umT5 (2 layers) from t5-wide.safetensors"), r.out());
        assertTrue(!r.out().contains("stand-in"), r.out());
        List<Path> files;
        try (Stream<Path> s = Files.list(tmp.resolve("sample"))) {
            files = s.sorted().toList();
        }
        assertEquals(1, files.size(), files.toString());
        assertTrue(files.getFirst().getFileName().toString().matches("r_00_\\d{14}_7\\.mp4"), files.toString());
        try (var ch = NIOUtils.readableChannel(files.getFirst().toFile())) {
            FrameGrab grab = FrameGrab.createFrameGrab(ch);
            for (int f = 0; f < 5; f++) {
                Picture p = grab.getNativeFrame();
                assertNotNull(p, "frame " + f);
                assertEquals(32, p.getCroppedWidth());
                assertEquals(32, p.getCroppedHeight());
            }
        }
    }

    @Test
    void wrongModelFilesStopWithOneLine() throws Exception {
        Path dit = Golden.dir("wan-tiny").resolve("model.safetensors");
        Path t5 = Golden.dir("sampling-tiny").resolve("t5.pth");
        CommandRun r = run("sample", "--dit", dit.toString(), "--t5", t5.toString(), "--t5_tokenizer",
                Golden.dir("sampling-tiny").resolve("tokenizer").toString(), "--vae", dit.toString(),
                "--prompt", "a cat --w 32 --h 32", "--output_dir", tmp.toString(), "--backend", "cpu");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().startsWith("wanlora sample: --vae " + dit + ": no tensor encoder.conv1.weight; expected a Wan 2.1 VAE"), r.err());

        Path lone = Files.copy(t5, tmp.resolve("t5.pth"));
        r = run("sample", "--dit", dit.toString(), "--t5", lone.toString(),
                "--vae", Golden.dir("vae-tiny").resolve("vae.safetensors").toString(),
                "--prompt", "a cat --w 32 --h 32", "--output_dir", tmp.toString(), "--backend", "cpu");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().startsWith("wanlora sample: no umT5 tokenizer.json found (looked beside the T5 checkpoint"), r.err());
        assertTrue(Files.notExists(tmp.resolve("sample")));
    }

    @Test
    void aScheduleMusubiCannotRunStopsBeforeAnyWork() {
        CommandRun r = run("sample", "--dit", Golden.dir("wan-tiny").resolve("model.safetensors").toString(),
                "--prompt", "a cat --w 32 --h 32 --s 80", "--output_dir", tmp.toString(), "--stand_in_models",
                "--backend", "cpu");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertTrue(r.err().startsWith("wanlora sample: --prompt: prompt 1: UniPC: 80 steps at flow shift 14.5 give two equal"
                + " first timesteps (999)"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }
}
