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
 * a final method of {@link CheckedBackend}, which both backends extend, so no backend can take an op's arguments
 * without the checks. A new op declared on Backend but implemented only in a backend fails here.
 */
class CheckedBackendTest {

    @Test
    void everyOpIsCheckedOnceInCheckedBackend() throws NoSuchMethodException {
        List<String> unchecked = new ArrayList<>();
        for (Method op : Backend.class.getMethods()) {
            if (Arrays.stream(op.getParameterTypes()).noneMatch(t -> t == Tensor.class)) continue;
            Method m = CheckedBackend.class.getMethod(op.getName(), op.getParameterTypes());
            if (m.getDeclaringClass() != CheckedBackend.class || !Modifier.isFinal(m.getModifiers())) {
                unchecked.add(op.getName());
            }
        }
        assertEquals(List.of(), unchecked, "Backend ops that do not go through CheckedBackend's checks");
        assertTrue(CheckedBackend.class.isAssignableFrom(CpuBackend.class));
        assertTrue(CheckedBackend.class.isAssignableFrom(CudaBackend.class));
    }

    /** The hooks take unchecked arguments, so only the checked ops may call them. */
    @Test
    void hooksAreNotPublic() {
        for (Class<?> c : List.of(CheckedBackend.class, CpuBackend.class, CudaBackend.class)) {
            for (Method m : c.getDeclaredMethods()) {
                if (m.getName().startsWith("run") || m.getName().equals("own")) {
                    assertFalse(Modifier.isPublic(m.getModifiers()), c.getSimpleName() + "." + m.getName() + " is public");
                }
            }
        }
    }
}
