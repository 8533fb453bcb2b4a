package dev.wanlora.pipeline.train;

/** {@code --blocks_to_swap}: a block count, or auto (the smallest count whose memory plan fits). */
public record BlocksToSwap(int count, boolean isAuto) {
    public static final BlocksToSwap AUTO = new BlocksToSwap(0, true);

    @Override
    public String toString() { return isAuto ? "auto" : Integer.toString(count); }

    /**
     * Parses auto (any case) or a block count.
     *
     * @throws IllegalArgumentException naming the value and the accepted forms
     */
    public static BlocksToSwap parse(String value) {
        if (value.equalsIgnoreCase("auto")) return AUTO;
        try {
            return new BlocksToSwap(Integer.parseInt(value.strip()), false);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + value + "' is not a block count or auto (e.g. 10 or auto)");
        }
    }
}
