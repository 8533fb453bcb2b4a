package dev.wanlora.models.lora;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.BlockAdapters;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Predicate;

/**
 * musubi's LoRA network on a Wan2.1 DiT (spec §7): ten adapters per block (self_attn q/k/v/o, cross_attn q/k/v/o,
 * ffn.0, ffn.2), in musubi's module order (block by block, then {@link BlockLinear} order), or the subset a
 * selection keeps ({@code --network_args exclude_patterns/include_patterns}, {@link NetworkArgs}); a block Linear
 * without an adapter has none ({@link #module} returns null). Parameters and gradients are F32 tensors on one backend.
 * Network dropout options are not supported (musubi's defaults leave them off).
 *
 * <p><b>Storage.</b> Every parameter lives in one flat F32 buffer ({@link #parameters()}), module by module in
 * {@link #modules()} order, down then up, back to back; the gradients likewise ({@link #gradients()}). Each module's
 * tensors are views into them. So whole-network work is one op, not one per tensor: zeroing the gradients, their
 * norm, an optimizer update, the bf16 copy a step computes with ({@link #views} lays out any flat tensor the same
 * way). On a 14B DiT that is 800 tensors, whose per-tensor launches kept the GPU waiting for the host.
 */
public final class LoraNetwork implements BlockAdapters, AutoCloseable {

    private final Backend backend; // holds parameters and gradients
    private final List<LoraModule> modules;
    /** modules by (block, layer): byBlock[i][layer.ordinal()]. */
    private final LoraModule[][] byBlock;
    private final Tensor parameters; // (P) F32: every module's down then up, in module order
    private final Tensor gradients;  // (P) F32: dDown then dUp, same layout
    /** Element offset of each module's down in the flat layout, by module index; up follows down. */
    private final long[] offsets;

    private LoraNetwork(Backend backend, List<LoraModule> modules, int numLayers, Tensor parameters, Tensor gradients,
                        long[] offsets) {
        this.backend = backend;
        this.modules = List.copyOf(modules);
        this.byBlock = new LoraModule[numLayers][BlockLinear.values().length];
        for (LoraModule m : modules) byBlock[m.blockIndex()][m.layer().ordinal()] = m;
        this.parameters = parameters;
        this.gradients = gradients;
        this.offsets = offsets;
    }

    /** musubi's original_name of a block Linear, the name its include/exclude patterns match: blocks.{i}.self_attn.q. */
    public static String originalName(int blockIndex, BlockLinear layer) {
        return "blocks." + blockIndex + "." + layer.modulePath();
    }

    /** The (block, layer) pairs {@code selected} keeps (by {@link #originalName}), in musubi's module order. */
    private static List<int[]> slots(WanDitConfig config, Predicate<String> selected) {
        List<int[]> slots = new ArrayList<>();
        for (int i = 0; i < config.numLayers(); i++) {
            for (BlockLinear layer : BlockLinear.values()) {
                if (selected.test(originalName(i, layer))) slots.add(new int[] {i, layer.ordinal()});
            }
        }
        return slots;
    }

    /** Builds the network over fresh zeroed flat buffers; {@code fill} writes each module's initial down and up. */
    private static LoraNetwork build(Backend backend, WanDitConfig config, List<int[]> slots, int[] ranks, float[] alphas,
                                     ModuleInit fill) {
        long[] offsets = new long[slots.size()];
        long total = 0;
        for (int k = 0; k < slots.size(); k++) {
            Shape w = BlockLinear.values()[slots.get(k)[1]].weightShape(config);
            offsets[k] = total;
            total += (long) ranks[k] * (w.dim(0) + w.dim(1));
        }
        Tensor parameters = backend.allocate(DType.F32, Shape.of(total));
        Tensor gradients;
        try {
            gradients = backend.allocate(DType.F32, Shape.of(total));
        } catch (RuntimeException e) {
            parameters.close();
            throw e;
        }
        List<LoraModule> modules = new ArrayList<>();
        try {
            for (int k = 0; k < slots.size(); k++) {
                int i = slots.get(k)[0];
                BlockLinear layer = BlockLinear.values()[slots.get(k)[1]];
                Shape w = layer.weightShape(config);
                long out = w.dim(0), in = w.dim(1), at = offsets[k];
                int rank = ranks[k];
                Shape downShape = Shape.of(rank, in), upShape = Shape.of(out, rank);
                long upAt = at + downShape.numElements();
                LoraModule m = new LoraModule(LoraModule.nameOf(i, layer), i, layer.modulePath(), layer,
                        parameters.view(at, downShape), parameters.view(upAt, upShape), gradients.view(at, downShape),
                        gradients.view(upAt, upShape), alphas[k], rank);
                fill.write(k, m);
                modules.add(m);
            }
        } catch (RuntimeException e) {
            parameters.close();
            gradients.close();
            throw e;
        }
        return new LoraNetwork(backend, modules, config.numLayers(), parameters, gradients, offsets);
    }

    /** Writes module {@code index}'s initial values into its (zeroed) down and up. */
    private interface ModuleInit {
        void write(int index, LoraModule module);
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
        return create(backend, config, rank, alpha, seed, name -> true);
    }

    /**
     * As {@link #create(Backend, WanDitConfig, int, float, long)}, with adapters only on the block Linears whose
     * {@link #originalName} {@code selected} keeps (at least one).
     */
    public static LoraNetwork create(Backend backend, WanDitConfig config, int rank, float alpha, long seed,
                                     Predicate<String> selected) {
        if (rank <= 0) {
            throw new IllegalArgumentException("--network_dim must be positive; got " + rank);
        }
        float effectiveAlpha = alpha == 0 ? rank : alpha;
        List<int[]> slots = slots(config, selected);
        if (slots.isEmpty()) {
            throw new IllegalArgumentException("--network_args: the include/exclude patterns leave no module to train; expected"
                    + " at least one of blocks.{i}.{self_attn|cross_attn}.{q|k|v|o}, blocks.{i}.ffn.{0|2}");
        }
        int count = slots.size();
        int[] ranks = new int[count];
        float[] alphas = new float[count];
        Arrays.fill(ranks, rank);
        Arrays.fill(alphas, effectiveAlpha);
        SplittableRandom random = new SplittableRandom(seed);
        return build(backend, config, slots, ranks, alphas, (k, m) -> {
            long in = m.down().shape().dim(1);
            float[] down = new float[Math.toIntExact(m.down().numElements())];
            double bound = 1 / Math.sqrt(in);
            for (int i = 0; i < down.length; i++) down[i] = (float) ((2 * random.nextDouble() - 1) * bound);
            backend.write(m.down(), down);
        });
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
        return fromWeights(backend, config, weights, source, name -> true);
    }

    /**
     * As {@link #fromWeights(Backend, WanDitConfig, List, String)} for the modules {@code selected} keeps (by
     * {@link #originalName}): exactly those must be present.
     */
    public static LoraNetwork fromWeights(Backend backend, WanDitConfig config, List<LoraModuleWeights> weights,
                                          String source, Predicate<String> selected) {
        Map<String, LoraModuleWeights> byName = new LinkedHashMap<>();
        for (LoraModuleWeights w : weights) byName.put(w.name(), w);
        List<LoraModuleWeights> ordered = new ArrayList<>();
        List<int[]> slots = slots(config, selected);
        for (int[] slot : slots) {
            int i = slot[0];
            BlockLinear layer = BlockLinear.values()[slot[1]];
            String name = LoraModule.nameOf(i, layer);
            LoraModuleWeights w = byName.remove(name);
            if (w == null) {
                throw new IllegalArgumentException(source + ": missing LoRA module " + name + "; expected musubi's"
                        + " lora_wan modules (lora_unet_blocks_{i}_{self_attn|cross_attn}_{q|k|v|o}, _ffn_{0|2}) for "
                        + config.numLayers() + " blocks" + (slots.size() < config.numLayers() * BlockLinear.values().length
                        ? " that --network_args include/exclude_patterns select" : ""));
            }
            Shape shape = layer.weightShape(config);
            if (w.inFeatures() != shape.dim(1) || w.outFeatures() != shape.dim(0)) {
                throw new IllegalArgumentException(source + ": LoRA module " + name + " adapts " + w.inFeatures()
                        + " → " + w.outFeatures() + " features, expected " + shape.dim(1) + " → " + shape.dim(0)
                        + " (" + layer.modulePath() + " of a dim-" + config.dim() + " model)");
            }
            ordered.add(w);
        }
        if (!byName.isEmpty()) {
            List<String> extra = new ArrayList<>(byName.keySet());
            throw new IllegalArgumentException(source + ": " + extra.size() + " unexpected LoRA module(s) "
                    + String.join(", ", extra.subList(0, Math.min(3, extra.size()))) + (extra.size() > 3 ? ", …" : "")
                    + "; expected only the 10 adapters per block of musubi's lora_wan for " + config.numLayers()
                    + " blocks" + (slots.size() < config.numLayers() * BlockLinear.values().length
                    ? ", less those --network_args exclude_patterns remove" : ""));
        }
        int[] ranks = new int[ordered.size()];
        float[] alphas = new float[ordered.size()];
        for (int k = 0; k < ordered.size(); k++) {
            ranks[k] = ordered.get(k).rank();
            alphas[k] = ordered.get(k).alpha() == 0 ? ordered.get(k).rank() : ordered.get(k).alpha();
        }
        return build(backend, config, slots, ranks, alphas, (k, m) -> {
            backend.write(m.down(), ordered.get(k).down());
            backend.write(m.up(), ordered.get(k).up());
        });
    }

    /** Host copies of every module's parameters (for {@link LoraFile#write}), in {@link #modules()} order. */
    public List<LoraModuleWeights> toWeights() {
        List<LoraModuleWeights> out = new ArrayList<>();
        for (LoraModule m : modules) {
            out.add(new LoraModuleWeights(m.name(), m.rank(), (int) m.down().shape().dim(1), (int) m.up().shape().dim(0),
                    m.alpha(), backend.toFloats(m.down()), backend.toFloats(m.up())));
        }
        return out;
    }

    /** Every adapter in musubi's order (block by block, then self_attn q,k,v,o, cross_attn q,k,v,o, ffn.0, ffn.2). */
    @Override
    public List<LoraModule> modules() { return modules; }

    /** The adapter on {@code layer} of block {@code blockIndex}. */
    @Override
    public LoraModule module(int blockIndex, BlockLinear layer) { return byBlock[blockIndex][layer.ordinal()]; }

    /**
     * Every parameter, (P) F32: module by module in {@link #modules()} order, each module's down (R·I) then up (O·R).
     * Module tensors are views into it.
     */
    @Override
    public Tensor parameters() { return parameters; }

    /** Every gradient, (P) F32, laid out as {@link #parameters()}. */
    public Tensor gradients() { return gradients; }

    /**
     * Module {@code m}'s {down (R, I), up (O, R)} as views into {@code flat}, a tensor of {@link #parameters()}'s
     * element count in any dtype laid out the same way (e.g. the bf16 copy a step computes with).
     */
    @Override
    public Tensor[] views(Tensor flat, Adapter m) {
        if (flat.numElements() != parameters.numElements()) {
            throw new IllegalArgumentException("LoraNetwork.views: flat tensor has " + flat.numElements()
                    + " elements, expected " + parameters.numElements() + " (the network's parameters)");
        }
        int k = modules.indexOf(m);
        if (k < 0) throw new IllegalArgumentException("LoraNetwork.views: module " + m.name() + " is not in this network");
        long at = offsets[k];
        return new Tensor[] {flat.view(at, m.down().shape()), flat.view(at + m.down().numElements(), m.up().shape())};
    }

    /** Sets every dDown and dUp to 0 (gradients accumulate, so call this before each step). */
    public void zeroGrad() {
        backend.fill(gradients, 0);
    }

    /** Number of trainable parameters (Σ R·(I + O)). */
    public long numParameters() {
        return parameters.numElements();
    }

    @Override
    public void close() {
        parameters.close();
        gradients.close();
    }
}
