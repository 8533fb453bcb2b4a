package dev.wanlora.cli.train;

import dev.wanlora.pipeline.train.BlocksToSwap;
import dev.wanlora.pipeline.train.StepsOrRatio;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** picocli converters of {@code wanlora train}'s own value types: each type's parse, its message as picocli's. */
public final class TrainConverters {
    private TrainConverters() {}

    /** {@code --blocks_to_swap N|auto}: {@link BlocksToSwap#parse}. */
    public static final class BlocksToSwapConverter implements ITypeConverter<BlocksToSwap> {
        @Override
        public BlocksToSwap convert(String value) {
            try {
                return BlocksToSwap.parse(value);
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage());
            }
        }
    }

    /** {@code --lr_warmup_steps}, {@code --lr_decay_steps}: {@link StepsOrRatio#parse}. */
    public static final class StepsOrRatioConverter implements ITypeConverter<StepsOrRatio> {
        @Override
        public StepsOrRatio convert(String value) {
            try {
                return StepsOrRatio.parse(value);
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage());
            }
        }
    }
}
