package dev.wanlora.engine.memory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The host memory the OS reports available (Linux /proc/meminfo MemAvailable): the default of --max_host_ram, and
 * what decides whether a checkpoint is read ahead into the page cache ({@link dev.wanlora.engine.io.FileReadAhead}).
 */
public final class HostMemory {
    private HostMemory() {}

    /**
     * The pinned staging ring a GPU backend reads checkpoint bytes into on their way to the device (CUDA's
     * UploadStaging: 5 chunks of 32 MiB in flight fit in it); allocated by the first load and kept for later uploads.
     * The host memory plan counts it.
     */
    public static final long LOAD_STAGING_BYTES = 256L << 20;

    /** MemAvailable in bytes, or 0 when the file or the line is missing (then the host plan is printed, not checked). */
    public static long availableBytes() {
        return availableBytes(Path.of("/proc/meminfo"));
    }

    public static long availableBytes(Path meminfo) {
        try {
            for (String line : Files.readAllLines(meminfo)) {
                // "MemAvailable:   63211484 kB"
                if (!line.startsWith("MemAvailable:")) continue;
                String[] parts = line.substring("MemAvailable:".length()).strip().split("\\s+");
                long kib = Long.parseLong(parts[0]);
                return parts.length > 1 && parts[1].equalsIgnoreCase("kB") ? kib * 1024 : kib;
            }
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
        return 0;
    }
}
