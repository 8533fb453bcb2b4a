package dev.wanlora.pipeline;

/**
 * A mistake the user can fix (a wrong path, a bad flag value, a missing cache). Its message is the one line
 * {@code wanlora} prints: it names the file or flag, what was found, what was expected, and the fix (DESIGN.md §8).
 * The command line ({@code dev.wanlora.cli.Main}) prints it without a stack trace and exits with code 2.
 */
public final class UserError extends RuntimeException {
    public UserError(String message) {
        super(message);
    }

    public UserError(String message, Throwable cause) {
        super(message, cause);
    }
}
