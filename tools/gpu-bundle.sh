#!/usr/bin/env bash
# Builds .bundle/: a self-contained folder that runs wanlora's GPU tests and kernel benchmark on a machine with an
# NVIDIA driver but no Java or Maven (DESIGN.md §9): a jlink-ed Java 25 runtime (~53 MB), the module jars and their
# runtime dependencies (Linux natives only), the engine test classes, the JUnit console launcher and gpu-test.sh (the
# golden data is the repository's own testdata/golden, which travels with the working tree). Usage (from the repo root, on a machine with a JDK 25
# and Maven): bash tools/gpu-bundle.sh [OUT_DIR [PACK_DIR]]   (default .bundle). Then on the GPU machine:
# bash OUT_DIR/gpu-test.sh. With PACK_DIR the folder is also packed into PACK_DIR/wanlora-bundle.tar.xz next to
# PACK_DIR/gpu-test.sh, which unpacks it to /tmp first (the GPU device tool carries at most 64 MiB; packed, the
# bundle is ~35 MB beside the ~23 MB of tracked files, golden data included).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/.bundle}
pack=${2:-}
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
cd "$root"
# The modules' target/lib folders are filled by copy-dependencies, which never removes a jar: a dependency dropped since
# (e.g. benchmarks → cli before the pipeline module) or an older version would travel in the bundle. Start them empty.
rm -rf benchmarks/target/lib cli/target/lib
mvn -B -q -DskipTests package
rm -rf "$out"
mkdir -p "$out/lib" "$out/test"
"$JAVA_HOME/bin/jlink" --add-modules java.base,jdk.unsupported,java.management,java.logging,jdk.management,jdk.zipfs \
  --strip-debug --no-man-pages --no-header-files --compress=zip-0 --output "$out/jre"
# jdk.zipfs lets the JUnit console launcher scan the test jars. The modules stay uncompressed (zip-0): the packed bundle
# is xz-compressed as a whole, which makes it ~6 MB smaller than zip-9 modules inside it.
# libjvm.so keeps its symbol table (5 MB); the bundle never debugs the JVM itself.
if command -v strip >/dev/null 2>&1; then strip --strip-unneeded "$out/jre/lib/server/libjvm.so"; fi
# Runtime jars of the whole reactor: benchmarks (→ pipeline → models → engine → kernels) and cli (→ pipeline) copy
# their runtime classpaths; together they hold every module and library.
cp benchmarks/target/lib/*.jar "$out/lib/"
cp benchmarks/target/wanlora-benchmarks-*.jar "$out/lib/"
cp cli/target/lib/*.jar "$out/lib/"
cp cli/target/wanlora-cli.jar "$out/lib/"
rm -f "$out"/lib/*windows*.jar "$out"/lib/jmh-generator-*.jar
# jmh-core, jopt-simple and commons-math3 stay: gpu-bench.sh jmh runs TrainStepBenchmark (~3 MB).
# JCuda's natives jar also carries the PTX compiler, NVRTC and runtime bindings (24 MB); wanlora loads only the driver's.
if command -v zip >/dev/null 2>&1; then
  zip -q -d "$out"/lib/jcuda-natives-*-linux-x86_64.jar 'lib/libJNvPTXCompiler*' 'lib/libJNvrtc*' 'lib/libJCudaRuntime*'
  # JNA (DJL's dependency) carries its native dispatcher for ~30 platforms; the GPU machine is linux-x86-64.
  for j in "$out"/lib/jna-*.jar; do
    [ -f "$j" ] && zip -q -d "$j" 'com/sun/jna/aix*' 'com/sun/jna/win32*' 'com/sun/jna/darwin*' 'com/sun/jna/freebsd*' \
      'com/sun/jna/openbsd*' 'com/sun/jna/sunos*' 'com/sun/jna/dragonfly*' 'com/sun/jna/linux-[!x]*' 'com/sun/jna/linux-x86/*' || true
  done
  # DJL's tokenizers jar (umT5's tokenizer) bundles natives for four platforms (~53 MB); the GPU machine needs linux-x86_64.
  zip -q -d "$out"/lib/tokenizers-*.jar 'native/lib/linux-aarch64/*' 'native/lib/osx-*' 'native/lib/win-*'
fi
# Test side: the engine test classes (and other modules' test-jars when they exist) plus the JUnit console launcher
# and test-scope libraries.
for t in */target/*-tests.jar; do [ -f "$t" ] && cp "$t" "$out/test/"; done
mvn -B -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:1.14.4 -DoutputDirectory="$out/test"
cp tools/gpu-test.sh "$out/gpu-test.sh"
cp tools/gpu-bench.sh "$out/gpu-bench.sh"
cp tools/gpu-e2e.sh "$out/gpu-e2e.sh"
echo "bundle $out: $(du -sh "$out" | cut -f1) (jre $(du -sh "$out/jre" | cut -f1), lib $(du -sh "$out/lib" | cut -f1), test $(du -sh "$out/test" | cut -f1))"
if [ -n "$pack" ]; then
  rm -rf "$pack" && mkdir -p "$pack"
  tar -C "$out" -cf - . | xz -9 -T0 > "$pack/wanlora-bundle.tar.xz"
  cat > "$pack/gpu-test.sh" <<'RUN'
#!/usr/bin/env bash
# Unpacks the wanlora GPU bundle beside this script into /tmp (once per machine) and runs its gpu-test.sh with the same
# arguments, or its gpu-bench.sh when the first argument is "bench" (bash gpu-test.sh bench bench14swap ...).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dest=/tmp/wanlora-bundle
if [ ! -x "$dest/jre/bin/java" ] || [ "$here/wanlora-bundle.tar.xz" -nt "$dest/jre/bin/java" ]; then
  rm -rf "$dest" && mkdir -p "$dest"
  tar -C "$dest" -xJf "$here/wanlora-bundle.tar.xz" 2>/dev/null \
    || python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$here/wanlora-bundle.tar.xz" "$dest"
fi
if [ "${1:-}" = bench ]; then shift; exec bash "$dest/gpu-bench.sh" "$@"; fi
exec bash "$dest/gpu-test.sh" "$@"
RUN
  echo "packed $pack: $(du -sh "$pack" | cut -f1)"
fi
