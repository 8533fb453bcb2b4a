package dev.wanlora.engine.backend;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The structure that makes an op's checks run once for every backend: each Backend op (a method taking a tensor) is
 * either a memory op, a final method of {@link CheckedBackend}, or a default method of its family interface
 * ({@link NormOps}, …) that forwards to the family's {@code Checked} class, which has a method of the same signature.
 * Neither backend overrides an op, so no backend can take an op's arguments without the checks.
 */
class CheckedBackendTest {

    private static final List<Class<?>> FAMILIES = List.of(GemmOps.class, NormOps.class, ModulationOps.class,
            AttentionOps.class, ElementwiseOps.class, LayoutOps.class, VideoOps.class, FlowOps.class,
            OptimizerOps.class);

    @Test
    void everyOpIsCheckedInItsFamilyOrInCheckedBackend() throws NoSuchMethodException {
        List<String> unchecked = new ArrayList<>();
        for (Method op : Backend.class.getMethods()) {
            if (Arrays.stream(op.getParameterTypes()).noneMatch(t -> t == Tensor.class)) continue;
            Class<?> family = op.getDeclaringClass();
            for (Class<?> backend : List.of(CheckedBackend.class, CpuBackend.class, CudaBackend.class)) {
                Method m = backend.getMethod(op.getName(), op.getParameterTypes());
                boolean memory = m.getDeclaringClass() == CheckedBackend.class && Modifier.isFinal(m.getModifiers());
                if (!memory && !(FAMILIES.contains(m.getDeclaringClass()) && m.isDefault())) {
                    unchecked.add(backend.getSimpleName() + "." + op.getName());
                }
            }
            if (FAMILIES.contains(family)) {
                Class<?> checked = Arrays.stream(family.getClasses()).filter(c -> c.getSimpleName().equals("Checked"))
                        .findFirst().orElseThrow();
                checked.getMethod(op.getName(), op.getParameterTypes()); // throws when the family lacks the op's check
            }
        }
        assertEquals(List.of(), unchecked, "Backend ops that do not go through their family's checks");
        for (Class<?> family : FAMILIES) assertTrue(family.isAssignableFrom(Backend.class), family.getSimpleName());
    }

    /** The family kernel classes take unchecked arguments, so nothing outside their backend's package makes one. */
    @Test
    void kernelClassesAreNotConstructibleOutsideTheirPackage() throws ClassNotFoundException {
        List<String> names = List.of("cpu.CpuGemm", "cpu.CpuNorm", "cpu.CpuModulation", "cpu.CpuAttention",
                "cpu.CpuElementwise", "cpu.CpuLayout", "cpu.CpuVideo", "cpu.CpuFlow", "cpu.CpuOptim", "cuda.CudaGemm",
                "cuda.CudaNorm", "cuda.CudaModulation", "cuda.CudaAttention", "cuda.CudaElementwise", "cuda.CudaLayout",
                "cuda.CudaVideo", "cuda.CudaFlow", "cuda.CudaOptim");
        for (String name : names) {
            Class<?> c = Class.forName("dev.wanlora.engine." + name);
            assertTrue(Arrays.stream(c.getInterfaces()).anyMatch(i -> i.getSimpleName().equals("Kernels")), name);
            boolean constructible = Modifier.isPublic(c.getModifiers())
                    && Arrays.stream(c.getDeclaredConstructors()).anyMatch(k -> Modifier.isPublic(k.getModifiers()));
            assertFalse(constructible, name + " can be constructed outside its package");
        }
        for (Class<?> backend : List.of(CpuBackend.class, CudaBackend.class)) {
            for (Method m : backend.getDeclaredMethods()) {
                if (m.getName().startsWith("run") || m.getName().equals("own")) {
                    assertFalse(Modifier.isPublic(m.getModifiers()), backend.getSimpleName() + "." + m.getName() + " is public");
                }
            }
        }
    }
}
