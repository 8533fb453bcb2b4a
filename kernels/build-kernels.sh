#!/usr/bin/env bash
# Compiles every family folder under SRC (src/main/cuda/<family>/*.cu) into one fatbin per family:
# SASS for sm_80, sm_86, sm_89, sm_90 plus compute_80 PTX (DESIGN.md §2). Output: OUT/<family>.fatbin.
# A family folder named *_sm90a holds Hopper-only code (wgmma, setmaxnreg): SASS for sm_90a alone; the Java side
# loads it on compute capability 9.0 only (Kernel.requiresHopper) and keeps a portable kernel for every other card.
# Without nvcc the build still succeeds: one warning line, no kernels (the CPU backend works; the CUDA backend
# then says that kernels were not built and how to get them). Rebuilds a family only when a source is newer.
set -euo pipefail
src=$1 out=$2
mkdir -p "$out"
nvcc=${NVCC:-}
if [ -z "$nvcc" ]; then
  if command -v nvcc >/dev/null 2>&1; then nvcc=$(command -v nvcc)
  elif [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then nvcc=$CUDA_HOME/bin/nvcc
  elif [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc
  fi
fi
if [ -z "$nvcc" ]; then
  echo "[WARNING] wanlora kernels: nvcc not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda/bin); building without CUDA kernels. Install a CUDA toolkit 12.6+ and rebuild to use --backend cuda."
  exit 0
fi
archs="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80"
count=0
for dir in "$src"/*/; do
  family=$(basename "$dir")
  [ "$family" = common ] && continue
  files=("$dir"*.cu)
  [ -e "${files[0]}" ] || continue
  target="$out/$family.fatbin"
  if [ -f "$target" ] && [ -z "$(find "$dir" "$src/common" -newer "$target" -type f 2>/dev/null | head -1)" ]; then
    count=$((count+1)); continue
  fi
  # One translation unit per family: a generated file that includes each .cu of the folder.
  unit=$(mktemp --suffix=.cu)
  for f in "${files[@]}"; do echo "#include \"$(cd "$(dirname "$f")" && pwd)/$(basename "$f")\"" >> "$unit"; done
  familyArchs=$archs
  case "$family" in *_sm90a) familyArchs="-gencode arch=compute_90a,code=sm_90a" ;; esac
  "$nvcc" -fatbin -O3 -std=c++17 -lineinfo -I"$src/common" $familyArchs -o "$target.tmp" "$unit"
  mv "$target.tmp" "$target"
  rm -f "$unit"
  count=$((count+1))
done
echo "[INFO] wanlora kernels: $count fatbin famil$( [ $count = 1 ] && echo y || echo ies) in $out ($($nvcc --version | tail -1))"
