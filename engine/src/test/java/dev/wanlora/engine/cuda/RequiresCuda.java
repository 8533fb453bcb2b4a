package dev.wanlora.engine.cuda;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks a GPU test class: tagged "cuda", and skipped with one visible line
 * ("SKIPPED cuda tests in RmsNormCudaTest: no CUDA driver (libcuda) found") when no usable GPU is present, never
 * silently (STYLE.md §0.5). With {@code -Dwanlora.cudaRequired=true} (the GPU bundle sets it) a missing GPU fails
 * instead.
 */
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@Tag("cuda")
@ExtendWith(RequiresCuda.Condition.class)
public @interface RequiresCuda {

    final class Condition implements ExecutionCondition {
        @Override
        public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
            String reason = CudaTests.unavailableReason();
            if (reason == null) return ConditionEvaluationResult.enabled("CUDA device present");
            if (context.getTestMethod().isPresent()) return ConditionEvaluationResult.disabled(reason);
            String line = "SKIPPED cuda tests in " + context.getRequiredTestClass().getSimpleName() + ": " + reason;
            if (Boolean.getBoolean("wanlora.cudaRequired")) throw new AssertionError(line.replace("SKIPPED", "FAILED") + "; wanlora.cudaRequired=true");
            System.out.println(line);
            return ConditionEvaluationResult.disabled(line);
        }
    }
}
