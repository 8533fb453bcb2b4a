package dev.wanlora.engine.io;

/**
 * A PyTorch checkpoint that {@link PthFile} cannot or will not read: not a torch zip, truncated, corrupt, or a pickle
 * that calls something other than what a state dict needs. The message is one line naming the file, the problem and
 * a hint (STYLE.md §7), so the CLI prints it as is.
 */
public final class PthException extends RuntimeException {

    public PthException(String message) {
        super(message);
    }

    public PthException(String message, Throwable cause) {
        super(message, cause);
    }
}
