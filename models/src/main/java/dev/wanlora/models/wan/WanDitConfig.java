package dev.wanlora.models.wan;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.wan.WanDitTree.Embedding;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;

/**
 * Shape hyper-parameters of a Wan2.1 T2V DiT (spec §1.1). The factories are the upstream configs
 * <a href="https://github.com/Wan-Video/Wan2.1/blob/9737cba9c1c3c4d04b33fcad41c111989865d315/wan/configs/wan_t2v_14B.py">wan_t2v_14B.py</a>
 * and <a href="https://github.com/Wan-Video/Wan2.1/blob/9737cba9c1c3c4d04b33fcad41c111989865d315/wan/configs/wan_t2v_1_3B.py">wan_t2v_1_3B.py</a>;
 * {@link #fromCheckpoint} derives the same numbers from tensor shapes (keys from {@link WanDitTree}), so any checkpoint
 * (including the tiny golden model) describes itself.
 *
 * @param dim         C, the model dim
 * @param ffnDim      Fd, the FFN hidden dim
 * @param numHeads    N; the head dim D = C/N is 128 for every Wan model
 * @param numLayers   number of WanAttentionBlocks
 * @param inChannels  latent channels in (16 for T2V)
 * @param outChannels latent channels out (16)
 * @param textDim     Ct, the text-encoder dim (4096, umT5-XXL)
 * @param freqDim     Tf, the sinusoidal time-embedding dim (256)
 * @param textLen     K, text tokens after zero padding (512)
 * @param eps         epsilon of every LayerNorm and RMSNorm (1e-6)
 * @param patch       the Conv3d patch (1, 2, 2)
 */
public record WanDitConfig(int dim, int ffnDim, int numHeads, int numLayers, int inChannels, int outChannels,
                           int textDim, int freqDim, int textLen, float eps, PatchSize patch) {

    /** Head dim D of every Wan2.1 model; {@link #fromCheckpoint} derives N = C/D. */
    public static final int HEAD_DIM = 128;

    /** Wan's text length (shared_config.py {@code text_len}); not visible in the weights. */
    public static final int TEXT_LEN = 512;

    /** Kernel = stride of the patch-embedding Conv3d over (frames, height, width). */
    public record PatchSize(int frames, int height, int width) {
        public int numElements() { return frames * height * width; }
    }

    public static final PatchSize PATCH_1_2_2 = new PatchSize(1, 2, 2);

    public WanDitConfig {
        if (dim <= 0 || numHeads <= 0 || dim % numHeads != 0) {
            throw new IllegalArgumentException("WanDitConfig: dim must be a positive multiple of numHeads; got dim=" + dim
                    + ", numHeads=" + numHeads);
        }
        if ((dim / numHeads) % 2 != 0) {
            throw new IllegalArgumentException("WanDitConfig: head dim must be even (RoPE pairs); got " + dim / numHeads);
        }
        if (!patch.equals(PATCH_1_2_2)) {
            throw new IllegalArgumentException("WanDitConfig: patch " + patch + " is not supported; supported: (1, 2, 2)");
        }
        if (ffnDim <= 0 || numLayers <= 0 || inChannels <= 0 || outChannels <= 0 || textDim <= 0 || freqDim <= 0
                || freqDim % 2 != 0 || textLen <= 0 || !(eps > 0)) {
            throw new IllegalArgumentException("WanDitConfig: every size must be positive (freqDim even); got " + this);
        }
    }

    /** Wan2.1-T2V-14B: C 5120, Fd 13824, N 40, 40 blocks. */
    public static WanDitConfig t2v14B() {
        return new WanDitConfig(5120, 13824, 40, 40, 16, 16, 4096, 256, TEXT_LEN, 1e-6f, PATCH_1_2_2);
    }

    /** Wan2.1-T2V-1.3B: C 1536, Fd 8960, N 12, 30 blocks. */
    public static WanDitConfig t2v1_3B() {
        return new WanDitConfig(1536, 8960, 12, 30, 16, 16, 4096, 256, TEXT_LEN, 1e-6f, PATCH_1_2_2);
    }

    /** D = C/N. */
    public int headDim() { return dim / numHeads; }

    /** P = Cin·1·2·2, the length of one patch vector (64 for T2V). */
    public int patchLength() { return inChannels * patch.numElements(); }

    /** Features of the head's Linear: Cout·1·2·2 (64). */
    public int headOutFeatures() { return outChannels * patch.numElements(); }

    // ---------------------------------------------------------------- from a checkpoint

    /** Largest size of any dimension read from a checkpoint's shapes: far above the 14B model's 13824. */
    private static final long MAX_SIZE = 1 << 20;

    /**
     * The configuration a checkpoint's tensor shapes describe (keys already stripped of {@code model.diffusion_model.}
     * by {@link SafeTensors#open(java.nio.file.Path, List)} with {@link SafeTensors#DIT_PREFIXES}): C and Cin from
     * {@code patch_embedding.weight} (C, Cin, 1, 2, 2), Fd from {@code blocks.0.ffn.0.weight}, N = C/128, the block
     * count from the distinct {@code blocks.N} indices, Ct from {@code text_embedding.0.weight}, Tf from
     * {@code time_embedding.0.weight}, Cout from {@code head.head.weight}. I2V, FLF2V and Fun checkpoints are refused.
     *
     * @throws IllegalArgumentException naming the file and the offending key when the file is not a Wan2.1 T2V DiT
     */
    public static WanDitConfig fromCheckpoint(SafeTensors checkpoint) {
        String file = checkpoint.path().getFileName().toString();
        rejectImageToVideo(checkpoint, file);
        long[] patchShape = shapeOf(checkpoint, file, Embedding.PATCH_EMBEDDING.weightKey(), 5).dims();
        int dim = (int) patchShape[0];
        int inChannels = (int) patchShape[1];
        if (patchShape[2] != 1 || patchShape[3] != 2 || patchShape[4] != 2) {
            throw new IllegalArgumentException(file + ": " + Embedding.PATCH_EMBEDDING.weightKey() + " has shape " + Shape.of(patchShape)
                    + ", expected (C, Cin, 1, 2, 2); only Wan2.1's (1, 2, 2) patch is supported");
        }
        int ffnDim = (int) shapeOf(checkpoint, file, WanDitTree.blockLinearWeightKey(0, WanDitWeights.BlockLinear.FFN_0), 2).dim(0);
        int textDim = (int) shapeOf(checkpoint, file, Embedding.TEXT_EMBEDDING_0.weightKey(), 2).dim(1);
        int freqDim = (int) shapeOf(checkpoint, file, Embedding.TIME_EMBEDDING_0.weightKey(), 2).dim(1);
        int headOut = (int) shapeOf(checkpoint, file, Embedding.HEAD.weightKey(), 2).dim(0);
        if (dim == 0 || dim % HEAD_DIM != 0 || headOut % PATCH_1_2_2.numElements() != 0) {
            throw new IllegalArgumentException(file + ": dim " + dim + " (from " + Embedding.PATCH_EMBEDDING.weightKey() + ") is not a multiple"
                    + " of the head dim " + HEAD_DIM + " or head.head.weight rows " + headOut + " not a multiple of 4;"
                    + " expected a Wan2.1 DiT");
        }
        TreeSet<Integer> blocks = new TreeSet<>();
        for (String key : checkpoint.keys()) {
            String index = WanDitTree.blockIndexDigits(key);
            if (index == null) continue;
            // at most 9 digits: a larger index is no real block (and would not fit an int)
            if (index.length() > 9) {
                throw new IllegalArgumentException(file + ": key " + key + " has block index " + index
                        + "; expected 0..n-1 for a Wan2.1 DiT (the 14B model has 40 blocks)");
            }
            blocks.add(Integer.parseInt(index));
        }
        if (blocks.isEmpty() || blocks.first() != 0 || blocks.last() != blocks.size() - 1) {
            throw new IllegalArgumentException(file + ": block indices " + summarize(blocks) + " are not 0..n-1;"
                    + " expected a complete Wan2.1 DiT (is this one shard of a set? pass the index.json or shard 00001)");
        }
        return new WanDitConfig(dim, ffnDim, dim / HEAD_DIM, blocks.size(), inChannels, headOut / PATCH_1_2_2.numElements(),
                textDim, freqDim, TEXT_LEN, 1e-6f, PATCH_1_2_2);
    }

    private static Shape shapeOf(SafeTensors checkpoint, String file, String key, int rank) {
        if (!checkpoint.contains(key)) {
            throw new IllegalArgumentException(file + ": missing key " + key + "; expected a Wan2.1 T2V DiT checkpoint"
                    + " (bare keys or model.diffusion_model.-prefixed, as in the official and ComfyUI files)");
        }
        Shape s = checkpoint.info(key).shape();
        if (s.rank() != rank) {
            throw new IllegalArgumentException(file + ": key " + key + " has shape " + s + ", expected rank " + rank);
        }
        for (long d : s.dims()) {
            if (d < 1 || d > MAX_SIZE) {
                throw new IllegalArgumentException(file + ": key " + key + " has shape " + s + ", expected sizes from 1 to "
                        + MAX_SIZE + " (a Wan2.1 DiT)");
            }
        }
        return s;
    }

    /** Spec §2.3: I2V/FLF2V/Fun keys (img_emb.*, k_img, v_img, norm_k_img) or patch in-channels 36/48. */
    private static void rejectImageToVideo(SafeTensors checkpoint, String file) {
        List<String> extra = new ArrayList<>();
        for (String key : checkpoint.keys()) {
            if (key.startsWith("img_emb.") || key.contains(".k_img.") || key.contains(".v_img.")
                    || key.contains(".norm_k_img.")) {
                extra.add(key);
            }
        }
        String patch = Embedding.PATCH_EMBEDDING.weightKey();
        long inChannels = checkpoint.contains(patch) && checkpoint.info(patch).shape().rank() >= 2
                ? checkpoint.info(patch).shape().dim(1) : 16;
        if (extra.isEmpty() && inChannels != 36 && inChannels != 48) return;
        StringBuilder found = new StringBuilder();
        if (!extra.isEmpty()) {
            extra.sort(null);
            found.append(extra.size()).append(" image-conditioning keys (")
                    .append(String.join(", ", extra.subList(0, Math.min(3, extra.size()))))
                    .append(extra.size() > 3 ? ", …)" : ")");
        }
        if (inChannels == 36 || inChannels == 48) {
            if (!found.isEmpty()) found.append(" and ");
            found.append("patch_embedding in-channels ").append(inChannels);
        }
        throw new IllegalArgumentException(file + ": this is an image-to-video Wan checkpoint (I2V/FLF2V/Fun): found "
                + found + "; wanlora trains text-to-video only: pass a T2V DiT such as wan2.1_t2v_14B_bf16.safetensors");
    }

    private static String summarize(TreeSet<Integer> blocks) {
        return blocks.isEmpty() ? "(none)" : blocks.size() <= 6 ? blocks.toString()
                : "[" + blocks.first() + " … " + blocks.last() + "] (" + blocks.size() + " distinct)";
    }

    // ---------------------------------------------------------------- --task

    /** The musubi task name these shapes are ("t2v-14B", "t2v-1.3B"), or null for any other (e.g. a tiny test model). */
    public String taskName() {
        if (sameShapes(t2v14B())) return "t2v-14B";
        if (sameShapes(t2v1_3B())) return "t2v-1.3B";
        return null;
    }

    /** Whether {@code --task task} (musubi's names, e.g. "t2v-14B") describes these shapes. */
    public boolean matchesTask(String task) {
        return task != null && task.equals(taskName());
    }

    /**
     * Checks musubi's {@code --task} against the checkpoint's shapes.
     *
     * @throws IllegalArgumentException naming both the task and the checkpoint when they contradict each other, or
     *                                  listing the supported tasks when {@code task} is not one of them
     */
    public void requireTask(String task, String checkpointName) {
        if (!task.equals("t2v-14B") && !task.equals("t2v-1.3B")) {
            throw new IllegalArgumentException("--task " + task + " is not supported; supported: t2v-14B, t2v-1.3B"
                    + (task.toLowerCase(Locale.ROOT).startsWith("i2v") || task.contains("flf2v") || task.endsWith("-FC")
                    ? " (image-to-video and Fun-Control tasks are not trained by wanlora)" : ""));
        }
        if (matchesTask(task)) return;
        String actual = taskName();
        WanDitConfig expected = task.equals("t2v-14B") ? t2v14B() : t2v1_3B();
        throw new IllegalArgumentException("--task " + task + " contradicts --dit " + checkpointName + ": its shapes "
                + shapeSummary(this) + (actual != null
                ? " are those of " + actual + "; pass --task " + actual + " or a " + task + " checkpoint"
                : " are those of no Wan2.1 task (" + task + " has " + shapeSummary(expected) + "); pass a " + task
                + " checkpoint, or leave --task out to train this model as it is"));
    }

    /** "(dim 256, 2 blocks, 2 heads)" of {@code c}. */
    private static String shapeSummary(WanDitConfig c) {
        return "(dim " + c.dim + ", " + c.numLayers + " blocks, " + c.numHeads + " heads)";
    }

    private boolean sameShapes(WanDitConfig o) {
        return dim == o.dim && ffnDim == o.ffnDim && numHeads == o.numHeads && numLayers == o.numLayers
                && inChannels == o.inChannels && outChannels == o.outChannels && textDim == o.textDim
                && freqDim == o.freqDim;
    }
}
