package dev.wanlora.cli;

import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.core.importer.Location;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.util.List;
import java.util.regex.Pattern;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The dependency rules of STYLE.md §1 and issue 8, checked on the compiled main classes of every module the cli sees
 * (kernels, engine, models, pipeline, cli; benchmarks only through its pom). Test classes are left out: a CUDA parity test
 * names {@code CudaBackend} by design.
 *
 * <p>A <b>package cycle</b> is a cycle between Java packages, each package on its own: {@code dev.wanlora.(**)}
 * makes {@code engine.cuda}, {@code models.wan} and {@code models.wan.vae} three slices, so a package and its
 * subpackage that use each other are a cycle too (grouping by module or by top-level package would hide those).
 */
class ArchitectureTest {

    private static final JavaClasses MAIN_CLASSES = new ClassFileImporter()
            .withImportOption(new ImportOption.DoNotIncludeTests())
            .withImportOption(new DoNotIncludeTestJars())
            .importPackages("dev.wanlora");

    @Test
    void noPackageCycles() {
        slices().matching("dev.wanlora.(**)").as("packages under dev.wanlora").should().beFreeOfCycles()
                .check(MAIN_CLASSES);
    }

    /** Models talk to Backend and Tensor only (STYLE.md §0.2); so does everything above them. */
    @Test
    void onlyTheEngineNamesABackend() {
        noClasses().that().resideInAnyPackage("dev.wanlora.cli..", "dev.wanlora.pipeline..", "dev.wanlora.models..")
                .should().dependOnClassesThat().resideInAnyPackage("dev.wanlora.engine.cuda..", "dev.wanlora.engine.cpu..")
                .because("the Backend a caller is given decides where the work runs (STYLE.md §1, issue 8)")
                .check(MAIN_CLASSES);
    }

    /**
     * The run and everything below it know nothing of the command line (issue 8: {@code cli → pipeline → models →
     * engine}): flags stop at {@code cli}, which hands the run resolved settings.
     */
    @Test
    void nothingBelowTheCliNamesIt() {
        noClasses().that().resideInAnyPackage("dev.wanlora.pipeline..", "dev.wanlora.models..", "dev.wanlora.engine..")
                .should().dependOnClassesThat().resideInAnyPackage("dev.wanlora.cli..")
                .because("the command line maps flags to RunSettings; the run takes settings, not options (issue 8)")
                .check(MAIN_CLASSES);
    }

    /** Benchmarks measure the run, not the command line (issue 8: benchmarks depend on pipeline, not on cli). */
    @Test
    void benchmarksDoNotDependOnTheCli() throws IOException {
        String pom = Files.readString(Golden.repoRoot().resolve("benchmarks/pom.xml"));
        List<String> offending = Pattern.compile("<artifactId>(wanlora-cli)</artifactId>").matcher(pom).results()
                .map(m -> "benchmarks -> " + m.group(1))
                .toList();
        assertEquals(List.of(), offending, "benchmarks/pom.xml: expected the benchmarks to depend on the modules "
                + "below the command line (the run, models, engine) only");
    }


    /**
     * Leaves out the other modules' test jars ({@code *-tests.jar}, on the classpath once they are packaged, as in
     * {@code mvn verify}); {@link ImportOption.DoNotIncludeTests} knows only test-classes folders.
     */
    static final class DoNotIncludeTestJars implements ImportOption {
        private static final Pattern TEST_JAR = Pattern.compile(".*-tests\\.jar!/.*");

        @Override
        public boolean includes(Location location) {
            return !location.matches(TEST_JAR);
        }
    }
}
