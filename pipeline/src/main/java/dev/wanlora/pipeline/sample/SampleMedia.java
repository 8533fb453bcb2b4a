package dev.wanlora.pipeline.sample;

import dev.wanlora.engine.io.AtomicFiles;
import org.jcodec.codecs.h264.H264Encoder;
import org.jcodec.common.Codec;
import org.jcodec.common.MuxerTrack;
import org.jcodec.common.VideoCodecMeta;
import org.jcodec.common.VideoEncoder;
import org.jcodec.common.io.NIOUtils;
import org.jcodec.common.io.SeekableByteChannel;
import org.jcodec.common.model.ColorSpace;
import org.jcodec.common.model.Packet;
import org.jcodec.common.model.Picture;
import org.jcodec.common.model.Size;
import org.jcodec.containers.mp4.muxer.MP4Muxer;
import org.jcodec.scale.ColorUtil;
import org.jcodec.scale.Transform;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A decoded sample as 8-bit RGB frames, and its files: H.264 .mp4 (jcodec, pure Java, yuv420) for videos, .png for a
 * single frame (spec §10.5 "Output"). Pixels map from the decoder's [−1, 1] as musubi does: (x/2 + 0.5) clamped to
 * [0, 1], times 255, truncated to uint8 ({@code save_videos_grid}: {@code (x * 255).numpy().astype(np.uint8)}).
 *
 * @param frames F frames, each H·W·3 bytes, row-major RGB (unsigned values in Java bytes)
 */
public record SampleMedia(int width, int height, byte[][] frames) {

    /**
     * Wan's native frame rate (wan/configs/shared_config.py {@code sample_fps = 16}); musubi writes 24 fps
     * ({@code save_videos_grid}'s default), which plays Wan's motion 1.5× too fast. {@code --sample_fps} changes it.
     */
    public static final int DEFAULT_FPS = 16;

    /** Converts decoder output (3, F, H, W) in [−1, 1] (flat, channel-major) to 8-bit RGB frames. */
    public static SampleMedia fromPixels(float[] chw, int frames, int height, int width) {
        long plane = (long) height * width, per = plane * frames;
        if (chw.length != 3 * per) {
            throw new IllegalArgumentException("SampleMedia: expected 3·" + frames + "·" + height + "·" + width
                    + " values; got " + chw.length);
        }
        byte[][] out = new byte[frames][(int) (plane * 3)];
        for (int f = 0; f < frames; f++) {
            for (int p = 0; p < plane; p++) {
                for (int c = 0; c < 3; c++) {
                    float x = chw[(int) (c * per + f * plane + p)];
                    float v = Math.min(1f, Math.max(0f, x / 2 + 0.5f)); // NaN stays NaN here and becomes 0 below
                    out[f][p * 3 + c] = (byte) (Float.isNaN(v) ? 0 : (int) (v * 255));
                }
            }
        }
        return new SampleMedia(width, height, out);
    }

    public int frameCount() { return frames.length; }

    /** The file extension musubi uses: ".mp4" for a video, ".png" for one frame. */
    public String extension() { return frames.length == 1 ? ".png" : ".mp4"; }

    /** Writes {@code target} (.mp4 or .png by {@link #extension()}) atomically. */
    public void write(Path target, int fps) {
        if (frames.length == 1) AtomicFiles.write(target, tmp -> Files.write(tmp, png(0)));
        else AtomicFiles.write(target, tmp -> writeMp4(tmp, fps));
    }

    /** Frame {@code f} as PNG bytes (also the TensorBoard image summary's encoding). */
    public byte[] png(int f) {
        return Png.encode(frames[f], width, height);
    }

    /**
     * H.264 (jcodec's baseline encoder) in an MP4 container, every frame, at {@code fps}.
     *
     * <p>Colour: the frames become BT.601 limited-range Y'CbCr 4:2:0 (jcodec's RGB→YUV420 transform), the form players
     * assume for a stream without colour information in its SPS, which jcodec writes none of. jcodec's encoder only
     * accepts pictures labelled YUV420J (full range) and its own RGB→YUV420J path (SequenceEncoder's) is off by ≈ 6
     * levels per channel on a round trip, so the limited-range planes are handed over under that label: the
     * bitstream carries the samples as they are. A frame decoded back is within ≈ 3 levels (SampleMediaTest).
     */
    private void writeMp4(Path file, int fps) throws IOException {
        if (width % 2 != 0 || height % 2 != 0) {
            throw new IllegalArgumentException("SampleMedia: yuv420 video needs even sizes; got " + width + "×" + height);
        }
        try (SeekableByteChannel channel = NIOUtils.writableChannel(file.toFile())) {
            MP4Muxer muxer = MP4Muxer.createMP4MuxerToChannel(channel);
            MuxerTrack track = muxer.addVideoTrack(Codec.H264,
                    VideoCodecMeta.createSimpleVideoCodecMeta(new Size(width, height), ColorSpace.YUV420));
            H264Encoder encoder = H264Encoder.createH264Encoder();
            Picture rgbPicture = Picture.create(width, height, ColorSpace.RGB);
            Picture yuv = Picture.create(width, height, ColorSpace.YUV420);
            Transform toYuv = ColorUtil.getTransform(ColorSpace.RGB, ColorSpace.YUV420);
            Picture encoded = new Picture(width, height, yuv.getData(), null, ColorSpace.YUV420J, 0, null);
            ByteBuffer buffer = ByteBuffer.allocate(encoder.estimateBufferSize(encoded));
            byte[] data = rgbPicture.getPlaneData(0);
            for (int f = 0; f < frames.length; f++) {
                byte[] rgb = frames[f];
                for (int i = 0; i < rgb.length; i++) data[i] = (byte) ((rgb[i] & 0xff) - 128); // jcodec: signed samples
                toYuv.transform(rgbPicture, yuv);
                buffer.clear();
                VideoEncoder.EncodedFrame frame = encoder.encodeFrame(encoded, buffer);
                track.addFrame(Packet.createPacket(frame.getData(), f, fps, 1, f,
                        frame.isKeyFrame() ? Packet.FrameType.KEY : Packet.FrameType.INTER, null));
            }
            muxer.finish();
        }
    }
}
