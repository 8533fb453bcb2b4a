package dev.wanlora.engine.io;

/**
 * A safetensors file (or shard set) that cannot be read as asked: malformed header, missing shard, missing key,
 * unsupported conversion. The message is one line naming the file, the problem and a hint (STYLE.md §7), so the
 * CLI can print it as is.
 */
public final class SafeTensorsException extends RuntimeException {

    public SafeTensorsException(String message) {
        super(message);
    }

    public SafeTensorsException(String message, Throwable cause) {
        super(message, cause);
    }
}
