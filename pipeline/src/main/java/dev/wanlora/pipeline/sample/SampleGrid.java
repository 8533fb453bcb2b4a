package dev.wanlora.pipeline.sample;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Several LoRAs' samples of one prompt side by side (issue #10: "several --lora files → a grid video"): one column
 * per LoRA in --lora order, each under a caption row naming it ({@link CaptionFont}, white on black), written as
 * {@code {output_name}_grid_{idx:02d}_{timestamp}_{seed}.mp4} (or {@code _000.png} for a still) beside the single
 * files. The printed legend names the columns in full, since a caption is cut to its column's width.
 *
 * <p>The columns are the samples' 8-bit frames kept in host memory until every LoRA has run (each LoRA is loaded
 * once, so prompts are the inner loop): W·H·3·F bytes per sample, 97 MiB at 832×480×81.
 */
public final class SampleGrid {
    private SampleGrid() {}

    /**
     * The grid of {@code columns} (equal sizes and frame counts) under {@code captions}: width n·W, height the caption
     * row plus H. The row is 11 font pixels high (2 above and below the 7-pixel glyphs) at a scale of W / 160 (at
     * least 1: 1 for 64-pixel tests, 5 for 832-pixel samples), rounded up to an even height for yuv420.
     */
    public static SampleMedia compose(List<SampleMedia> columns, List<String> captions) {
        SampleMedia first = columns.getFirst();
        int w = first.width(), h = first.height(), n = columns.size();
        for (SampleMedia m : columns) {
            if (m.width() != w || m.height() != h || m.frameCount() != first.frameCount()) {
                throw new IllegalArgumentException("SampleGrid: columns differ in size; got " + m.width() + "×" + m.height()
                        + "×" + m.frameCount() + " beside " + w + "×" + h + "×" + first.frameCount());
            }
        }
        int scale = Math.max(1, w / 160);
        int rowHeight = (11 * scale + 1) / 2 * 2;
        int width = n * w, height = rowHeight + h;
        byte[][] frames = new byte[first.frameCount()][];
        byte[] caption = new byte[width * rowHeight * 3];
        for (int c = 0; c < n; c++) {
            CaptionFont.draw(caption, width, captions.get(c), c * w + 2 * scale, 2 * scale, scale, w - 4 * scale);
        }
        for (int f = 0; f < frames.length; f++) {
            byte[] out = new byte[width * height * 3];
            System.arraycopy(caption, 0, out, 0, caption.length);
            for (int c = 0; c < n; c++) {
                byte[] src = columns.get(c).frames()[f];
                for (int y = 0; y < h; y++) {
                    System.arraycopy(src, y * w * 3, out, ((rowHeight + y) * width + c * w) * 3, w * 3);
                }
            }
            frames[f] = out;
        }
        return new SampleMedia(width, height, frames);
    }

    /**
     * One grid per prompt from {@code byLora} (per LoRA, its written samples in prompt order), with a legend line per
     * grid.
     */
    public static void writeAll(List<List<SampleRunner.Written>> byLora, List<SampleLora> loras, Path outputDir,
                                String outputName, String time, int fps, PrintWriter out) {
        List<String> names = loras.stream().map(SampleLora::name).toList();
        for (int j = 0; j < byLora.getFirst().size(); j++) {
            int index = j;
            List<SampleMedia> columns = byLora.stream().map(w -> w.get(index).media()).toList();
            SampleRunner.Written any = byLora.getFirst().get(j);
            SampleMedia grid = compose(columns, names);
            String stem = String.format(Locale.ROOT, "%s_grid_%02d_%s_%d", outputName, any.promptIndex(), time, any.seed());
            Path file = SampleNames.folder(outputDir).resolve(SampleNames.fileName(stem, grid.frameCount()));
            grid.write(file, fps);
            out.println("grid → " + file + " (left to right: " + String.join(", ", names) + ")");
        }
        out.flush();
    }
}
