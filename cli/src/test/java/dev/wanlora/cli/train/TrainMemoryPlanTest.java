package dev.wanlora.cli.train;

import dev.wanlora.cli.CommandRun;
import dev.wanlora.cli.Main;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraModuleWeights;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanMemoryPlan;
import dev.wanlora.pipeline.train.BatchTensors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code wanlora train}'s memory plan and block streaming from the command line, on the CPU with a random 5-block
 * model (so swapping 3 or 4 blocks through a 2-slot ring saves memory): the plan is printed, a plan over --max_vram
 * is refused naming the smallest count that fits, {@code --blocks_to_swap auto} picks that count, and the run it
 * makes trains the same LoRA bit for bit as an unswapped one.
 */
class TrainMemoryPlanTest {
    @TempDir
    static Path dir;
    static Path dataset;
    static Path dit;
    /** The plan's total for --blocks_to_swap 0 … 4, computed as the trainer does (each category is unit-tested). */
    static long[] totals = new long[5];

    private static final WanDitConfig FIVE_BLOCKS = new WanDitConfig(256, 512, 2, 5, 16, 16, 4096, 256, 512, 1e-6f,
            WanDitConfig.PATCH_1_2_2);

    @BeforeAll
    static void data() throws IOException {
        dit = dir.resolve("wan-5-blocks.safetensors");
        SafeTensorsWriter.write(dit, WanDitWeights.randomCheckpoint(FIVE_BLOCKS, 5), Map.of());
        dataset = OneImageDataset.write(dir, "dataset.toml");
        // one 64×64 image: latent (1, 16, 1, 8, 8); the CPU keeps fp8 weights dequantized (bf16) in its plan
        var shape = new WanDitActivations.Key(1, 1, 8, 8, 4, false);
        var settings = new WanMemoryPlan.Settings(FIVE_BLOCKS, ComputePrecision.BF16_MUSUBI,
                WanDitWeights.Quantization.FP8_SCALED, false, DType.BF16, List.of(shape), OptimizerConfig.adamw8bit(), 2,
                List.of(new MemoryPlan.Item("batch inputs", BatchTensors.sizeBytes(Shape.of(1, 16, 1, 8, 8)), "")));
        for (int n = 0; n < totals.length; n++) totals[n] = WanMemoryPlan.plan(settings, n).totalBytes();
    }

    private static CommandRun train(String output, String... more) {
        List<String> args = new ArrayList<>(List.of(("train --dit " + dit + " --dataset_config " + dataset
                + " --fp8_base --fp8_scaled --gradient_checkpointing --mixed_precision bf16 --optimizer_type adamw8bit"
                + " --learning_rate 1e-2 --network_dim 4 --network_alpha 4 --max_train_steps 1 --seed 7 --backend cpu"
                + " --output_name plan --output_dir " + dir.resolve(output)).split(" ")));
        args.addAll(Arrays.asList(more));
        return CommandRun.run(args.toArray(String[]::new));
    }

    /** A --max_vram in KiB that fits the plan of {@code n} swapped blocks and none of a smaller count. */
    private static String budgetFitting(int n) {
        return Math.ceilDiv(totals[n], 1024) + "K";
    }

    @Test
    void theTotalsDropOnlyFromThreeSwappedBlocks() {
        // two slots hold two blocks' Linears: one swapped block costs more than none, two the same, three save one
        assertTrue(totals[1] > totals[0] && totals[2] == totals[0] && totals[3] < totals[0] && totals[4] < totals[3]);
        assertTrue(Math.ceilDiv(totals[3], 1024) * 1024 < totals[0]);
    }

    @Test
    void refusesAPlanOverTheBudgetNamingTheCountThatFits() {
        String budget = budgetFitting(3);
        CommandRun r = train("refused", "--blocks_to_swap", "0", "--max_vram", budget);
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("memory plan (--blocks_to_swap 0, rank 4, largest input 1×1×8×8 latent = 16 tokens"), r.out());
        assertTrue(r.out().contains(", DOES NOT FIT"), r.out());
        assertEquals("wanlora train: memory plan: " + MemoryPlan.formatBytes(totals[0]) + " with --blocks_to_swap 0 exceeds"
                + " the budget of " + MemoryPlan.formatBytes(Math.ceilDiv(totals[3], 1024) * 1024) + " (--max_vram " + budget
                + "); --blocks_to_swap 3 fits (" + MemoryPlan.formatBytes(totals[3]) + "): pass it, or --blocks_to_swap auto",
                r.err().strip());
    }

    @Test
    void refusesWhenNoCountFits() {
        CommandRun r = train("tiny-budget", "--blocks_to_swap", "auto", "--max_vram", "1M");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertTrue(r.err().strip().startsWith("wanlora train: memory plan: " + MemoryPlan.formatBytes(totals[4])
                + " with --blocks_to_swap 4 exceeds the budget of 1.0 MiB (--max_vram 1M); even --blocks_to_swap 4 (the"
                + " most for 5 blocks) needs " + MemoryPlan.formatBytes(totals[4]) + ", of which "), r.err());
        assertTrue(r.err().strip().endsWith("are activations (largest input 1×1×8×8 latent, 16 tokens): lower the resolution"
                + " or frame count of the largest bucket in the dataset config"), r.err());
    }

    @Test
    void rejectsABadBudget() {
        CommandRun r = train("bad-budget", "--max_vram", "lots");
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertEquals("wanlora train: --max_vram lots: not a memory size; expected a positive number with a binary unit,"
                + " e.g. 24G, 24GiB or 22500M (a bare number means GiB)", r.err().strip());
        CommandRun ring = train("bad-ring", "--blocks_to_swap", "3", "--block_swap_ring_size", "1");
        assertEquals("wanlora train: --block_swap_ring_size 1: expected an integer from 2 to 64", ring.err().strip());
        CommandRun many = train("too-many", "--blocks_to_swap", "5");
        assertEquals("wanlora train: --blocks_to_swap 5: this model has 5 blocks, so at most 4 can be swapped (musubi's"
                + " limit: blocks − 1)", many.err().strip());
    }

    @Test
    void forcedSavedAttentionOutputsCountInTheSwapChoice() {
        // the saved outputs (5 × 16 tokens × (256 bf16 + 2 fp32)) push the plan of 3 swapped blocks over a budget that
        // just fits it without them; one more swapped block frees a block's Linears (~1.5 MB), far more than they need
        CommandRun on = train("forced", "--blocks_to_swap", "auto", "--max_vram", budgetFitting(3),
                "--checkpoint_attention", "on");
        assertEquals(0, on.exitCode(), on.out() + on.err());
        assertTrue(on.out().contains("memory plan (--blocks_to_swap 4 chosen by auto, rank 4"), on.out());
        assertTrue(on.out().contains("; --checkpoint_attention on; budget "), on.out());
        assertTrue(on.out().contains("  saved attention outputs "), on.out());
    }

    @Test
    void autoPicksTheSmallestFittingCountAndTrainsTheSameLora() {
        CommandRun resident = train("resident");
        assertEquals(0, resident.exitCode(), resident.out() + resident.err());
        CommandRun auto = train("auto", "--blocks_to_swap", "auto", "--max_vram", budgetFitting(3));
        assertEquals(0, auto.exitCode(), auto.out() + auto.err());
        assertTrue(auto.out().contains("memory plan (--blocks_to_swap 3 chosen by auto, rank 4"), auto.out());
        assertTrue(auto.out().contains("block streaming: the Linear weights of blocks 2..4 from"), auto.out());
        // no budget on the CPU: the resident run saves the attention outputs; the budget fitting 3 swapped blocks
        // without them leaves no room for them, so the swapped run recomputes them: the comparison covers both
        assertTrue(resident.out().contains("; --checkpoint_attention on chosen by auto;"), resident.out());
        assertTrue(auto.out().contains("; --checkpoint_attention off chosen by auto: with it the plan exceeds the budget;"),
                auto.out());
        List<LoraModuleWeights> a = LoraFile.read(dir.resolve("resident/plan.safetensors")).modules();
        List<LoraModuleWeights> b = LoraFile.read(dir.resolve("auto/plan.safetensors")).modules();
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) {
            // one AdamW8bit step from identical gradients: bit-identical weights
            assertArrayEquals(a.get(i).down(), b.get(i).down(), 0f, a.get(i).name());
            assertArrayEquals(a.get(i).up(), b.get(i).up(), 0f, a.get(i).name());
        }
        System.out.println(auto.out().lines().filter(l -> l.startsWith("memory plan") || l.startsWith("  ")).reduce("",
                (x, y) -> x + y + "\n"));
    }
}
