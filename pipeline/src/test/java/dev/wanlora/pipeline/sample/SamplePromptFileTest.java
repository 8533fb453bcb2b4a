package dev.wanlora.pipeline.sample;

import dev.wanlora.pipeline.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** musubi's sample prompt syntax (spec §10): defaults, rounding, the three file formats, and one-line errors. */
class SamplePromptFileTest {

    @TempDir
    Path dir;

    @Test
    void txtLinesWithOptionsAndDefaults() throws IOException {
        Path f = Files.writeString(dir.resolve("p.txt"), """
                # comment
                  # indented: a prompt in musubi (only a raw first '#' makes a comment)
                a cat on a sofa --w 836 --h 480 --f 83 --d 42 --s 2000 --fs 5.0 --l 6 --n blurry, ugly --g 3.5
                a dog
                """);
        List<SamplePrompt> p = SamplePromptFile.read(f);
        assertEquals(3, p.size());
        assertEquals("# indented: a prompt in musubi (only a raw first '#' makes a comment)", p.get(0).prompt());
        p = p.subList(1, 3).stream().map(x -> new SamplePrompt(x.index() - 1, x.prompt(), x.width(), x.height(),
                x.frameCount(), x.seed(), x.sampleSteps(), x.discreteFlowShift(), x.cfgScale(), x.negativePrompt())).toList();
        // 836 → 832 (down to a multiple of 8, as musubi); 83 frames → 81 (4n+1); steps clamped to 1000
        assertEquals(new SamplePrompt(0, "a cat on a sofa", 832, 480, 81, 42L, 1000, 5.0, 6.0, "blurry, ugly"), p.get(0));
        // musubi's defaults: 256×256, 1 frame, 20 steps, shift 14.5, CFG 5.0, Wan's negative prompt, random seed
        assertEquals(new SamplePrompt(1, "a dog", 256, 256, 1, null, 20, 14.5, 5.0, null), p.get(1));
        assertEquals(SamplePrompt.WAN_NEGATIVE_PROMPT, p.get(1).negativePromptOrDefault());
        assertEquals("blurry, ugly", p.get(0).negativePromptOrDefault());
        assertArrayEquals(new long[] {16, 21, 60, 104}, p.get(0).latentShape());
    }

    @Test
    void tomlAndJson() throws IOException {
        Path toml = Files.writeString(dir.resolve("p.toml"), """
                [prompt]
                height = 320
                sample_steps = 10
                [[prompt.subset]]
                prompt = "first"
                width = 512
                [[prompt.subset]]
                prompt = "second"
                width = 640
                frame_count = 17
                """);
        List<SamplePrompt> t = SamplePromptFile.read(toml);
        assertEquals(new SamplePrompt(0, "first", 512, 320, 1, null, 10, 14.5, 5.0, null), t.get(0));
        assertEquals(new SamplePrompt(1, "second", 640, 320, 17, null, 10, 14.5, 5.0, null), t.get(1));
        Path clash = Files.writeString(dir.resolve("c.toml"), """
                [prompt]
                width = 512
                [[prompt.subset]]
                prompt = "p"
                width = 640
                """);
        UserError e = assertThrows(UserError.class, () -> SamplePromptFile.read(clash));
        assertTrue(e.getMessage().contains("sets 'width', which [prompt] already sets"), e.getMessage());

        Path json = Files.writeString(dir.resolve("p.json"), """
                ["a line --w 512 --d 1", {"prompt": "an object", "seed": 5, "cfg_scale": 3.5}]
                """);
        List<SamplePrompt> j = SamplePromptFile.read(json);
        assertEquals(512, j.get(0).width());
        assertEquals(1L, j.get(0).seed());
        assertEquals(5L, j.get(1).seed());
        assertEquals(3.5, j.get(1).cfgScale());
        assertNull(j.get(1).negativePrompt());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
            "a cat --w abc          | p.txt line 1: --w abc is not an integer",
            "a cat --wdth 512       | p.txt line 1: unknown option --wdth; known: --w --h --f --d --s --fs --l --n --g",
            "a cat --h 200          | p.txt line 1: height (--h) 200 is not a multiple of 16 in 16..8192 (latent patches span 16 pixels); use 192 or 208",
            "a cat --i start.png    | p.txt line 1: option --i is for image-to-video, control or one-frame models",
            "' --w 512'             | p.txt line 1: the prompt text is empty",
            "a cat --fs 0           | p.txt line 1: flow shift (--fs) 0.0 must be positive",
            "a cat --w              | p.txt line 1: option --w has no value",
    })
    void badLinesEndInOneLine(String line, String expected) throws IOException {
        Path f = Files.writeString(dir.resolve("p.txt"), line + "\n");
        UserError e = assertThrows(UserError.class, () -> SamplePromptFile.read(f));
        assertTrue(e.getMessage().startsWith(dir.resolve(expected.substring(0, expected.indexOf(':'))) + expected.substring(expected.indexOf(':'))),
                e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
    }

    @Test
    void emptyAndUnknownFormats() throws IOException {
        Path empty = Files.writeString(dir.resolve("e.txt"), "# only a comment\n\n");
        assertTrue(assertThrows(UserError.class, () -> SamplePromptFile.read(empty)).getMessage().contains("e.txt: no prompts found"));
        Path yaml = Files.writeString(dir.resolve("p.yaml"), "x");
        assertTrue(assertThrows(UserError.class, () -> SamplePromptFile.read(yaml)).getMessage()
                .contains("unknown sample prompt format; expected a .txt, .toml or .json file"));
        Path badToml = Files.writeString(dir.resolve("b.toml"), "[prompt]\nwidth = 512\n");
        assertTrue(assertThrows(UserError.class, () -> SamplePromptFile.read(badToml)).getMessage()
                .contains("expected a [prompt] table with [[prompt.subset]] entries"));
    }
}
