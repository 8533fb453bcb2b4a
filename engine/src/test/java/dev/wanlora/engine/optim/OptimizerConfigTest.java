package dev.wanlora.engine.optim;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class OptimizerConfigTest {

    @Test
    void defaultsAreTorchAndBitsandbytesDefaults() {
        for (var c : List.of(OptimizerConfig.adamw(), OptimizerConfig.adamw8bit())) {
            assertEquals(0.9f, c.beta1());
            assertEquals(0.999f, c.beta2());
            assertEquals(1e-8f, c.eps());
            assertEquals(0.01f, c.weightDecay());
        }
        assertEquals(4096, OptimizerConfig.adamw8bit().min8bitSize());
        assertEquals("torch.optim.adamw.AdamW", OptimizerConfig.adamw().metadataName());
    }

    @Test
    void namesMusubiAccepts() {
        for (String t : List.of("AdamW", "adamw", "ADAMW", "torch.optim.AdamW", "")) {
            assertEquals(OptimizerConfig.Kind.ADAMW, OptimizerConfig.fromFlags(t, List.of()).kind(), t);
        }
        for (String t : List.of("AdamW8bit", "adamw8bit", "bitsandbytes.optim.AdamW8bit", "bitsandbytes.optim.adamw.AdamW8bit")) {
            assertEquals(OptimizerConfig.Kind.ADAMW_8BIT, OptimizerConfig.fromFlags(t, List.of()).kind(), t);
        }
        for (String t : List.of("prodigyopt.Prodigy", "prodigyopt.prodigy.Prodigy", "Prodigy", "prodigy")) {
            assertEquals(OptimizerConfig.Kind.PRODIGY, OptimizerConfig.fromFlags(t, List.of()).kind(), t);
        }
        for (String t : List.of("Adafactor", "adafactor", "transformers.optimization.Adafactor")) {
            assertEquals(OptimizerConfig.Kind.ADAFACTOR, OptimizerConfig.fromFlags(t, List.of()).kind(), t);
        }
        var e = assertThrows(IllegalArgumentException.class, () -> OptimizerConfig.fromFlags("Lion", List.of()));
        assertEquals("--optimizer_type: unsupported optimizer; got 'Lion', expected one of AdamW, adamw,"
                + " torch.optim.AdamW, AdamW8bit, adamw8bit, bitsandbytes.optim.AdamW8bit, prodigyopt.Prodigy (or prodigy),"
                + " Adafactor (adafactor, transformers.optimization.Adafactor)", e.getMessage());
    }

    @Test
    void parsesOptimizerArgsLikeLiteralEval() {
        var c = OptimizerConfig.fromFlags("adamw8bit", List.of("weight_decay=0.1", "betas=(0.9,0.99)", "eps=1e-6",
                "min_8bit_size=1024"));
        assertEquals(0.1f, c.weightDecay());
        assertEquals(0.9f, c.beta1());
        assertEquals(0.99f, c.beta2());
        assertEquals(1e-6f, c.eps());
        assertEquals(1024, c.min8bitSize());
        // musubi: optimizer_name + "(" + ",".join(f"{k}={v}") + ")" with Python str() of the parsed values
        assertEquals("bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.1,betas=(0.9, 0.99),eps=1e-06,min_8bit_size=1024)",
                c.metadataName());
        assertEquals(0.999f, OptimizerConfig.fromFlags("AdamW", List.of("betas=0.9,0.999")).beta2());
        assertEquals(0f, OptimizerConfig.fromFlags("AdamW", List.of("weight_decay=0")).weightDecay());
    }

    @Test
    void badArgsEndInOneLine() {
        var e = assertThrows(IllegalArgumentException.class, () -> OptimizerConfig.fromFlags("AdamW", List.of("momentum=0.9")));
        assertEquals("--optimizer_args: torch.optim.adamw.AdamW has no argument 'momentum'; expected one of amsgrad,"
                + " betas, capturable, differentiable, eps, foreach, fused, maximize, weight_decay", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OptimizerConfig.fromFlags("AdamW", List.of("lr=1e-3")));
        assertTrue(e.getMessage().endsWith("hint: set the learning rate with --learning_rate"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OptimizerConfig.fromFlags("AdamW", List.of("weight_decay")));
        assertTrue(e.getMessage().startsWith("--optimizer_args: expected key=value; got 'weight_decay'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OptimizerConfig.fromFlags("AdamW", List.of("betas=(0.9)")));
        assertEquals("--optimizer_args: betas has an invalid value; got 0.9, expected two numbers such as (0.9,0.999)",
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OptimizerConfig.fromFlags("AdamW", List.of("amsgrad=True")));
        assertEquals("--optimizer_args: amsgrad=True is not supported; expected amsgrad=False (wanlora implements plain AdamW)",
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OptimizerConfig.fromFlags("AdamW", List.of("eps=abc")));
        assertTrue(e.getMessage().startsWith("--optimizer_args eps: not a Python literal"), e.getMessage());
    }
}
