package dev.wanlora.models.musubi;

import java.util.List;

/**
 * The frame settings of a video dataset, resolved as musubi's {@code VideoDataset.__init__} resolves them.
 *
 * @param targetFrames clip lengths in frames: distinct, ascending, each 4n+1 (musubi rounds down and warns)
 * @param extraction   how clips are cut; "uniform" with {@code frame_sample = 1} has already become HEAD, as in musubi
 * @param frameStride  start step of SLIDE
 * @param frameSample  number of clips per length of UNIFORM
 * @param maxFrames    cap of FULL
 * @param sourceFps    the videos' frame rate, from which frames are dropped to 16 fps; null keeps every frame
 */
public record FrameSpec(List<Integer> targetFrames, FrameExtraction extraction, int frameStride, int frameSample,
                        int maxFrames, Double sourceFps) {

    /** Wan's temporal VAE stride: a clip of N = 4n+1 frames has (N-1)/4+1 latent frames. */
    public static final int VAE_FRAME_STRIDE = 4;

    /** Frame rate musubi resamples Wan videos to when {@code source_fps} is set ({@code TARGET_FPS_WAN}). */
    public static final double TARGET_FPS_WAN = 16.0;

    public FrameSpec {
        targetFrames = List.copyOf(targetFrames);
    }

    /** N rounded down to 4n+1, as musubi rounds target_frames and the "full" clip length. */
    public static int roundDownTo4nPlus1(int frames) {
        return Math.floorDiv(frames - 1, VAE_FRAME_STRIDE) * VAE_FRAME_STRIDE + 1;
    }

    /** Latent frames of a clip of N (4n+1) frames: the causal first frame plus one per 4 frames. */
    public static int latentFrames(int frames) {
        return (frames - 1) / VAE_FRAME_STRIDE + 1;
    }
}
