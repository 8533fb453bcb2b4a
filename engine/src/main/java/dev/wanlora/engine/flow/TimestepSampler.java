package dev.wanlora.engine.flow;

import dev.wanlora.engine.random.RandomSource;

import java.util.Arrays;
import java.util.logging.Logger;

/**
 * Draws the flow-matching time of each sample in a batch exactly as musubi-tuner's
 * {@code get_noisy_model_input_and_timesteps} does (spec §4.2; musubi {@code src/musubi_tuner/training/trainer_base.py}
 * L485‑731 and {@code dataset/bucket.py} L197‑234 at commit 30c658c4f4b0bf05038b3346eff9670259b10fc7), with our own
 * seeded {@link RandomSource} in place of torch's generators.
 *
 * <p>Every batch yields two numbers per sample: {@code t}, the interpolation weight of the noise
 * (x_t = (1 − t)·x0 + t·noise), and {@code modelTimestep}, what the DiT receives. In uniform/sigmoid/shift modes
 * modelTimestep = 1000·t + 1 (musubi's +1 offset); in sigma mode t = σ and modelTimestep = 1000·σ, no offset.
 * Arithmetic follows torch's float32 tensor ops step by step (each operation rounded to float32).
 *
 * <p><b>Range.</b> {@code --min_timestep/--max_timestep} (defaults 0 and 1000) squeeze t affinely,
 * t ← t·(t_max − t_min) + t_min with t_min = min/1000, which distorts the distribution's shape; with
 * {@code --preserve_distribution_shape} samples outside [t_min, t_max] are rejected instead: musubi draws whole
 * batches up to 1000 times, keeping each accepted sample in order until the batch is full, and if that fails it
 * warns and uses the last (unconstrained) draw. In sigma mode the range limits the index instead.
 *
 * <p><b>Buckets.</b> {@code --num_timestep_buckets N ≥ 2} stratifies the uniform numbers behind t. musubi has two
 * pools: the dataset hands each batch pre-drawn stratified uniforms for the whole epoch
 * ({@link #epochBucketPool}, passed to {@link #sample(int, float[])}), and the rejection loop draws from the
 * trainer's own pool of N shuffled strata (kept in this sampler's state). A uniform u becomes t directly in uniform
 * mode and z = Φ⁻¹(clamp(u, 1e-7, 1 − 1e-7)) in sigmoid/shift modes. Sigma mode ignores buckets, as musubi does.
 *
 * <p><b>State.</b> {@link #state()} captures the generator counter and the trainer bucket pool; a sampler
 * {@link #restore restored} from it continues bit for bit.
 */
public final class TimestepSampler {
    private static final Logger LOG = Logger.getLogger(TimestepSampler.class.getName());
    /** musubi's rejection-loop limit (trainer_base L681). */
    static final int MAX_REJECTION_LOOPS = 1000;
    /** Clamp of u before the normal quantile (trainer_base L523): keeps Φ⁻¹ finite. */
    private static final float QUANTILE_EPS = 1e-7f;

    private final Config config;
    private final RandomSource rng;
    /** Remaining strata of the trainer pool (musubi's timestep_range_pool), popped from the end. */
    private int[] bucketPool;

    /**
     * The sampling flags. minTimestep/maxTimestep are musubi's integer flags with None mapped to 0/1000;
     * numTimestepBuckets ≤ 1 disables bucketing (musubi's None).
     */
    public record Config(TimestepSampling mode, double discreteFlowShift, double sigmoidScale, int minTimestep,
                         int maxTimestep, boolean preserveDistributionShape, int numTimestepBuckets) {
        public Config {
            if (minTimestep < 0 || maxTimestep > 1000 || minTimestep >= maxTimestep) {
                throw new IllegalArgumentException("--min_timestep/--max_timestep: invalid range; got " + minTimestep
                        + ".." + maxTimestep + ", expected 0 ≤ min < max ≤ 1000");
            }
        }

        /** musubi's defaults with the given mode: shift 1.0, sigmoid scale 1.0, range 0..1000, no buckets. */
        public static Config defaults(TimestepSampling mode) {
            return new Config(mode, 1.0, 1.0, 0, 1000, false, 0);
        }
    }

    /** One batch: t (B) for the interpolation, modelTimestep (B) for the DiT's time embedding. */
    public record Batch(float[] t, float[] modelTimestep) {}

    /** Everything needed to continue a sampler exactly: the generator and the trainer bucket pool. */
    public record State(RandomSource.State rng, int[] bucketPool) {
        public State {
            bucketPool = bucketPool.clone();
        }

        @Override
        public int[] bucketPool() {
            return bucketPool.clone();
        }
    }

    public TimestepSampler(Config config, RandomSource rng) {
        this(config, rng, new int[0]);
    }

    private TimestepSampler(Config config, RandomSource rng, int[] bucketPool) {
        this.config = config;
        this.rng = rng;
        this.bucketPool = bucketPool;
    }

    /** A sampler that continues exactly where the one that produced {@code state} was. */
    public static TimestepSampler restore(Config config, State state) {
        return new TimestepSampler(config, RandomSource.restore(state.rng()), state.bucketPool());
    }

    public State state() {
        return new State(rng.state(), bucketPool);
    }

    public Config config() {
        return config;
    }

    /** Samples a batch without dataset-supplied uniforms. */
    public Batch sample(int batchSize) {
        return sample(batchSize, null);
    }

    /**
     * Samples a batch. {@code datasetUniforms} are the batch's stratified uniforms from {@link #epochBucketPool}
     * (musubi's {@code batch["timesteps"]}), or null; they are used only outside sigma mode and outside the
     * rejection loop, as in musubi.
     */
    public Batch sample(int batchSize, float[] datasetUniforms) {
        if (batchSize <= 0) throw new IllegalArgumentException("sample: batch size must be positive; got " + batchSize);
        if (datasetUniforms != null && datasetUniforms.length != batchSize) {
            throw new IllegalArgumentException("sample: dataset uniforms do not match the batch; got "
                    + datasetUniforms.length + " values, expected " + batchSize);
        }
        return config.mode() == TimestepSampling.SIGMA ? sampleSigma(batchSize) : sampleContinuous(batchSize, datasetUniforms);
    }

    /** Sigma mode (trainer_base L709‑728, weighting_scheme none): u ~ U[0,1), idx = ⌊u·(max − min) + min⌋. */
    private Batch sampleSigma(int batchSize) {
        float[] t = new float[batchSize];
        float[] timestep = new float[batchSize];
        float span = config.maxTimestep() - config.minTimestep();
        float min = config.minTimestep();
        for (int b = 0; b < batchSize; b++) {
            int idx = (int) (rng.nextFloat() * span + min); // float32 tensor math, then .long() truncates
            // FlowMatchDiscreteScheduler: timesteps[idx] = 1000·sigmas[idx], sigmas = linspace(1, 0, 1001), no shift.
            // torch's float32 linspace can be 1 ulp away from (1000 − idx)/1000; we use the exact grid value.
            timestep[b] = 1000 - idx;
            t[b] = (float) ((1000 - idx) / 1000.0);
        }
        return new Batch(t, timestep);
    }

    private Batch sampleContinuous(int batchSize, float[] datasetUniforms) {
        float tMin = (float) (config.minTimestep() / 1000.0);
        float tMax = (float) (config.maxTimestep() / 1000.0);
        float[] t;
        if (!config.preserveDistributionShape()) {
            t = drawT(batchSize, datasetUniforms);
            float span = (float) (config.maxTimestep() / 1000.0 - config.minTimestep() / 1000.0);
            for (int b = 0; b < batchSize; b++) t[b] = t[b] * span + tMin;
        } else {
            t = new float[batchSize];
            int accepted = 0;
            float[] draw = null;
            for (int loop = 0; loop < MAX_REJECTION_LOOPS && accepted < batchSize; loop++) {
                draw = drawT(batchSize, config.numTimestepBuckets() > 0 ? trainerBucketUniforms(batchSize) : null);
                for (int b = 0; b < batchSize && accepted < batchSize; b++) {
                    if (tMin <= draw[b] && draw[b] <= tMax) t[accepted++] = draw[b];
                }
            }
            if (accepted < batchSize) {
                LOG.warning("Could not sample " + batchSize + " valid timesteps in " + MAX_REJECTION_LOOPS
                        + " loops; using unconstrained samples for this batch");
                t = draw; // musubi keeps the loop's last (unconstrained) draw
            }
        }
        float[] timestep = new float[batchSize];
        for (int b = 0; b < batchSize; b++) timestep[b] = t[b] * 1000f + 1f;
        return new Batch(t, timestep);
    }

    /** musubi's compute_sampling_timesteps for one batch: t in [0, 1] before any range handling. */
    private float[] drawT(int batchSize, float[] uniforms) {
        float[] t = new float[batchSize];
        float sigmoidScale = (float) config.sigmoidScale();
        for (int b = 0; b < batchSize; b++) {
            switch (config.mode()) {
                case UNIFORM -> t[b] = uniforms != null ? uniforms[b] : rng.nextFloat();
                case SIGMOID -> t[b] = sigmoid(sigmoidScale * normal(uniforms, b));
                case SHIFT -> {
                    float shift = (float) config.discreteFlowShift();
                    float shiftMinusOne = (float) (config.discreteFlowShift() - 1.0);
                    float s = sigmoid(normal(uniforms, b) * sigmoidScale);
                    t[b] = (s * shift) / (1f + shiftMinusOne * s);
                }
                case SIGMA -> throw new IllegalStateException("drawT: sigma mode has no continuous t");
            }
        }
        return t;
    }

    /** z ~ N(0,1) as float32: from the generator, or Φ⁻¹ of a stratified uniform (musubi's uniform_to_normal_ppF). */
    private float normal(float[] uniforms, int b) {
        if (uniforms == null) return (float) rng.nextGaussian();
        float u = Math.min(Math.max(uniforms[b], QUANTILE_EPS), 1f - QUANTILE_EPS);
        return (float) normalQuantile(u);
    }

    /** musubi's get_bucketed_timestep for each sample: pop a stratum (refilled and shuffled when empty), draw in it. */
    private float[] trainerBucketUniforms(int batchSize) {
        int n = config.numTimestepBuckets();
        float[] u = new float[batchSize];
        for (int b = 0; b < batchSize; b++) {
            if (n <= 1) {
                u[b] = (float) rng.nextDouble();
                continue;
            }
            if (bucketPool.length == 0) {
                bucketPool = new int[n];
                for (int i = 0; i < n; i++) bucketPool[i] = i;
                rng.shuffle(bucketPool);
            }
            int bucket = bucketPool[bucketPool.length - 1];
            bucketPool = Arrays.copyOf(bucketPool, bucketPool.length - 1); // host-side, ≤ B tiny copies per step
            double size = 1.0 / n;
            u[b] = (float) rng.nextUniform(bucket * size, (bucket + 1) * size);
        }
        return u;
    }

    /**
     * The dataset's per-epoch pool of stratified uniforms (musubi dataset/bucket.py L205‑234): ⌈B·batches/N⌉ draws
     * in each of the N strata [i/N, (i+1)/N), shuffled, trimmed to batches·B and cut into batches of B. The
     * dataset hands batch k its row k, truncated to the batch's real size.
     */
    public static float[][] epochBucketPool(int numBatches, int batchSize, int numBuckets, RandomSource rng) {
        if (numBuckets < 2) {
            throw new IllegalArgumentException("--num_timestep_buckets: stratification needs at least 2 buckets; got "
                    + numBuckets);
        }
        int needed = Math.multiplyExact(numBatches, batchSize);
        int perBucket = (needed + numBuckets - 1) / numBuckets;
        double[] all = new double[perBucket * numBuckets];
        for (int i = 0, k = 0; i < numBuckets; i++) {
            double lo = (double) i / numBuckets;
            double hi = (double) (i + 1) / numBuckets;
            for (int j = 0; j < perBucket; j++) all[k++] = rng.nextUniform(lo, hi);
        }
        int[] order = new int[all.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        rng.shuffle(order);
        float[][] pool = new float[numBatches][batchSize];
        for (int k = 0; k < needed; k++) pool[k / batchSize][k % batchSize] = (float) all[order[k]];
        return pool;
    }

    /** float32 sigmoid: 1/(1 + e^−x) evaluated in double and rounded once. */
    private static float sigmoid(float x) {
        return (float) (1.0 / (1.0 + Math.exp(-x)));
    }

    /**
     * Φ⁻¹(p), the standard normal quantile, for p in [1e-7, 1 − 1e-7] (the clamp above). Wichura's AS 241 (PPND16,
     * Applied Statistics 37(3), 477‑484, 1988), relative accuracy about 1e-16; only its central and intermediate
     * branches are needed because √(−ln 1e-7) ≈ 4.01 stays below the far-tail split at 5.
     */
    static double normalQuantile(double p) {
        if (!(p >= QUANTILE_EPS / 2 && p <= 1 - QUANTILE_EPS / 2)) {
            throw new IllegalArgumentException("normalQuantile: p outside the clamped range; got " + p + ", expected [1e-7, 1 - 1e-7]");
        }
        double q = p - 0.5;
        if (Math.abs(q) <= 0.425) {
            double r = 0.180625 - q * q;
            double num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r + 6.7265770927008700853e+4) * r
                    + 4.5921953931549871457e+4) * r + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r
                    + 1.3314166789178437745e+2) * r + 3.3871328727963666080e+0);
            double den = (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r + 3.9307895800092710610e+4) * r
                    + 2.1213794301586595867e+4) * r + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r
                    + 4.2313330701600911252e+1) * r + 1.0);
            return q * num / den;
        }
        double r = Math.sqrt(-Math.log(q < 0 ? p : 1 - p)) - 1.6;
        double num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r + 2.41780725177450611770e-1) * r
                + 1.27045825245236838258e+0) * r + 3.64784832476320460504e+0) * r + 5.76949722146069140550e+0) * r
                + 4.63033784615654529590e+0) * r + 1.42343711074968357734e+0);
        double den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r + 1.51986665636164571966e-2) * r
                + 1.48103976427480074590e-1) * r + 6.89767334985100004550e-1) * r + 1.67638483018380384940e+0) * r
                + 2.05319162663775882187e+0) * r + 1.0);
        double z = num / den;
        return q < 0 ? -z : z;
    }
}
