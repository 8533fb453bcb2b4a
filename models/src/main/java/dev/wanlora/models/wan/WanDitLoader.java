package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.FileReadAhead;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitTree.LinearForm;
import dev.wanlora.models.wan.WanDitTree.Node;
import dev.wanlora.models.wan.WanDitTree.Role;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Parts;
import dev.wanlora.models.wan.WanDitWeights.Quantization;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.LongConsumer;

/**
 * Loads a Wan2.1 T2V DiT checkpoint ({@link WanDitWeights#load}): checks every key of the {@link WanDitTree} against
 * the file first (missing, mis-shaped, non-floating and unexpected keys are reported before anything is read), then
 * reads the tensors <b>in the order of their bytes in the file</b>, each into its destination: a resident tensor in the
 * compute dtype, fp8 codes and scales, or (a swapped block's Linear weight) the block's pinned host image.
 *
 * <p>Why file order (issue 13): an official file stores its tensors by name (blocks.0, blocks.1, blocks.10, …, head,
 * patch_embedding, …), and a loader that walked the model (blocks 0, 1, 2, …) jumped around the file: on a cold page
 * cache the 14B bf16 file (26.6 GiB; dd 15.5 s) loaded in 18.3 s on an H200 machine, the first 4.6 GiB at 0.98 GB/s.
 * In file order the reader threads of {@link Backend#writeBytes} read the file front to back.
 *
 * <p>{@link FileReadAhead} stays: with the loader now reading front to back it is a second reader of the same region
 * a little ahead, not a competitor for another part of the disk, and it keeps the disk busy where the loader's reads
 * pause (the end of each tensor, where writeBytes drains its reads; the synchronizing store of each streamed block;
 * small tensors read on one thread). The bytes are read from the disk once either way: a loader read of a page
 * already being read waits for that read. The cold e2e load (gpu-test.sh e2e) is the measurement that can retire it.
 *
 * <p>No weight passes through the Java heap: each tensor's file bytes go straight into the backend
 * ({@link Backend#writeBytes}: on a GPU, positional reads into a pinned staging ring and an asynchronous copy), either
 * into the final tensor when the file already has its dtype, or into a scratch tensor of the file's dtype (one per
 * dtype, the size of the largest tensor, reused) from which a device op writes the final tensor: {@link Backend#copy}
 * for a dtype change or the plain fp8 cast, {@link Backend#quantizeFp8} for --fp8_scaled. Every step is queued in
 * order on the backend's stream, so the host reads the next tensor while the device copies and converts this one;
 * scratch reuse is safe for the same reason.
 */
final class WanDitLoader {
    private final Backend backend;
    private final SafeTensors checkpoint;
    private final WanDitTree tree;
    private final Quantization quantization;
    private final boolean dequantizeFp8AtLoad;
    /** {@code --fp8_compute}: block Linear weights re-quantized per tensor ({@link Fp8ComputeWeights}). */
    private final boolean fp8Compute;
    private final DType computeDType;
    private final Set<String> unconsumed;
    /** Per-tensor scales of a ComfyUI scaled fp8 file, or null. */
    private final ScaledFp8Layout scaledFp8;
    private final LongConsumer progress;
    /** Elements of the largest tensor in the file: the size of each scratch tensor. */
    private final long scratchElements;
    private final Map<DType, Tensor> scratch = new EnumMap<>(DType.class);
    /** The header entry of every tree node, once checked. */
    private final Map<Node, SafeTensors.TensorInfo> infos = new HashMap<>();
    private final Parts parts = new Parts();

    private WanDitLoader(Backend backend, SafeTensors checkpoint, WanDitConfig config, ComputePrecision precision,
                         Quantization quantization, boolean dequantizeFp8AtLoad, boolean fp8Compute, LongConsumer progress) {
        this.backend = backend;
        this.checkpoint = checkpoint;
        this.tree = WanDitTree.of(config);
        this.quantization = quantization;
        this.dequantizeFp8AtLoad = dequantizeFp8AtLoad;
        this.fp8Compute = fp8Compute;
        this.computeDType = precision.activationDType();
        this.unconsumed = new LinkedHashSet<>(checkpoint.keys());
        this.scaledFp8 = ScaledFp8Layout.of(checkpoint);
        if (scaledFp8 != null) unconsumed.removeAll(scaledFp8.auxiliary());
        this.progress = progress;
        long largest = 0;
        for (String key : checkpoint.keys()) largest = Math.max(largest, checkpoint.info(key).numElements());
        this.scratchElements = largest;
    }

    /** {@link WanDitWeights#load}: see the class comment. */
    static WanDitWeights load(Backend backend, SafeTensors checkpoint, WanDitConfig config, ComputePrecision precision,
                              Quantization quantization, boolean dequantizeFp8AtLoad, boolean fp8Compute, BlockSwap swap,
                              LongConsumer bytesRead) {
        WanDitWeights.checkSwap(config, swap);
        WanDitLoader loader = new WanDitLoader(backend, checkpoint, config, precision, quantization, dequantizeFp8AtLoad,
                fp8Compute, bytesRead);
        int firstSwapped = swap.firstSwapped(config.numLayers());
        StreamedBlocks streamed = null;
        try (FileReadAhead readAhead = FileReadAhead.start(checkpoint.files())) {
            loader.checkKeySet();
            List<Node> order = loader.checkedInFileOrder();
            if (swap.count() > 0) {
                streamed = StreamedBlocks.open(backend, loader.tree.blockLinearLayout(firstSwapped, loader::form), swap,
                        config.numLayers());
            }
            for (Node node : order) {
                if (node.role() == Role.BLOCK_LINEAR_WEIGHT && node.block() >= firstSwapped) {
                    streamed.put(node.block(), loader.tree.blockLinear(node), loader.heldBlockLinearWeight(node),
                            loader.parts.owned);
                    loader.parts.putStreamed(node);
                } else if (node.role() == Role.BLOCK_LINEAR_WEIGHT) {
                    Tensor[] held = loader.heldBlockLinearWeight(node);
                    if (held.length == 2) loader.parts.putQuantized(node, held[0], held[1]);
                    else loader.parts.put(node, held[0]);
                } else {
                    loader.parts.put(node, loader.tensor(node.key(), node.shape()));
                }
            }
            if (streamed != null) streamed.flush(loader.parts.owned);
            loader.finish();
            return WanDitWeights.of(loader.tree, quantization, swap, streamed, loader.parts);
        } catch (RuntimeException e) {
            backend.synchronize(); // queued conversions may still read the scratch tensors
            loader.closeScratch();
            loader.parts.owned.forEach(Tensor::close);
            if (streamed != null) streamed.close();
            throw e;
        }
    }

    /** File bytes {@link #load} reads from {@code checkpoint}: every tensor but the scaled-fp8 scales and markers. */
    static long loadBytes(SafeTensors checkpoint) {
        ScaledFp8Layout layout = ScaledFp8Layout.of(checkpoint);
        long n = 0;
        for (String key : checkpoint.keys()) {
            if (layout == null || !layout.auxiliary().contains(key)) n += checkpoint.info(key).byteLength();
        }
        return n;
    }

    /** Spec §3.1: an fp8 file needs --fp8_base and refuses --fp8_scaled (musubi raises the same way). */
    private void checkKeySet() {
        String probe = WanDitTree.blockLinearWeightKey(0, BlockLinear.CROSS_ATTN_K);
        if (!checkpoint.contains(probe)) return; // reported as a missing key below
        DType fileDType = checkpoint.info(probe).dtype();
        boolean isFp8File = fileDType == DType.F8_E4M3 || fileDType == DType.F8_E5M2;
        String kind = scaledFp8 != null ? " (" + scaledFp8.format() + ")" : "";
        if (isFp8File && quantization == Quantization.FP8_SCALED) {
            throw new IllegalArgumentException(name() + ": the checkpoint is already " + fileDType
                    + kind + " (an fp8 file), which --fp8_scaled cannot re-quantize; drop --fp8_scaled (keep --fp8_base)"
                    + " or use the bf16 checkpoint");
        }
        if (fp8Compute && quantization == Quantization.NONE) {
            throw Fp8ComputeWeights.needsFp8Weights(name() + (isFp8File ? " (an fp8 file)" : ""));
        }
        if (isFp8File && quantization == Quantization.NONE) {
            throw new IllegalArgumentException(name() + ": the checkpoint is " + fileDType
                    + kind + " (an fp8 file); add --fp8_base to train on it, or use the bf16 checkpoint");
        }
    }

    /**
     * Checks every node of the tree against the file (in tree order, so the first problem named is the first in the
     * model) and that the file has no other tensor; returns the nodes in the order of their bytes in the file.
     */
    private List<Node> checkedInFileOrder() {
        for (Node node : tree.nodes()) infos.put(node, checked(node.key(), node.shape()));
        if (!unconsumed.isEmpty()) {
            List<String> extra = new ArrayList<>(unconsumed);
            throw new IllegalArgumentException(name() + ": " + extra.size() + " unexpected key(s) for a Wan2.1 T2V DiT"
                    + " with " + tree.config().numLayers() + " blocks: " + String.join(", ", extra.subList(0,
                    Math.min(4, extra.size()))) + (extra.size() > 4 ? ", …" : "")
                    + "; expected exactly the keys of spec §2.3 (is this a different model or a LoRA file?)");
        }
        Map<String, Integer> position = new HashMap<>();
        for (String key : checkpoint.keysInFileOrder()) position.put(key, position.size());
        List<Node> order = new ArrayList<>(tree.nodes());
        order.sort(Comparator.comparingInt(n -> position.get(n.key())));
        return order;
    }

    /** How {@link #blockLinearWeight} holds a block Linear weight: its streamer entries. */
    private LinearForm form(Node weight) {
        if (fp8Compute) return LinearForm.FP8_COMPUTE;
        if (quantization == Quantization.NONE || dequantizeFp8AtLoad) return new LinearForm(false, computeDType);
        return new LinearForm(true, scaleDType(weight.key(), infos.get(weight)));
    }

    /**
     * The scale dtype of a quantized block Linear weight: the compute dtype for a scaled fp8 file's per-tensor scale
     * (see {@link #quantized}); BF16 for FP8_BASE's unit scales; under FP8_SCALED the weight's dtype, as musubi
     * computes and stores it, with F16 (and F32) scales held as F32 (exact values; dequantizeFp8 then rounds the
     * product to F32 instead of F16: no Wan release ships fp16 + fp8_scaled).
     */
    private DType scaleDType(String key, SafeTensors.TensorInfo info) {
        if (scaledFp8 != null && scaledFp8.scaleOf(key) != null) return computeDType;
        if (quantization == Quantization.FP8_BASE) return DType.BF16;
        return info.dtype() == DType.BF16 ? DType.BF16 : DType.F32;
    }

    /** Waits for every queued copy and conversion, then frees the scratch tensors. */
    private void finish() {
        backend.synchronize();
        closeScratch();
    }

    private void closeScratch() {
        scratch.values().forEach(Tensor::close);
        scratch.clear();
    }

    /** {@link #blockLinearWeight}, re-quantized per tensor under {@code --fp8_compute} ({@link Fp8ComputeWeights}). */
    private Tensor[] heldBlockLinearWeight(Node node) {
        Tensor[] held = blockLinearWeight(node);
        return fp8Compute ? Fp8ComputeWeights.requantize(backend, held, computeDType, parts.owned) : held;
    }

    /**
     * A block Linear weight (an fp8 target, spec §3.2) as it is kept: {codes, scale} when fp8 codes stay on the device,
     * else {weight} in the compute dtype (dequantized once under FP8_SCALED or for a scaled fp8 file).
     */
    private Tensor[] blockLinearWeight(Node node) {
        if (quantization != Quantization.NONE && !dequantizeFp8AtLoad) return quantized(node.key(), node.shape());
        if (quantization == Quantization.FP8_SCALED || isScaled(node.key())) {
            return new Tensor[] {dequantized(quantized(node.key(), node.shape()))};
        }
        return new Tensor[] {tensor(node.key(), node.shape())};
    }

    /**
     * A non-quantized tensor in the compute dtype: the file's values (widened or rounded once), after the plain fp8
     * cast under FP8_BASE, times its scale in a scaled fp8 file (see {@link ScaledFp8Layout} for the numerics).
     */
    private Tensor tensor(String key, Shape expected) {
        SafeTensors.TensorInfo info = checkpoint.info(key);
        Tensor t = backend.allocate(computeDType, expected);
        parts.owned.add(t);
        DType fileDType = info.dtype();
        if (quantization == Quantization.FP8_BASE && fileDType != DType.F8_E4M3) {
            // torch's .to(float8_e4m3fn) (round to nearest even, no saturation), then the exact upcast at use
            Tensor codes = scratchView(DType.F8_E4M3, expected);
            backend.copy(codes, fileBytes(key, info, expected));
            backend.copy(t, codes);
        } else if (fileDType == computeDType) {
            read(t, key, info);
        } else {
            backend.copy(t, fileBytes(key, info, expected));
        }
        Float s = scaledFp8 == null ? null : scaledFp8.scaleOf(key);
        if (s != null) backend.scale(t, t, roundToCompute(s)); // dtype(dtype(q) · dtype(s)): the product is exact in fp32
        return t;
    }

    /** {codes (O, I) F8_E4M3, scale (O, I/64, 1)} of a block Linear weight under FP8_BASE or FP8_SCALED. */
    private Tensor[] quantized(String key, Shape expected) {
        SafeTensors.TensorInfo info = checkpoint.info(key);
        long out = expected.dim(0), in = expected.dim(1);
        if (in % 64 != 0) {
            throw new IllegalArgumentException(name() + ": " + key + " has in-features " + in
                    + ", not a multiple of the fp8 block size 64; expected a Wan2.1 DiT");
        }
        Shape scaleShape = Shape.of(out, in / 64, 1);
        Tensor codes = backend.allocate(DType.F8_E4M3, expected);
        parts.owned.add(codes);
        Tensor scale = backend.allocate(scaleDType(key, info), scaleShape);
        parts.owned.add(scale);
        Float fileScale = scaledFp8 == null ? null : scaledFp8.scaleOf(key);
        if (fileScale != null) {
            // A scaled fp8 file: the codes as stored, the per-tensor scale s in every block, held in the compute
            // dtype so dequantizeFp8 gives dtype(dtype(q) · dtype(s)), ComfyUI's weight (ScaledFp8Layout).
            backend.fill(scale, fileScale);
            copyCodes(codes, key, info, expected);
        } else if (quantization == Quantization.FP8_BASE) {
            // Plain cast (spec §3.1) = block quantization with unit scales: dequantizeFp8 then gives bf16(w_q) exactly.
            backend.fill(scale, 1f);
            copyCodes(codes, key, info, expected);
        } else {
            backend.quantizeFp8(codes, scale, fileBytes(key, info, expected));
        }
        return new Tensor[] {codes, scale};
    }

    /** codes = the file's e4m3 bytes, or its values cast to e4m3 (round to nearest even, as torch's .to()). */
    private void copyCodes(Tensor codes, String key, SafeTensors.TensorInfo info, Shape expected) {
        if (info.dtype() == DType.F8_E4M3) {
            read(codes, key, info);
        } else {
            backend.copy(codes, fileBytes(key, info, expected));
        }
    }

    /** The compute-dtype weight bf16(bf16(w_q)·scale) of a quantized pair; frees the pair. */
    private Tensor dequantized(Tensor[] codesAndScale) {
        Tensor out = backend.allocate(computeDType, codesAndScale[0].shape());
        parts.owned.add(out);
        backend.dequantizeFp8(out, codesAndScale[0], codesAndScale[1]);
        for (Tensor t : codesAndScale) {
            parts.owned.remove(t);
            t.close();
        }
        return out;
    }

    private boolean isScaled(String weightKey) { return scaledFp8 != null && scaledFp8.scaleOf(weightKey) != null; }

    /** The file's bytes of {@code key} in a scratch tensor of the file's dtype (queued on the backend). */
    private Tensor fileBytes(String key, SafeTensors.TensorInfo info, Shape shape) {
        Tensor view = scratchView(info.dtype(), shape);
        read(view, key, info);
        return view;
    }

    /** dst's bytes = the file's bytes of key (dst has the file's dtype); reports the bytes read. */
    private void read(Tensor dst, String key, SafeTensors.TensorInfo info) {
        backend.writeBytes(dst, checkpoint.source(key));
        progress.accept(info.byteLength());
    }

    private Tensor scratchView(DType dtype, Shape shape) {
        Tensor s = scratch.get(dtype);
        if (s == null) {
            s = backend.allocate(dtype, Shape.of(scratchElements));
            scratch.put(dtype, s);
        }
        return s.view(0, shape);
    }

    private float roundToCompute(float v) { return computeDType == DType.BF16 ? Bf16.round(v) : v; }

    private SafeTensors.TensorInfo checked(String key, Shape expected) {
        if (!checkpoint.contains(key)) {
            throw new IllegalArgumentException(name() + ": missing key " + key + " (expected shape " + expected
                    + "); expected a complete Wan2.1 T2V DiT with " + tree.config().numLayers() + " blocks");
        }
        SafeTensors.TensorInfo info = checkpoint.info(key);
        if (!info.shape().equals(expected)) {
            throw new IllegalArgumentException(info.file().getFileName() + ": key " + key + " has shape "
                    + info.shape() + ", expected " + expected + " (dim " + tree.config().dim() + ", ffn_dim "
                    + tree.config().ffnDim() + ")");
        }
        if (!info.dtype().isFloatingPoint() || info.dtype() == DType.F64) {
            throw new IllegalArgumentException(info.file().getFileName() + ": key " + key + " is " + info.dtype()
                    + ", expected a floating dtype (BF16, F16, F32 or F8_E4M3)");
        }
        unconsumed.remove(key);
        return info;
    }

    private String name() { return checkpoint.path().getFileName().toString(); }
}
