package dev.wanlora.cli.train;

import dev.wanlora.pipeline.train.CheckpointAttention;
import dev.wanlora.pipeline.train.TrainState;

import java.util.ArrayList;
import java.util.List;

/**
 * Flags that another flag overrides or makes meaningless: each one the user gave gets one info line saying which
 * flag wins, instead of being dropped silently (musubi prints the --max_train_epochs override too; that line needs the
 * dataset's length, so the run prints it: {@link dev.wanlora.pipeline.train.RunSettings.Length#epochsOverSteps}).
 */
final class FlagOverrides {
    private FlagOverrides() {}

    /** Info lines for the overrides decided by the flags alone. */
    static List<String> info(TrainOptions o) {
        List<String> info = new ArrayList<>();
        if (o.resume != null && o.network_weights != null) {
            info.add("info: --resume " + o.resume + " overrides --network_weights " + o.network_weights
                    + ": the LoRA continues from the state's " + TrainState.LORA_FILE);
        }
        if (!o.gradient_checkpointing && o.checkpoint_attention != null && o.checkpoint_attention != CheckpointAttention.AUTO) {
            info.add("info: --checkpoint_attention " + o.checkpoint_attention.name().toLowerCase(java.util.Locale.ROOT)
                    + " has no effect without --gradient_checkpointing");
        }
        boolean isShift = o.timestep_sampling.equals("shift");
        if (!isShift && o.discrete_flow_shift != 1.0) {
            info.add("info: --discrete_flow_shift " + o.discrete_flow_shift + " has no effect with --timestep_sampling "
                    + o.timestep_sampling + " (only shift uses it; musubi's Wan recipe is --timestep_sampling shift)");
        }
        if (!isShift && !o.timestep_sampling.equals("sigmoid") && o.sigmoid_scale != 1.0) {
            info.add("info: --sigmoid_scale " + o.sigmoid_scale + " has no effect with --timestep_sampling "
                    + o.timestep_sampling + " (only sigmoid and shift use it)");
        }
        return info;
    }
}
