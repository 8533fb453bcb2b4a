package dev.wanlora.engine.cuda;

import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

import java.nio.charset.StandardCharsets;

import static jcuda.driver.JCudaDriver.*;

/**
 * One GPU as wanlora uses it: the device's <b>primary</b> context (cuDevicePrimaryCtxRetain + cuCtxSetCurrent, so
 * that cuBLASLt, which binds to the current context, shares it with JCuda), one compute stream for every op and one
 * copy stream for host↔device transfers that overlap compute (block streaming). Driver API only (DESIGN.md §3).
 *
 * <p>The context is made current on whichever thread calls into it ({@link #makeCurrent()}), so a CudaContext
 * may be used from several threads one after another, though not concurrently.
 *
 * <p>{@code -Dwan.cuda.syncAfterEachLaunch=true} makes every kernel launch and cuBLASLt call synchronize the
 * compute stream and check for errors, so an asynchronous fault is reported at the launch that caused it (pair it
 * with compute-sanitizer).
 */
public final class CudaContext implements AutoCloseable {
    private static final boolean SYNC_AFTER_EACH_LAUNCH = Boolean.getBoolean("wan.cuda.syncAfterEachLaunch");

    private final int ordinal;
    private final CUdevice device;
    private final CUcontext context;
    private final NativeHandles.Stream computeStream;
    private final NativeHandles.Stream copyStream;
    private final String deviceName;
    private final int computeCapability;
    private final int multiprocessorCount;
    private final long totalMemoryBytes;
    private volatile Thread currentThread;
    private boolean closed;

    private CudaContext(int ordinal) {
        this.ordinal = ordinal;
        JCudaDriver.setExceptionsEnabled(false);
        CudaException.check(cuInit(0), "cuInit");
        int[] count = new int[1];
        CudaException.check(cuDeviceGetCount(count), "cuDeviceGetCount");
        if (ordinal < 0 || ordinal >= count[0]) {
            throw new IllegalArgumentException("cuda: device " + ordinal + " does not exist; got " + count[0]
                    + " CUDA device(s), expected an index in [0, " + count[0] + ")");
        }
        device = new CUdevice();
        CudaException.check(cuDeviceGet(device, ordinal), "cuDeviceGet");
        context = new CUcontext();
        CudaException.check(cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain");
        CudaException.check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
        currentThread = Thread.currentThread();
        byte[] name = new byte[256];
        CudaException.check(cuDeviceGetName(name, name.length, device), "cuDeviceGetName");
        int len = 0;
        while (len < name.length && name[len] != 0) len++;
        deviceName = new String(name, 0, len, StandardCharsets.US_ASCII);
        computeCapability = 10 * attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
                + attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        multiprocessorCount = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        long[] total = new long[1];
        CudaException.check(cuDeviceTotalMem(total, device), "cuDeviceTotalMem");
        totalMemoryBytes = total[0];
        computeStream = new NativeHandles.Stream();
        CudaException.check(cuStreamCreate(computeStream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
        copyStream = new NativeHandles.Stream();
        CudaException.check(cuStreamCreate(copyStream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate");
    }

    /** Opens device {@code ordinal}. Throws CudaException when the driver fails, IllegalArgumentException for a bad index. */
    public static CudaContext open(int ordinal) { return new CudaContext(ordinal); }

    /**
     * Null when a CUDA driver with at least one device is usable here, else one line saying why not
     * ("no CUDA driver (libcuda) found", "no CUDA device"). Never throws; used by tests and the CLI to decide.
     */
    public static String unavailableReason() {
        try {
            JCudaDriver.setExceptionsEnabled(false);
            int r = cuInit(0);
            if (r != 0) return "no usable CUDA driver (cuInit: " + jcuda.driver.CUresult.stringFor(r) + ")";
            int[] count = new int[1];
            r = cuDeviceGetCount(count);
            if (r != 0 || count[0] == 0) return "no CUDA device found";
            return null;
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            return "no CUDA driver (libcuda) found";
        }
    }

    /** Makes this context current on the calling thread (cheap when it already is). */
    public void makeCurrent() {
        Thread t = Thread.currentThread();
        if (t != currentThread) {
            CudaException.check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
            currentThread = t;
        }
    }

    public int ordinal() { return ordinal; }

    /** e.g. "NVIDIA H100 80GB HBM3". */
    public String deviceName() { return deviceName; }

    /** 10·major + minor, e.g. 90 for Hopper, 86 for an RTX 3090. */
    public int computeCapability() { return computeCapability; }

    public int multiprocessorCount() { return multiprocessorCount; }

    public long totalMemoryBytes() { return totalMemoryBytes; }

    /** A device attribute (CUdevice_attribute constant). */
    public int attribute(int cuDeviceAttribute) {
        int[] v = new int[1];
        CudaException.check(cuDeviceGetAttribute(v, cuDeviceAttribute, device), "cuDeviceGetAttribute");
        return v[0];
    }

    /** Free device memory right now, in bytes. */
    public long freeMemoryBytes() {
        makeCurrent();
        long[] free = new long[1], total = new long[1];
        CudaException.check(cuMemGetInfo(free, total), "cuMemGetInfo");
        return free[0];
    }

    /** The stream every op and kernel runs on. */
    NativeHandles.Stream computeStream() { return computeStream; }

    /** The stream for host↔device transfers that overlap compute. */
    NativeHandles.Stream copyStream() { return copyStream; }

    /** The compute stream's CUstream handle, for FFM callers (cuBLASLt). */
    long computeStreamAddress() { return computeStream.address(); }

    /** Waits until every queued op on both streams has finished, and reports any asynchronous fault. */
    public void synchronize() {
        makeCurrent();
        CudaException.check(cuStreamSynchronize(computeStream), "cuStreamSynchronize", "compute stream");
        CudaException.check(cuStreamSynchronize(copyStream), "cuStreamSynchronize", "copy stream");
    }

    /** A new event; see {@link CudaEvent}. */
    public CudaEvent newEvent(boolean timing) {
        makeCurrent();
        return new CudaEvent(this, timing);
    }

    static boolean syncAfterEachLaunch() { return SYNC_AFTER_EACH_LAUNCH; }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        makeCurrent();
        CudaException.check(cuStreamSynchronize(computeStream), "cuStreamSynchronize");
        CudaException.check(cuStreamSynchronize(copyStream), "cuStreamSynchronize");
        CudaException.check(cuStreamDestroy(computeStream), "cuStreamDestroy");
        CudaException.check(cuStreamDestroy(copyStream), "cuStreamDestroy");
        CudaException.check(cuDevicePrimaryCtxRelease(device), "cuDevicePrimaryCtxRelease");
    }

    @Override
    public String toString() { return "cuda:" + ordinal + " (" + deviceName + ")"; }
}
