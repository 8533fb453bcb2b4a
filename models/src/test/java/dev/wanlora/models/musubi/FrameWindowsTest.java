package dev.wanlora.models.musubi;

import dev.wanlora.models.musubi.FrameWindows.Window;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Clip windows per extraction mode, against values worked out by hand from musubi's loops. */
class FrameWindowsTest {

    private static FrameSpec spec(FrameExtraction mode, List<Integer> targets, int stride, int sample, Double fps) {
        return new FrameSpec(targets, mode, stride, sample, 129, fps);
    }

    @Test
    void head() {
        FrameSpec s = spec(FrameExtraction.HEAD, List.of(1, 21, 45), 1, 1, null);
        // head decodes max(target) = 45 frames at most; a 30-frame video has room for 1 and 21.
        assertEquals(30, FrameWindows.frameCount(s, 30));
        assertEquals(45, FrameWindows.frameCount(s, 200));
        assertEquals(List.of(new Window(0, 1), new Window(0, 21)), FrameWindows.windows(s, 30));
        assertEquals(6, new Window(0, 21).latentFrames());     // (21-1)/4+1
    }

    @Test
    void chunk() {
        // 50 frames, N = 21: starts 0, 21 (42+21 = 63 > 50 does not fit).
        FrameSpec s = spec(FrameExtraction.CHUNK, List.of(21), 1, 1, null);
        assertEquals(List.of(new Window(0, 21), new Window(21, 21)), FrameWindows.windows(s, 50));
    }

    @Test
    void slide() {
        // 50 frames, N = 21, stride 10: starts 0, 10, 20 (<= 50-21 = 29).
        FrameSpec s = spec(FrameExtraction.SLIDE, List.of(21), 10, 1, null);
        assertEquals(List.of(new Window(0, 21), new Window(10, 21), new Window(20, 21)), FrameWindows.windows(s, 50));
    }

    @Test
    void uniform() {
        FrameSpec two = spec(FrameExtraction.UNIFORM, List.of(45), 1, 2, null);
        // linspace(0, 81-45 = 36, 2) = [0, 36].
        assertEquals(List.of(new Window(0, 45), new Window(36, 45)), FrameWindows.windows(two, 81));
        // linspace(0, 0, 2) = [0, 0]: one cache file, counted once.
        assertEquals(List.of(new Window(0, 45)), FrameWindows.windows(two, 45));
        assertEquals(List.of(), FrameWindows.windows(two, 44));
        // linspace(0, 7, 4): step 7/3 = 2.33 -> 0, 2.33, 4.67, 7 -> floored 0, 2, 4, 7.
        FrameSpec four = spec(FrameExtraction.UNIFORM, List.of(21), 1, 4, null);
        assertEquals(List.of(new Window(0, 21), new Window(2, 21), new Window(4, 21), new Window(7, 21)),
                FrameWindows.windows(four, 28));
        // linspace(0, 100, 7): step 16.67 -> 0, 16, 33, 50, 66, 83, 100.
        assertEquals(List.of(0, 16, 33, 50, 66, 83, 100), FrameWindows.linspaceInt(100, 7));
    }

    @Test
    void full() {
        FrameSpec s = spec(FrameExtraction.FULL, List.of(1), 1, 1, null);
        assertEquals(List.of(new Window(0, 129)), FrameWindows.windows(s, 200));  // min(200, 129) = 129 = 4*32+1
        assertEquals(List.of(new Window(0, 97)), FrameWindows.windows(s, 100));   // (100-1) div 4 * 4 + 1 = 97
        assertEquals(List.of(new Window(0, 1)), FrameWindows.windows(s, 3));
    }

    @Test
    void fpsDrop() {
        FrameSpec chunk30 = spec(FrameExtraction.CHUNK, List.of(21), 1, 1, 30.0);
        // 60 frames at 30 fps -> 16 fps: indices int(i*16/30) reach 31 at i = 59, so 32 frames are kept.
        assertEquals(32, FrameWindows.frameCount(chunk30, 60));
        FrameSpec head30 = spec(FrameExtraction.HEAD, List.of(21), 1, 1, 30.0);
        assertEquals(21, FrameWindows.frameCount(head30, 60));                    // stops at index 21
        // 8 fps is below 16: delta 2, indices 0, 2, ..., 18 are all distinct; head with end 9 keeps 0..8: 5 frames.
        assertEquals(10, FrameWindows.frameCount(spec(FrameExtraction.CHUNK, List.of(9), 1, 1, 8.0), 10));
        assertEquals(5, FrameWindows.frameCount(spec(FrameExtraction.HEAD, List.of(9), 1, 1, 8.0), 10));
        // 100 frames at 24 fps: exact i*16/24 would give index 66 at i = 99 (67 frames), but musubi adds 2/3 in a
        // running double sum, which is 65.99999999999991 after 99 additions: 66 frames.
        assertEquals(66, FrameWindows.frameCount(spec(FrameExtraction.CHUNK, List.of(9), 1, 1, 24.0), 100));
    }
}
