package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitActivations.Key;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The memory plan of the DiT's activations is what a plan allocates: {@link WanDitActivations#sizeBytes(WanDitConfig,
 * ComputePrecision, Key)} (the {@link WanDitActivationLayout} the memory plan counts) equals the bytes of every tensor
 * the backend hands out while the plan is built, counted at the backend.
 */
class WanDitActivationLayoutTest {

    private static final WanDitConfig CONFIG = new WanDitConfig(256, 512, 2, 3, 16, 16, 64, 256, 32, 1e-6f,
            WanDitConfig.PATCH_1_2_2);

    @Test
    void plannedBytesAreTheBytesAllocated() {
        try (CpuBackend cpu = new CpuBackend()) {
            AtomicLong allocated = new AtomicLong();
            Backend counting = counting(cpu, allocated);
            for (ComputePrecision precision : ComputePrecision.values()) {
                // Offloaded keys are left out: their rings live in the offload's own memory, which the CPU backend
                // allocates directly (ActivationOffload.deviceBytes is that class's formula, tested with it).
                for (Key key : List.of(new Key(1, 3, 8, 12, 4, true), new Key(2, 1, 4, 6, 0, false),
                        new Key(1, 2, 2, 4, 16, false), new Key(2, 2, 4, 4, 4, false, true),
                        Key.forwardOnly(1, 3, 8, 12, 4), Key.forwardOnly(2, 1, 4, 6, 0))) {
                    allocated.set(0);
                    try (WanDitActivations plan = new WanDitActivations(counting, CONFIG, precision, key)) {
                        long planned = WanDitActivations.sizeBytes(CONFIG, precision, key);
                        assertEquals(allocated.get(), planned, key + " " + precision);
                        assertEquals(planned, plan.sizeBytes());
                        System.out.println("activations[" + precision + ", " + key + "]: planned " + planned
                                + " bytes = allocated OK");
                    }
                }
            }
        }
    }

    @Test
    void forwardOnlyLayoutHasNoGradientsAndTwoStreamBuffers() {
        WanDitActivationLayout forward = WanDitActivationLayout.of(CONFIG, ComputePrecision.BF16_MUSUBI,
                Key.forwardOnly(1, 2, 4, 6, 4));
        WanDitActivationLayout training = WanDitActivationLayout.of(CONFIG, ComputePrecision.BF16_MUSUBI,
                new Key(1, 2, 4, 6, 4, false));
        assertFalse(forward.buffers().stream().anyMatch(b -> b.name().startsWith("grad.") || b.name().startsWith("d")),
                forward.buffers().toString());
        assertTrue(training.buffers().stream().anyMatch(b -> b.name().equals("grad.dQ")));
        assertEquals(2, forward.savedInputItems());
        assertEquals(CONFIG.numLayers() + 1, training.savedInputItems());
        assertTrue(forward.deviceBytes() < training.deviceBytes());
        try (CpuBackend cpu = new CpuBackend();
             WanDitActivations plan = new WanDitActivations(cpu, CONFIG, ComputePrecision.BF16_MUSUBI,
                     Key.forwardOnly(1, 2, 4, 6, 4))) {
            assertNull(plan.blockGradients);
            assertNull(plan.dPred);
            assertEquals(2, plan.blockInputs.length);
        }
    }

    /** {@code inner}, adding the bytes of every tensor it hands out to {@code allocated}. */
    private static Backend counting(CpuBackend inner, AtomicLong allocated) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> {
                    Object result;
                    try {
                        result = method.invoke(inner, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                    if (result instanceof Tensor t) allocated.addAndGet(t.sizeBytes());
                    return result;
                });
    }
}
