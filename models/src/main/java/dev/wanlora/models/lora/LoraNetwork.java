package dev.wanlora.models.lora;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
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
     * A network from musubi-format tensors ({@code {name}.lora_down.weight} (R, I), {@code {name}.lora_up.weight}
     * (O, R), optional {@code {name}.alpha} scalar: absent or 0 means alpha = rank), copied to F32. Every module of the
     * config must be present, and nothing else.
     *
     * @param source where the tensors came from, for error messages (a file name)
     * @throws IllegalArgumentException naming the source and key for a missing, extra or mis-shaped tensor
     */
    public static LoraNetwork fromWeights(Backend backend, WanDitConfig config, Map<String, Tensor> tensors,
                                          String source) {
        Set<String> unconsumed = new LinkedHashSet<>(tensors.keySet());
        List<LoraModule> modules = new ArrayList<>();
        try {
            for (int i = 0; i < config.numLayers(); i++) {
                for (BlockLinear layer : BlockLinear.values()) {
                    String name = LoraModule.nameOf(i, layer);
                    Shape w = layer.weightShape(config);
                    Tensor down = required(tensors, source, name + ".lora_down.weight");
                    Tensor up = required(tensors, source, name + ".lora_up.weight");
                    int rank = (int) down.shape().dim(0);
                    if (down.shape().rank() != 2 || down.shape().dim(1) != w.dim(1) || !up.shape().equals(Shape.of(w.dim(0), rank))) {
                        throw new IllegalArgumentException(source + ": " + name + " has lora_down " + down.shape()
                                + " and lora_up " + up.shape() + ", expected (R, " + w.dim(1) + ") and (" + w.dim(0)
                                + ", R) for " + layer.modulePath() + " of a dim-" + config.dim() + " model");
                    }
                    Tensor alphaTensor = tensors.get(name + ".alpha");
                    float alpha = alphaTensor == null ? 0 : backend.toFloats(alphaTensor)[0];
                    unconsumed.remove(name + ".lora_down.weight");
                    unconsumed.remove(name + ".lora_up.weight");
                    unconsumed.remove(name + ".alpha");
                    Tensor ownDown = backend.allocate(DType.F32, down.shape());
                    Tensor ownUp = backend.allocate(DType.F32, up.shape());
                    backend.copy(ownDown, down);
                    backend.copy(ownUp, up);
                    modules.add(module(backend, i, layer, ownDown, ownUp, alpha == 0 ? rank : alpha, rank));
                }
            }
            if (!unconsumed.isEmpty()) {
                List<String> extra = new ArrayList<>(unconsumed);
                throw new IllegalArgumentException(source + ": " + extra.size() + " unexpected LoRA key(s) "
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

    private static Tensor required(Map<String, Tensor> tensors, String source, String key) {
        Tensor t = tensors.get(key);
        if (t == null) {
            throw new IllegalArgumentException(source + ": missing LoRA key " + key
                    + "; expected musubi's lora_wan format (lora_unet_blocks_{i}_{self_attn|cross_attn}_{q|k|v|o}, _ffn_{0|2})");
        }
        return t;
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
