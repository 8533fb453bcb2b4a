package dev.wanlora.models.text;

/**
 * The known name closest to a mistyped one (Levenshtein distance), for "did you mean" hints in one-line user errors:
 * the CLI's subcommands, flags and config-file keys, and the keys of a musubi dataset config.
 *
 * <p>The package {@code text} holds work on user-facing text, which is neither math nor a file format, so it is not in
 * {@code engine}. It lives in the lowest module that writes such messages ({@code models.musubi}'s dataset config
 * errors); the layers above it (the run, {@code cli}) use it from here.
 */
public final class ClosestName {
    private ClosestName() {}

    /**
     * The candidate closest to {@code input}, or null when none is within a third of its length (at least 2 edits):
     * beyond that it is no longer a typo of that name. Among equally close candidates the first wins, so list the
     * spelling to prefer first.
     */
    public static String of(String input, Iterable<String> candidates) {
        String best = nearest(input, candidates);
        return best != null && editDistance(input, best) <= Math.max(2, input.length() / 3) ? best : null;
    }

    /**
     * The candidate closest to {@code input} however far it is, or null when there are no candidates. Among equally
     * close candidates the first wins.
     */
    public static String nearest(String input, Iterable<String> candidates) {
        String best = null;
        int bestDistance = Integer.MAX_VALUE;
        for (String c : candidates) {
            int d = editDistance(input, c);
            if (d < bestDistance) {
                bestDistance = d;
                best = c;
            }
        }
        return best;
    }

    /** Levenshtein distance: insertions, deletions and substitutions each cost 1. */
    public static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int substitute = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(substitute, Math.min(prev[j] + 1, cur[j - 1] + 1));
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }
}
