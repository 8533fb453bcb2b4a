package dev.wanlora.models.lora;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * musubi's LoRA network on a Wan2.1 DiT (spec §7): ten adapters per block (self_attn q/k/v/o, cross_attn q/k/v/o,
 * ffn.0, ffn.2), in musubi's module order (block by block, then {@link BlockLinear} order). Parameters and gradients
 * are F32 tensors on one backend. Network dropout options are not supported (musubi's defaults leave them off).
 */
public final class LoraNetwork implements AutoCloseable {

    private final List<LoraModule> modules;
    /** modules by (block, layer): byBlock[i][layer.ordinal()]. */
    private final LoraModule[][] byBlock;

    private LoraNetwork(List<LoraModule> modules, int numLayers) {
        this.modules = List.copyOf(modules);
        this.byBlock = new LoraModule[numLayers][BlockLinear.values().length];
        for (LoraModule m : modules) byBlock[m.blockIndex()][m.layer().ordinal()] = m;
    }

    /**
     * A fresh network as musubi initialises it (lora.py L75-76): down ~ U(−1/√I, 1/√I), which is torch's
     * {@code kaiming_uniform_(a=√5)} bound √(6/((1+a²)·I)) = 1/√I; up = 0. The uniforms come from one
     * {@link SplittableRandom}(seed), consumed module by module in {@link #modules()} order and row-major within a
     * tensor: element = (2·u − 1)·bound with u = nextDouble(). (torch's generator cannot be reproduced bit for bit;
     * only the distribution matches.)
     *
     * @param alpha musubi's {@code --network_alpha}; 0 means alpha = rank
     */
    public static LoraNetwork create(Backend backend, WanDitConfig config, int rank, float alpha, long seed) {
        if (rank <= 0) {
            throw new IllegalArgumentException("--network_dim must be positive; got " + rank);
        }
        float effectiveAlpha = alpha == 0 ? rank : alpha;
        SplittableRandom random = new SplittableRandom(seed);
        List<LoraModule> modules = new ArrayList<>();
        for (int i = 0; i < config.numLayers(); i++) {
            for (BlockLinear layer : BlockLinear.values()) {
                Shape w = layer.weightShape(config);
                long out = w.dim(0), in = w.dim(1);
                float[] down = new float[Math.toIntExact(rank * in)];
                double bound = 1 / Math.sqrt(in);
                for (int k = 0; k < down.length; k++) down[k] = (float) ((2 * random.nextDouble() - 1) * bound);
                modules.add(module(backend, i, layer, backend.fromFloats(DType.F32, Shape.of(rank, in), down),
                        backend.allocate(DType.F32, Shape.of(out, rank)), effectiveAlpha, rank));
            }
        }
        return new LoraNetwork(modules, config.numLayers());
    }

    /**
     * A network from saved weights (e.g. {@link LoraFile#read}'s modules, any layout), copied to F32. Every module of
     * the config must be present, with matching in/out features, and nothing else; alpha 0 means alpha = rank.
     *
     * @param source where the weights came from, for error messages (a file name)
     * @throws IllegalArgumentException naming the source and module for a missing, extra or mis-shaped module
     */
    public static LoraNetwork fromWeights(Backend backend, WanDitConfig config, List<LoraModuleWeights> weights,
                                          String source) {
        Map<String, LoraModuleWeights> byName = new LinkedHashMap<>();
        for (LoraModuleWeights w : weights) byName.put(w.name(), w);
        List<LoraModule> modules = new ArrayList<>();
        try {
            for (int i = 0; i < config.numLayers(); i++) {
                for (BlockLinear layer : BlockLinear.values()) {
                    String name = LoraModule.nameOf(i, layer);
                    LoraModuleWeights w = byName.remove(name);
                    if (w == null) {
                        throw new IllegalArgumentException(source + ": missing LoRA module " + name + "; expected musubi's"
                                + " lora_wan modules (lora_unet_blocks_{i}_{self_attn|cross_attn}_{q|k|v|o}, _ffn_{0|2}) for "
                                + config.numLayers() + " blocks");
                    }
                    Shape shape = layer.weightShape(config);
                    if (w.inFeatures() != shape.dim(1) || w.outFeatures() != shape.dim(0)) {
                        throw new IllegalArgumentException(source + ": LoRA module " + name + " adapts " + w.inFeatures()
                                + " → " + w.outFeatures() + " features, expected " + shape.dim(1) + " → " + shape.dim(0)
                                + " (" + layer.modulePath() + " of a dim-" + config.dim() + " model)");
                    }
                    modules.add(module(backend, i, layer,
                            backend.fromFloats(DType.F32, Shape.of(w.rank(), w.inFeatures()), w.down()),
                            backend.fromFloats(DType.F32, Shape.of(w.outFeatures(), w.rank()), w.up()),
                            w.alpha() == 0 ? w.rank() : w.alpha(), w.rank()));
                }
            }
            if (!byName.isEmpty()) {
                List<String> extra = new ArrayList<>(byName.keySet());
                throw new IllegalArgumentException(source + ": " + extra.size() + " unexpected LoRA module(s) "
                        + String.join(", ", extra.subList(0, Math.min(3, extra.size()))) + (extra.size() > 3 ? ", …" : "")
                        + "; expected only the 10 adapters per block of musubi's lora_wan for " + config.numLayers()
                        + " blocks");
            }
        } catch (RuntimeException e) {
            new LoraNetwork(modules, config.numLayers()).close();
            throw e;
        }
        return new LoraNetwork(modules, config.numLayers());
    }

    /** Host copies of every module's parameters (for {@link LoraFile#write}), in {@link #modules()} order. */
    public List<LoraModuleWeights> toWeights() {
        List<LoraModuleWeights> out = new ArrayList<>();
        for (LoraModule m : modules) {
            Backend backend = m.down().backend();
            out.add(new LoraModuleWeights(m.name(), m.rank(), (int) m.down().shape().dim(1), (int) m.up().shape().dim(0),
                    m.alpha(), backend.toFloats(m.down()), backend.toFloats(m.up())));
        }
        return out;
    }

    private static LoraModule module(Backend backend, int block, BlockLinear layer, Tensor down, Tensor up, float alpha,
                                     int rank) {
        return new LoraModule(LoraModule.nameOf(block, layer), block, layer.modulePath(), layer, down, up,
                backend.allocate(DType.F32, down.shape()), backend.allocate(DType.F32, up.shape()), alpha, rank);
    }

    /** Every adapter in musubi's order (block by block, then self_attn q,k,v,o, cross_attn q,k,v,o, ffn.0, ffn.2). */
    public List<LoraModule> modules() { return modules; }

    /** The adapter on {@code layer} of block {@code blockIndex}. */
    public LoraModule module(int blockIndex, BlockLinear layer) { return byBlock[blockIndex][layer.ordinal()]; }

    /** Sets every dDown and dUp to 0 (gradients accumulate, so call this before each step). */
    public void zeroGrad() {
        for (LoraModule m : modules) {
            m.dDown().backend().fill(m.dDown(), 0);
            m.dUp().backend().fill(m.dUp(), 0);
        }
    }

    /** Number of trainable parameters (Σ R·(I + O)). */
    public long numParameters() {
        long n = 0;
        for (LoraModule m : modules) n += m.down().numElements() + m.up().numElements();
        return n;
    }

    @Override
    public void close() {
        for (LoraModule m : modules) {
            m.down().close();
            m.up().close();
            m.dDown().close();
            m.dUp().close();
        }
    }
}
