package dev.wanlora.engine.cuda;

import jcuda.driver.CUresult;

/**
 * A CUDA driver or cuBLASLt call that returned an error (STYLE.md §7). The message names the call, the status name
 * and, for kernel launches, the kernel symbol with its grid and block, e.g.
 * {@code cuLaunchKernel failed: CUDA_ERROR_INVALID_VALUE (1); kernel rms_norm_fwd_bf16 grid=(32760,1,1) block=(256,1,1)}.
 */
public final class CudaException extends RuntimeException {
    private final String call;
    private final int status;

    public CudaException(String call, int status, String statusName, String detail) {
        super(call + " failed: " + statusName + " (" + status + ")" + (detail == null || detail.isEmpty() ? "" : "; " + detail));
        this.call = call;
        this.status = status;
    }

    /** The name of the failing call, e.g. "cuMemAlloc" or "cublasLtMatmul". */
    public String call() { return call; }

    /** The raw status code (a CUresult or cublasStatus_t). */
    public int status() { return status; }

    /** Throws when {@code result} is not CUDA_SUCCESS. */
    public static void check(int result, String call) {
        if (result != CUresult.CUDA_SUCCESS) throw new CudaException(call, result, CUresult.stringFor(result), null);
    }

    /** Throws when {@code result} is not CUDA_SUCCESS, adding {@code detail} (what was being done) to the message. */
    public static void check(int result, String call, String detail) {
        if (result != CUresult.CUDA_SUCCESS) throw new CudaException(call, result, CUresult.stringFor(result), detail);
    }
}
