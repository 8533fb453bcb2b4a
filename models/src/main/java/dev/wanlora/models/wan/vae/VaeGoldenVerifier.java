package dev.wanlora.models.wan.vae;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.golden.GoldenVerifier.Comparison;
import dev.wanlora.models.golden.GoldenVerifier.Mode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Runs our VAE on a folder in the format of {@code testdata/golden/vae-tiny/README.md} ({@code vae.safetensors} plus
 * {@code decode.safetensors} and/or {@code encode.safetensors}) and compares every recorded tensor: the decode's
 * de-normalised latent, {@code conv2}, every decoder stage (all chunks, or chunk 0 where only that is stored) and the
 * clamped video; the encoder output and μ. The model's base dim comes from the checkpoint, the sizes from the inputs.
 */
public final class VaeGoldenVerifier {
    /**
     * float32 vs the float32 goldens. The README's float32-vs-float64 spread is ≤ 9.0e-7 on every tensor (8.6e-7 on
     * the hidden case), so two float32 implementations differing only in summation order land within ~2× that; an
     * independent numpy implementation of the spec lands at ≤ 1.1e-6. 1e-5 is 10× the spread; the misreadings the
     * README tried (time_conv halves swapped, time_conv seeing frame 0) are off by ≥ 0.5.
     */
    static final double FP32_REL_L2 = 1e-5;
    /**
     * bf16 vs the float32 goldens, every tensor but μ: musubi's own bf16 path is 1.8e-2 from float32 on the video
     * (README); an independent bf16 implementation rounds differently, and two independent errors of that size add in
     * quadrature to ≈ 1.41×, so 3e-2 (≈ 1.7×, the README's bound). Earlier decoder stages carry less accumulated
     * rounding than the video; the encoder output also holds the log-variance half, which μ's bound does not cover.
     * Our CPU backend's bf16 path measures video 1.56e-2, stages ≤ 9.4e-3, encoder.out 1.39e-2 (WanVaeGoldenTest).
     */
    static final double BF16_REL_L2 = 3e-2;
    /** bf16 μ: musubi's bf16 μ is 1.0e-2 from float32; 2e-2 (2×, the README's bound). Our CPU bf16 path: 8.4e-3. */
    static final double BF16_MU_REL_L2 = 2e-2;

    private final Backend backend;
    private final Path dir;
    private final WanVaeConfig config;

    /** True when {@code dir} holds a VAE golden ({@code vae.safetensors}). */
    public static boolean recognises(Path dir) { return Files.isRegularFile(dir.resolve("vae.safetensors")); }

    /** @throws IllegalArgumentException when dir has no vae.safetensors or it is not a Wan 2.1 VAE */
    public VaeGoldenVerifier(Backend backend, Path dir) {
        this.backend = backend;
        this.dir = dir;
        if (!recognises(dir)) {
            throw new IllegalArgumentException(dir + ": no vae.safetensors; expected a folder in the format of"
                    + " testdata/golden/vae-tiny/README.md (vae.safetensors plus decode/encode.safetensors)");
        }
        try (SafeTensors st = SafeTensors.open(dir.resolve("vae.safetensors"))) {
            this.config = WanVaeConfig.fromCheckpoint(st);
        }
    }

    public WanVaeConfig config() { return config; }

    /** Runs every comparison the folder's files allow, handing each line to {@code out} as it is known. */
    public List<Comparison> run(Mode mode, Consumer<Comparison> out) {
        List<Comparison> all = new ArrayList<>();
        Consumer<Comparison> sink = c -> { all.add(c); out.accept(c); };
        DType dtype = mode == Mode.FP32_REFERENCE ? DType.F32 : DType.BF16;
        String label = mode == Mode.FP32_REFERENCE ? "fp32" : "bf16";
        Path decode = dir.resolve("decode.safetensors"), encode = dir.resolve("encode.safetensors");
        try (SafeTensors file = SafeTensors.open(dir.resolve("vae.safetensors"));
             WanVaeWeights weights = WanVaeWeights.load(backend, file, config, dtype,
                     WanVaeWeights.Part.BOTH);
             WanVae vae = new WanVae(backend, weights)) {
            if (Files.isRegularFile(decode)) {
                compareDecode(vae, decode, label, mode == Mode.FP32_REFERENCE ? FP32_REL_L2 : BF16_REL_L2, sink);
            }
            if (Files.isRegularFile(encode)) {
                boolean fp32 = mode == Mode.FP32_REFERENCE;
                compareEncode(vae, encode, label, fp32 ? FP32_REL_L2 : BF16_REL_L2, fp32 ? FP32_REL_L2 : BF16_MU_REL_L2, sink);
            }
        }
        return all;
    }

    private void compareDecode(WanVae vae, Path file, String label, double bound, Consumer<Comparison> sink) {
        try (SafeTensors golden = SafeTensors.open(file)) {
            Shape z = require(golden, "input.z", 5);
            int frames = (int) z.dim(2), h = (int) z.dim(3), w = (int) z.dim(4);
            Chunks probes = new Chunks();
            int outFrames = WanVaeConfig.pixelFrames(frames), plane = 64 * h * w;
            float[] video = new float[3 * outFrames * plane];
            vae.decode(golden.floats("input.z"), frames, h, w, (f, rgb) -> {
                for (int p = 0; p < plane; p++) {
                    for (int c = 0; c < 3; c++) video[(c * outFrames + f) * plane + p] = rgb[p * 3 + c];
                }
            }, probes::add);
            for (String key : golden.keys()) {
                if (key.startsWith("input.")) continue;
                float[] ours = key.equals("output.video") ? video
                        : key.endsWith(".chunk0") ? probes.firstChunk(key.substring(0, key.length() - ".chunk0".length()))
                        : probes.all(key);
                sink.accept(compare(label + " " + file.getFileName(), key, ours, golden.floats(key), bound));
            }
        }
    }

    private void compareEncode(WanVae vae, Path file, String label, double bound, double muBound,
                               Consumer<Comparison> sink) {
        try (SafeTensors golden = SafeTensors.open(file)) {
            Shape v = require(golden, "input.video", 5);
            Chunks probes = new Chunks();
            float[] mu = vae.encode(golden.floats("input.video"), (int) v.dim(2), (int) v.dim(3), (int) v.dim(4),
                    probes::add);
            for (String key : golden.keys()) {
                if (key.startsWith("input.")) continue;
                boolean isMu = key.equals("output.mu");
                sink.accept(compare(label + " " + file.getFileName(), key, isMu ? mu : probes.all(key), golden.floats(key),
                        isMu ? muBound : bound));
            }
        }
    }

    private static Shape require(SafeTensors golden, String key, int rank) {
        if (!golden.contains(key) || golden.info(key).shape().rank() != rank || golden.info(key).shape().dim(0) != 1) {
            throw new IllegalArgumentException(golden.path() + ": no tensor " + key + " of shape [1, C, T, H, W];"
                    + " hint: regenerate it with golden/make_vae_golden.py");
        }
        return golden.info(key).shape();
    }

    private static Comparison compare(String file, String key, float[] ours, float[] golden, double bound) {
        if (ours == null || ours.length != golden.length) {
            // Not recorded by our run (an unknown key), or a different size: a failure, shown as such.
            float[] missing = new float[golden.length];
            Arrays.fill(missing, Float.NaN);
            ours = missing;
        }
        return new Comparison(file, key, ErrorStats.compare(ours, golden), bound, Double.NaN, true);
    }

    /** Probe outputs by name, one (F, H, W, C) chunk after another, read back as the golden's (C, ΣF, H, W). */
    private final class Chunks {
        private final Map<String, List<float[]>> values = new LinkedHashMap<>();
        private final Map<String, List<Shape>> shapes = new LinkedHashMap<>();

        void add(String name, Tensor chunk) {
            values.computeIfAbsent(name, k -> new ArrayList<>()).add(backend.toFloats(chunk));
            shapes.computeIfAbsent(name, k -> new ArrayList<>()).add(chunk.shape());
        }

        float[] firstChunk(String name) {
            return values.containsKey(name) ? toChannelsFirst(List.of(values.get(name).getFirst()),
                    List.of(shapes.get(name).getFirst())) : null;
        }

        float[] all(String name) {
            return values.containsKey(name) ? toChannelsFirst(values.get(name), shapes.get(name)) : null;
        }

        private static float[] toChannelsFirst(List<float[]> chunks, List<Shape> chunkShapes) {
            long total = chunkShapes.stream().mapToLong(s -> s.dim(0)).sum();
            Shape s0 = chunkShapes.getFirst();
            int h = (int) s0.dim(1), w = (int) s0.dim(2), c = (int) s0.dim(3), plane = h * w;
            float[] out = new float[(int) (c * total * plane)];
            int t0 = 0;
            for (int i = 0; i < chunks.size(); i++) {
                float[] v = chunks.get(i);
                int frames = (int) chunkShapes.get(i).dim(0);
                for (int f = 0; f < frames; f++) {
                    for (int p = 0; p < plane; p++) {
                        for (int ch = 0; ch < c; ch++) {
                            out[(int) ((ch * total + t0 + f) * plane + p)] = v[(f * plane + p) * c + ch];
                        }
                    }
                }
                t0 += frames;
            }
            return out;
        }
    }
}
