package dev.wanlora.models.musubi;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Which clips musubi's latent caching cuts from one video ({@code VideoDataset.retrieve_latent_cache_batches} and
 * {@code media_utils.load_video}). Each clip becomes one cache file
 * {@code {video}_{start:05d}-{frames:03d}_{W:04d}x{H:04d}_wan.safetensors}. Training never needs this (it lists
 * the cache files); it serves counting from media metadata and documents the naming.
 */
public final class FrameWindows {
    private FrameWindows() {}

    /** A clip: {@code frames} consecutive frames of the (fps-converted) video, from {@code start}. */
    public record Window(int start, int frames) {
        /** Latent frames the VAE makes of this clip, (frames-1)/4+1. */
        public int latentFrames() { return FrameSpec.latentFrames(frames); }
    }

    /**
     * The frame count musubi's extraction sees for a video of {@code videoFrames} decoded frames.
     *
     * <p>With {@code source_fps}, frame i is kept when int(Σ 16/source_fps over the frames before it) differs from the
     * last kept index (a running double sum, as musubi computes it, not i·16/fps). In "head" mode decoding stops at
     * max(target_frames), counted in kept frames.
     */
    public static int frameCount(FrameSpec spec, int videoFrames) {
        int endFrame = spec.extraction() == FrameExtraction.HEAD
                ? Collections.max(spec.targetFrames()) : Integer.MAX_VALUE;
        if (spec.sourceFps() == null) return Math.min(videoFrames, endFrame);
        double frameIndexDelta = FrameSpec.TARGET_FPS_WAN / spec.sourceFps();
        double frameIndexWithFraction = 0.0;
        int previousIndex = -1;
        int kept = 0;
        for (int i = 0; i < videoFrames; i++) {
            int targetIndex = (int) frameIndexWithFraction;
            frameIndexWithFraction += frameIndexDelta;
            if (targetIndex == previousIndex) continue; // dropped
            previousIndex = targetIndex;
            if (targetIndex >= endFrame) break;
            kept++;
        }
        return kept;
    }

    /**
     * The distinct clips cut from a video whose extraction sees {@code frameCount} frames (see
     * {@link #frameCount}), in musubi's order. Two clips with the same start and length name the same cache file, so
     * they appear once (this happens with "uniform" when the video is barely longer than the clip).
     *
     * @throws IllegalArgumentException when frameCount is below 1
     */
    public static List<Window> windows(FrameSpec spec, int frameCount) {
        if (frameCount < 1) {
            throw new IllegalArgumentException("FrameWindows: a video needs at least one frame; got " + frameCount);
        }
        Set<Window> out = new LinkedHashSet<>();
        switch (spec.extraction()) {
            case HEAD -> {
                for (int n : spec.targetFrames()) {
                    if (frameCount >= n) out.add(new Window(0, n));
                }
            }
            case CHUNK -> {
                for (int n : spec.targetFrames()) {
                    for (int i = 0; i < frameCount; i += n) {
                        if (i + n <= frameCount) out.add(new Window(i, n));
                    }
                }
            }
            case SLIDE -> {
                for (int n : spec.targetFrames()) {
                    for (int i = 0; i <= frameCount - n; i += spec.frameStride()) out.add(new Window(i, n));
                }
            }
            case UNIFORM -> {
                for (int n : spec.targetFrames()) {
                    if (frameCount >= n) {
                        for (int start : linspaceInt(frameCount - n, spec.frameSample())) out.add(new Window(start, n));
                    }
                }
            }
            case FULL -> {
                int n = FrameSpec.roundDownTo4nPlus1(Math.min(frameCount, spec.maxFrames()));
                out.add(new Window(0, n));
            }
        }
        return List.copyOf(out);
    }

    /**
     * {@code np.linspace(0, stop, num, dtype=int)} for stop ≥ 0: i·(stop/(num−1)) in double, the last value exactly
     * stop, then floored.
     */
    static List<Integer> linspaceInt(int stop, int num) {
        List<Integer> out = new ArrayList<>(num);
        if (num == 1) {
            out.add(0);
            return out;
        }
        double step = stop / (double) (num - 1);
        for (int i = 0; i < num; i++) {
            double y = i == num - 1 ? stop : i * step;
            out.add((int) Math.floor(y));
        }
        return out;
    }
}
