package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitTree.BlockNodes;
import dev.wanlora.models.wan.WanDitTree.BlockTensor;
import dev.wanlora.models.wan.WanDitTree.Init;
import dev.wanlora.models.wan.WanDitTree.LinearForm;
import dev.wanlora.models.wan.WanDitTree.LinearNode;
import dev.wanlora.models.wan.WanDitTree.Node;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Parts;
import dev.wanlora.models.wan.WanDitWeights.Quantization;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;

/**
 * Random Wan2.1 T2V DiT weights, walking the {@link WanDitTree}: a checkpoint file's tensors drawn on the host
 * ({@link #checkpoint}) and weights drawn on a backend ({@link #onBackend}). Both draw in a fixed order from a seeded
 * stream, so a seed always gives the same bits: demo runs, seeded test checkpoints and bench weights depend on it
 * (WanDitWeightsPinnedTest pins them). Each walk's order is spelled out below; changing it changes every value.
 */
final class WanDitRandom {
    private WanDitRandom() {}

    /**
     * A Wan2.1 T2V checkpoint for {@code config} with random BF16 weights, as the tensors of a safetensors file: for
     * {@code wanlora demo} and tests, which need a model without a download. Values follow Wan's from-scratch
     * initialisation ({@link Init}): Linear weights xavier-uniform U(±√(6/(in+out))) with zero biases, the patch
     * embedding likewise over its flattened (C, Cin·4) weight, text and time embeddings N(0, 0.02²), modulations
     * N(0, 1)/√C, norm weights 1 and the norm3 bias 0. One deliberate difference: {@code head.head.weight} is
     * xavier-uniform, not zero, since a zero head passes no gradient to any LoRA and a demo would learn nothing.
     *
     * <p>Order (entries and draws): the Linears outside the blocks and head.modulation in tree order, then per block its
     * modulation, its ten Linears (weight, bias) and its norms in tree order.
     */
    static List<SafeTensorsWriter.Entry> checkpoint(WanDitConfig config, long seed) {
        WanDitTree tree = WanDitTree.of(config);
        SplittableRandom random = new SplittableRandom(seed);
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        List<Node> order = new ArrayList<>();
        for (WanDitTree.Embedding e : WanDitTree.Embedding.values()) {
            order.add(tree.embedding(e).weight());
            order.add(tree.embedding(e).bias());
        }
        order.add(tree.headModulation());
        for (BlockNodes b : tree.blocks()) {
            order.add(b.tensor(BlockTensor.MODULATION));
            for (LinearNode l : b.linears().values()) {
                order.add(l.weight());
                order.add(l.bias());
            }
            for (BlockTensor t : BlockTensor.values()) if (t != BlockTensor.MODULATION) order.add(b.tensor(t));
        }
        double c = config.dim();
        for (Node n : order) {
            long out = n.shape().dim(0);
            double bound = Math.sqrt(6.0 / (n.numElements() / out + out));
            DoubleSupplier value = switch (n.init()) {
                case XAVIER -> () -> (2 * random.nextDouble() - 1) * bound;
                case EMBEDDING -> () -> random.nextGaussian() * 0.02;
                case MODULATION -> () -> random.nextGaussian() / Math.sqrt(c);
                case ONE -> () -> 1;
                case ZERO -> () -> 0;
            };
            float[] v = new float[Math.toIntExact(n.numElements())];
            for (int i = 0; i < v.length; i++) v[i] = (float) value.getAsDouble();
            entries.add(SafeTensorsWriter.Entry.ofFloats(n.key(), DType.BF16, n.shape(), v));
        }
        return entries;
    }

    /**
     * Random weights made on the backend itself, for timing and memory runs ({@code wanlora bench}) of a full-size
     * model without a checkpoint: nothing of the size of a weight crosses from the host (except the Linear weights of
     * the {@code swap.count()} streamed blocks, moved into pinned host memory as {@link WanDitWeights#load} does).
     * Every tensor is drawn from {@link Backend#gaussianNoise} (one counter stream from {@code seed}, each tensor at the
     * next offset) and scaled: Linear weights N(0, 2/(in + out)) (the variance of Wan's xavier-uniform init), the text
     * and time embeddings N(0, 0.02²), modulations N(0, 1/C), biases and norm3's bias N(0, 0.01²) (small but never
     * zero, so no kernel sees a special value); norm weights are 1. Under FP8_SCALED a block Linear gets e4m3 codes
     * N(0, 48²) (at most 448 = 9σ, so no code overflows) with one scale σ_w/48 for every block; under FP8_BASE its
     * codes are the N(0, σ_w²) values cast to e4m3 with unit scales, as the loader stores them (the other tensors,
     * which FP8_BASE also rounds to e4m3, keep their values: rounding them changes no op's cost).
     *
     * <p>Order (draws): the tree's ({@link WanDitTree#nodes()}), each Linear's weight before its bias.
     *
     * @param dequantizeFp8AtLoad as in {@link WanDitWeights#load}: store fp8 block weights dequantized (CPU) or as
     *                            codes + scales
     * @param swap                as in {@link WanDitWeights#load}
     * @param fp8Compute          {@code --fp8_compute}: the block Linear weights re-quantized per tensor
     *                            ({@link Fp8ComputeWeights}) after they are drawn as above
     */
    static WanDitWeights onBackend(Backend backend, WanDitConfig config, ComputePrecision precision,
                                   Quantization quantization, boolean dequantizeFp8AtLoad, boolean fp8Compute, BlockSwap swap,
                                   long seed) {
        WanDitWeights.checkSwap(config, swap);
        if (fp8Compute && quantization == Quantization.NONE) throw Fp8ComputeWeights.needsFp8Weights("the random DiT");
        WanDitTree tree = WanDitTree.of(config);
        DeviceRandom random = new DeviceRandom(backend, precision.activationDType(), seed);
        Parts parts = random.parts;
        int firstSwapped = swap.firstSwapped(config.numLayers());
        boolean keepsCodes = quantization != Quantization.NONE && !dequantizeFp8AtLoad;
        StreamedBlocks streamed = null;
        try {
            if (swap.count() > 0) {
                // the scales are held in the compute dtype (FP8_SCALED: σ_w/48; FP8_BASE: 1)
                LinearForm form = fp8Compute ? LinearForm.FP8_COMPUTE : new LinearForm(keepsCodes, precision.activationDType());
                streamed = StreamedBlocks.open(backend, tree.blockLinearLayout(firstSwapped, n -> form), swap,
                        config.numLayers());
            }
            double c = config.dim();
            for (Node n : tree.nodes()) {
                switch (n.role()) {
                    case BLOCK_LINEAR_WEIGHT -> {
                        Tensor[] held = quantization == Quantization.NONE
                                ? new Tensor[] {random.normal(n.shape(), xavierStd(n.shape()))}
                                : random.quantized(n.shape(), quantization, dequantizeFp8AtLoad);
                        if (fp8Compute) {
                            held = Fp8ComputeWeights.requantize(backend, held, precision.activationDType(), parts.owned);
                        }
                        if (n.block() >= firstSwapped) {
                            streamed.put(n.block(), tree.blockLinear(n), held, parts.owned);
                            parts.putStreamed(n);
                        } else if (held.length == 2) {
                            parts.putQuantized(n, held[0], held[1]);
                        } else {
                            parts.put(n, held[0]);
                        }
                    }
                    case LINEAR_WEIGHT -> {
                        Shape matrix = matrixShape(tree, n);
                        parts.put(n, random.normal(matrix, n.init() == Init.XAVIER ? xavierStd(matrix) : 0.02));
                    }
                    default -> parts.put(n, switch (n.init()) {
                        case MODULATION -> random.normal(n.shape(), 1 / Math.sqrt(c));
                        case ONE -> random.ones(n.shape());
                        case ZERO -> random.normal(n.shape(), 0.01);
                        case XAVIER, EMBEDDING -> throw new AssertionError(n);
                    });
                }
            }
            if (streamed != null) streamed.flush(parts.owned);
            return WanDitWeights.of(tree, quantization, swap, streamed, parts);
        } catch (RuntimeException e) {
            parts.owned.forEach(Tensor::close);
            if (streamed != null) streamed.close();
            throw e;
        } finally {
            random.closeScratch();
        }
    }

    /** The (O, I) matrix of a Linear weight outside the blocks (the patch embedding's is not its file shape). */
    private static Shape matrixShape(WanDitTree tree, Node weight) {
        for (WanDitTree.Embedding e : WanDitTree.Embedding.values()) {
            if (tree.embedding(e).weight().equals(weight)) return tree.embedding(e).matrixShape();
        }
        throw new AssertionError(weight);
    }

    /** √(2/(I + O)) of an (O, I) weight: the standard deviation of Wan's xavier-uniform init. */
    private static double xavierStd(Shape weight) { return Math.sqrt(2.0 / (weight.dim(1) + weight.dim(0))); }

    /** Tensors of {@link #onBackend}: a counter-based normal stream on the backend, scaled in place. */
    private static final class DeviceRandom {
        /** Standard deviation of the random e4m3 codes: 448 (the largest code) is 9.3σ, so none overflows. */
        private static final double CODE_STD = 48;

        private final Backend backend;
        private final DType computeDType;
        private final long seed;
        private long offset;
        private Tensor scratch; // (n) compute dtype: the normal values that become e4m3 codes
        final Parts parts = new Parts();

        DeviceRandom(Backend backend, DType computeDType, long seed) {
            this.backend = backend;
            this.computeDType = computeDType;
            this.seed = seed;
        }

        /** N(0, std²) in the compute dtype. */
        Tensor normal(Shape shape, double std) {
            Tensor t = backend.allocate(computeDType, shape);
            parts.owned.add(t);
            backend.gaussianNoise(t, seed, offset);
            offset += t.numElements();
            backend.scale(t, t, (float) std);
            return t;
        }

        Tensor ones(Shape shape) {
            Tensor t = backend.allocate(computeDType, shape);
            parts.owned.add(t);
            backend.fill(t, 1);
            return t;
        }

        /**
         * A block Linear weight (O, I) as the loader keeps it under FP8_SCALED or FP8_BASE, from random codes:
         * {codes, scale}, or {weight} dequantized when {@code dequantizeAtLoad}.
         */
        Tensor[] quantized(Shape shape, Quantization quantization, boolean dequantizeAtLoad) {
            long out = shape.dim(0), in = shape.dim(1);
            double std = xavierStd(shape);
            boolean isScaled = quantization == Quantization.FP8_SCALED;
            Tensor codes = backend.allocate(DType.F8_E4M3, shape);
            parts.owned.add(codes);
            if (scratch == null || scratch.numElements() < shape.numElements()) {
                closeScratch();
                scratch = backend.allocate(computeDType, shape);
            }
            Tensor values = scratch.view(0, shape);
            backend.gaussianNoise(values, seed, offset);
            offset += values.numElements();
            backend.scale(values, values, (float) (isScaled ? CODE_STD : std));
            backend.copy(codes, values);
            Tensor scale = backend.allocate(computeDType, Shape.of(out, in / 64, 1));
            parts.owned.add(scale);
            backend.fill(scale, isScaled ? (float) (std / CODE_STD) : 1f);
            if (!dequantizeAtLoad) return new Tensor[] {codes, scale};
            Tensor weight = backend.allocate(computeDType, shape);
            parts.owned.add(weight);
            backend.dequantizeFp8(weight, codes, scale);
            for (Tensor t : new Tensor[] {codes, scale}) {
                parts.owned.remove(t);
                t.close();
            }
            return new Tensor[] {weight};
        }

        void closeScratch() {
            if (scratch != null) scratch.close();
            scratch = null;
        }
    }
}
