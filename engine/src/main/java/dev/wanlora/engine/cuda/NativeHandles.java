package dev.wanlora.engine.cuda;

import jcuda.Pointer;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUstream;

/**
 * The one place where JCuda's raw native handles are exposed (DESIGN.md §3): JCuda keeps the address of a device
 * pointer, host pointer or stream in a protected field ({@code NativePointerObject.getNativePointer()}), and the
 * FFM bindings (cuBLASLt) and kernel arguments need it as a {@code long}. Each nested type is the JCuda type plus
 * an {@code address()} accessor; nothing outside {@code engine.cuda} sees them.
 */
final class NativeHandles {
    private NativeHandles() {}

    /** A device pointer as filled in by cuMemAlloc; {@link #address()} is the CUdeviceptr value. */
    static final class DevicePointer extends CUdeviceptr {
        DevicePointer() {}

        /** A pointer {@code byteOffset} bytes past {@code base} (for views); shares no ownership. */
        DevicePointer(DevicePointer base, long byteOffset) { super(base, byteOffset); }

        long address() { return getNativePointer() + getByteOffset(); }
    }

    /** A host pointer: filled in by cuMemHostAlloc, or wrapping a raw address (a native MemorySegment's). */
    static final class HostPointer extends Pointer {
        HostPointer() {}

        HostPointer(long address) { super(address); }

        long address() { return getNativePointer() + getByteOffset(); }
    }

    /** A kernel function as filled in by cuModuleGetFunction; {@link #address()} is the CUfunction handle. */
    static final class Function extends CUfunction {
        long address() { return getNativePointer(); }
    }

    /** A stream; {@link #address()} is the CUstream handle cuBLASLt takes. */
    static final class Stream extends CUstream {
        long address() { return getNativePointer(); }
    }
}
