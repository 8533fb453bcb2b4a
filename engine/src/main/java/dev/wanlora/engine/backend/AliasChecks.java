package dev.wanlora.engine.backend;

import dev.wanlora.engine.tensor.Tensor;

import java.util.function.BiFunction;
import java.util.function.BiPredicate;

/**
 * The aliasing rules every backend enforces on op arguments (Backend's contracts say where an output may be an
 * input): an output either covers exactly the same elements as an input, where allowed, or shares no storage with it.
 * The rules are written once here; each backend supplies how its tensors address storage (array + offset on the CPU,
 * device addresses on CUDA) and how a tensor is named in a message.
 *
 * @param backendLabel "cpu" or "cuda", as messages show it: {@code scale (cpu): out partially overlaps x; …}
 * @param overlaps     true when the two tensors share at least one element of storage
 * @param sameRange    true when the two tensors address the same elements (same start, same size)
 * @param describe     how a message shows tensor t named n
 */
public record AliasChecks<T extends Tensor>(String backendLabel, BiPredicate<T, T> overlaps,
                                            BiPredicate<T, T> sameRange, BiFunction<String, T, String> describe) {

    /** out and in share no storage (either may be null: an absent optional argument). */
    public void disjoint(String op, String outName, T out, String inName, T in) {
        if (in != null && out != null && overlaps.test(out, in)) {
            throw new IllegalArgumentException(op + " (" + backendLabel + "): " + outName + " overlaps " + inName + "; got "
                    + describe.apply(outName, out) + " and " + describe.apply(inName, in) + ", expected disjoint storage");
        }
    }

    /** Outputs may alias an input exactly (the same elements) where the contract allows it, never partially. */
    public void sameOrDisjoint(String op, String outName, T out, String inName, T in) {
        if (overlaps.test(out, in) && !sameRange.test(out, in)) {
            throw new IllegalArgumentException(op + " (" + backendLabel + "): " + outName + " partially overlaps " + inName
                    + "; got " + describe.apply(outName, out) + " and " + describe.apply(inName, in)
                    + ", expected the same elements or disjoint storage");
        }
    }

    /** Every output disjoint from every other output and from every input (null entries are absent arguments). */
    public void outputs(String op, String[] outNames, T[] outs, String[] inNames, T[] ins) {
        for (int i = 0; i < outs.length; i++) {
            for (int j = i + 1; j < outs.length; j++) disjoint(op, outNames[i], outs[i], outNames[j], outs[j]);
            for (int j = 0; j < ins.length; j++) disjoint(op, outNames[i], outs[i], inNames[j], ins[j]);
        }
    }
}
