package dev.wanlora.cli;

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

    @Test
    void realModelFilesStopWithOneLine() throws Exception {
        Path t5 = Files.writeString(tmp.resolve("t5.pth"), "x");
        Path vae = Files.writeString(tmp.resolve("vae.pth"), "x");
        CommandRun r = run("sample", "--dit", Golden.dir("wan-tiny").resolve("model.safetensors").toString(),
                "--t5", t5.toString(), "--vae", vae.toString(), "--prompt", "a cat --w 32 --h 32", "--output_dir",
                tmp.toString(), "--backend", "cpu");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertEquals("wanlora sample: --t5 " + t5 + ": this build of wanlora has no umT5 text encoder yet, so it cannot"
                + " make samples; run without --sample_prompts (train) or wait for the build with umT5 and the VAE\n", r.err());
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
