package dev.wanlora.cli.train;

import dev.wanlora.cli.Main;
import dev.wanlora.pipeline.train.TrainState;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** Issue 14, item 3: a flag that another flag overrides or makes meaningless is named in one info line. */
class FlagOverridesTest {

    private static TrainOptions parse(String... args) {
        String[] all = new String[args.length + 1];
        all[0] = "train";
        System.arraycopy(args, 0, all, 1, args.length);
        CommandLine.ParseResult train = Main.commandLine().parseArgs(all).subcommand();
        TrainCommand command = train.commandSpec().commandLine().getCommand();
        return command.options;
    }

    @Test
    void epochsOverrideGivenSteps() {
        // the report: --max_train_steps 6 --max_train_epochs 50 printed "450 steps in 50 epochs" and nothing else
        assertEquals("info: --max_train_epochs 50 overrides --max_train_steps 6: 450 steps in 50 epochs (as in musubi)",
                FlagResolution.length(parse("--max_train_steps", "6", "--max_train_epochs", "50")).epochsOverSteps(450, 50));
        assertEquals("info: --max_train_epochs 1 overrides --max_train_steps 6: 1 step in 1 epoch (as in musubi)",
                FlagResolution.length(parse("--max_train_steps", "6", "--max_train_epochs", "1")).epochsOverSteps(1, 1));
        // the default step count was no choice of the user's; steps alone override nothing
        assertNull(FlagResolution.length(parse("--max_train_epochs", "50")).epochsOverSteps(450, 50));
        assertNull(FlagResolution.length(parse("--max_train_steps", "6")).epochsOverSteps(6, 1));
    }

    @Test
    void otherOverridesAreNamed() {
        assertEquals(List.of("info: --resume out/a-state overrides --network_weights w.safetensors: the LoRA continues from"
                        + " the state's " + TrainState.LORA_FILE),
                FlagOverrides.info(parse("--resume", "out/a-state", "--network_weights", "w.safetensors")));
        assertEquals(List.of("info: --checkpoint_attention on has no effect without --gradient_checkpointing"),
                FlagOverrides.info(parse("--checkpoint_attention", "on")));
        assertEquals(List.of(), FlagOverrides.info(parse("--checkpoint_attention", "on", "--gradient_checkpointing")));
        assertEquals(List.of("info: --discrete_flow_shift 3.0 has no effect with --timestep_sampling sigma (only shift uses"
                        + " it; musubi's Wan recipe is --timestep_sampling shift)"),
                FlagOverrides.info(parse("--discrete_flow_shift", "3.0")));
        assertEquals(List.of("info: --sigmoid_scale 2.0 has no effect with --timestep_sampling uniform (only sigmoid and"
                        + " shift use it)"),
                FlagOverrides.info(parse("--timestep_sampling", "uniform", "--sigmoid_scale", "2")));
        assertEquals(List.of(), FlagOverrides.info(parse("--timestep_sampling", "shift", "--discrete_flow_shift", "3",
                "--sigmoid_scale", "2")));
    }
}
