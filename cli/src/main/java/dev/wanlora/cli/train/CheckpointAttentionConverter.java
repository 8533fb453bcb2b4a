package dev.wanlora.cli.train;

import dev.wanlora.pipeline.train.CheckpointAttention;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/** {@code --checkpoint_attention auto|on|off}: {@link CheckpointAttention#parse}, its message as picocli's. */
public final class CheckpointAttentionConverter implements ITypeConverter<CheckpointAttention> {
    @Override
    public CheckpointAttention convert(String value) {
        try {
            return CheckpointAttention.parse(value);
        } catch (IllegalArgumentException e) {
            throw new TypeConversionException(e.getMessage());
        }
    }
}
