package dev.wanlora.models.musubi;

/**
 * A user mistake in a dataset config or a cache folder. The message is one line that names the file, what was
 * found, what was expected and the fix, so the command line prints it as is, without a stack trace.
 */
public final class DatasetException extends IllegalArgumentException {
    public DatasetException(String message) {
        super(message);
    }
}
