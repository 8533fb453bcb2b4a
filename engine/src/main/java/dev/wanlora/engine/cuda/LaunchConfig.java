package dev.wanlora.engine.cuda;

/**
 * Grid, block and dynamic shared memory of one kernel launch. Launch configurations are pure functions of shapes,
 * so ops compute them per call without touching the device.
 */
public record LaunchConfig(int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ, int sharedBytes) {

    public LaunchConfig {
        if (gridX < 1 || gridY < 1 || gridZ < 1 || blockX < 1 || blockY < 1 || blockZ < 1 || sharedBytes < 0) {
            throw new IllegalArgumentException("LaunchConfig: non-positive size; got " + describe(gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes));
        }
        if (gridY > 65535 || gridZ > 65535) {
            throw new IllegalArgumentException("LaunchConfig: grid y/z above 65535; got " + describe(gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes));
        }
    }

    /** A 1-D launch of {@code blocks} blocks of {@code threads} threads. */
    public static LaunchConfig of(long blocks, int threads) {
        return new LaunchConfig(Math.toIntExact(blocks), 1, 1, threads, 1, 1, 0);
    }

    /** A 1-D launch with dynamic shared memory. */
    public static LaunchConfig of(long blocks, int threads, int sharedBytes) {
        return new LaunchConfig(Math.toIntExact(blocks), 1, 1, threads, 1, 1, sharedBytes);
    }

    /** A 2-D grid of 1-D blocks. */
    public static LaunchConfig of(long blocksX, long blocksY, int threads, int sharedBytes) {
        return new LaunchConfig(Math.toIntExact(blocksX), Math.toIntExact(blocksY), 1, threads, 1, 1, sharedBytes);
    }

    /**
     * A grid-stride launch over {@code n} items: enough blocks of {@code threads} threads to cover n, capped at
     * {@code maxBlocks} (kernels loop over the rest).
     */
    public static LaunchConfig cover(long n, int threads, int maxBlocks) {
        long blocks = Math.max(1, Math.min((n + threads - 1) / threads, maxBlocks));
        return of(blocks, threads);
    }

    @Override
    public String toString() { return describe(gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes); }

    private static String describe(int gx, int gy, int gz, int bx, int by, int bz, int smem) {
        return "grid=(" + gx + "," + gy + "," + gz + ") block=(" + bx + "," + by + "," + bz + ")" + (smem > 0 ? " smem=" + smem : "");
    }
}
