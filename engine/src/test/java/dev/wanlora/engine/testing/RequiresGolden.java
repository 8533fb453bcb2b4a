package dev.wanlora.engine.testing;

import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks a test class whose {@code @BeforeAll} reads golden folders ({@link Golden#dir}). When one is missing, the
 * class is disabled before {@code @BeforeAll} runs: every test in it is reported as skipped (counted in the summary,
 * never vanishing) and one SKIPPED line says why; neither {@code @BeforeAll} nor {@code @AfterAll} runs, so nothing
 * half-initialised is closed. Under {@code -Dgolden.required=true} a missing folder fails instead (STYLE.md §4).
 * Classes that read golden data only inside test methods need no annotation: {@link Golden#dir} skips that test.
 */
@Target(ElementType.TYPE)
@Retention(RetentionPolicy.RUNTIME)
@ExtendWith(RequiresGolden.Condition.class)
public @interface RequiresGolden {
    /** Golden folder names, e.g. "wan-tiny". */
    String[] value();

    final class Condition implements ExecutionCondition {
        @Override
        public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
            RequiresGolden required = context.getRequiredTestClass().getAnnotation(RequiresGolden.class);
            if (required == null) return ConditionEvaluationResult.enabled("no golden data needed");
            for (String name : required.value()) {
                String missing = Golden.missing(name);
                if (missing == null) continue;
                if (context.getTestMethod().isPresent()) return ConditionEvaluationResult.disabled(missing);
                String line = "SKIPPED: tests in " + context.getRequiredTestClass().getSimpleName() + ": " + missing;
                if (Boolean.getBoolean("golden.required")) throw new AssertionError(line.replace("SKIPPED: ", "") + "; golden.required=true");
                System.out.println(line);
                return ConditionEvaluationResult.disabled(line);
            }
            return ConditionEvaluationResult.enabled("golden data present");
        }
    }
}
