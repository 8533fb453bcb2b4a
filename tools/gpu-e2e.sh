#!/usr/bin/env bash
# The e2e step of gpu-test.sh (see there): bash gpu-e2e.sh BUNDLE LOGS JAVA [JAVA OPTIONS...]
# Writes the files, measures the disk, runs `wanlora train` as the user does and prints one summary line per run.
set -uo pipefail
b=$1 logs=$2
shift 2
java=("$@")
dir=${WANLORA_E2E_DIR:-$PWD/e2e-work}
budget=${WANLORA_E2E_BUDGET_S:-200}
log="$logs/e2e.log"
rm -rf "$dir" && mkdir -p "$dir"
status=0
say() { echo "$*" | tee -a "$log"; }
now() { echo "$EPOCHREALTIME"; }
{ echo "== machine"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc; free -g | head -2
  df -h "$dir" | tail -1; findmnt -T "$dir" -no SOURCE,FSTYPE 2>/dev/null; } 2>&1 | tee -a "$log"
fixture() { "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.fixture.RealSizeFixture "$@" 2>&1 | tee -a "$log"; }
drop_caches() { sync && echo 3 > /proc/sys/vm/drop_caches || say "WARNING: could not drop the page cache"; }

# e2e_run NAME COLD(0|1) TASK CHECKPOINT [train flags...]
e2e_run() {
  local name=$1 cold=$2 task=$3 ckpt=$4
  shift 4
  local run="$dir/run-$name.log" smi="$dir/smi-$name.txt"
  rm -rf "$dir/out-$name"
  [ "$cold" = 1 ] && drop_caches
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$smi" 2>/dev/null &
  local smi_pid=$!
  local t0
  t0=$(now)
  "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main train --task "$task" --dit "$ckpt" --dataset_config "$dir/dataset.toml" \
    "$@" --output_dir "$dir/out-$name" --output_name e2e --seed 42 > "$run" 2>&1 &
  local pid=$! first="" hwm=0 h
  while kill -0 "$pid" 2>/dev/null; do
    if [ -z "$first" ] && grep -q "^step 1/" "$run"; then first=$(awk -v a="$(now)" -v b="$t0" 'BEGIN{printf "%.1f", a-b}'); fi
    h=$(awk '/VmHWM/{print $2}' "/proc/$pid/status" 2>/dev/null)
    [ -n "$h" ] && hwm=$h
    sleep 0.1
  done
  wait "$pid"
  local rc=$?
  local total
  total=$(awk -v a="$(now)" -v b="$t0" 'BEGIN{printf "%.1f", a-b}')
  kill "$smi_pid" 2>/dev/null
  wait "$smi_pid" 2>/dev/null
  local peak
  peak=$(sort -n "$smi" | tail -1)
  local loaded last
  loaded=$(grep -m1 "^loaded " "$run")
  last=$(grep "^step " "$run" | tail -1 | grep -o "[0-9.]* s/it")
  local median
  median=$(grep -o "median [0-9.]* s/it" "$run" | tail -1)
  say "e2e $name: rc $rc; $([ "$cold" = 1 ] && echo cold || echo warm) page cache; step 1 done at ${first:-?} s, all done at $total s; $loaded; ${last:-? s/it} (mean of steps 2..${median:+; $median}); peak GPU ${peak:-?} MiB (nvidia-smi); host peak RSS $(awk -v k="$hwm" 'BEGIN{printf "%.2f", k/1048576}') GiB"
  [ "$rc" = 0 ] || { status=1; tail -5 "$run" | tee -a "$log"; }
  { echo "==== $name: wanlora train --task $task --dit $ckpt $*"; cat "$run"; } >> "$logs/e2e-runs.log"
  rm -rf "$dir/out-$name"
}

seed=(--fp8_base --fp8_scaled --blocks_to_swap 10 --optimizer_type adamw8bit --learning_rate 2e-4 --network_module networks.lora_wan
      --network_dim 32 --network_alpha 32 --gradient_checkpointing --timestep_sampling shift --discrete_flow_shift 3.0
      --mixed_precision bf16 --max_train_steps 20 --sdpa --max_data_loader_n_workers 2 --persistent_data_loader_workers)
say "== seed command: wanlora train --task t2v-14B --dit FILE --dataset_config dataset.toml ${seed[*]} --output_dir … --output_name e2e --seed 42"
fixture caches "$dir"

ckpt14="$dir/wan2.1_t2v_14B_bf16.safetensors"
fixture checkpoint t2v-14B bf16 "$ckpt14"
t=$(now); sync; say "sync after writing: $(awk -v a="$(now)" -v b="$t" 'BEGIN{printf "%.1f", a-b}') s"
drop_caches
say "disk: $(dd if="$ckpt14" of=/dev/null bs=64M 2>&1 | tail -1) (dd, page cache dropped)"
e2e_run 14B-bf16-fp8scaled-swap10-cold 1 t2v-14B "$ckpt14" "${seed[@]}"
e2e_run 14B-bf16-fp8scaled-swap10-warm 0 t2v-14B "$ckpt14" "${seed[@]}"
# The read-ahead's reader count, A/B on the cold load (FileReadAhead.READERS; the default run above uses 4).
for readers in ${WANLORA_E2E_READERS:-}; do
  JDK_JAVA_OPTIONS="-Dwanlora.readAheadReaders=$readers" e2e_run 14B-bf16-fp8scaled-swap10-cold-readers$readers 1 t2v-14B "$ckpt14" "${seed[@]}"
done
# The same shape through `wanlora bench`, right after the user's runs (issue 13: the e2e s/it must equal bench's), on the
# same file's weights (train's loader) and on device-drawn random ones: the first pair differs only in the loop around
# the step, the second only in the weights' values. Run whatever the time budget says.
for src in file random; do
  dit=(); [ "$src" = file ] && dit=(--dit "$ckpt14")
  "${java[@]}" -cp "$b/lib/*" dev.wanlora.cli.Main bench --task t2v-14B --resolution 384x208 --frames 45 --blocks_to_swap 10 \
    "${dit[@]}" --steps 17 > "$dir/bench14swap-$src.log" 2>&1 || status=1
  { echo "==== wanlora bench --task t2v-14B --resolution 384x208 --frames 45 --blocks_to_swap 10 ${dit[*]} --steps 17"
    cat "$dir/bench14swap-$src.log"; } >> "$logs/e2e-runs.log"
  say "bench ($src weights, same shape, swap 10): $(grep -i "s/it" "$dir/bench14swap-$src.log" | tail -2 | tr '\n' ' ')"
done
rm -f "$ckpt14"

no_scaled=()
for f in "${seed[@]}"; do [ "$f" = --fp8_scaled ] || no_scaled+=("$f"); done
if [ "$SECONDS" -lt "$budget" ]; then
  ckpt13="$dir/wan2.1_t2v_1.3B_bf16.safetensors"
  fixture checkpoint t2v-1.3B bf16 "$ckpt13"
  e2e_run 1.3B-bf16-fp8scaled 0 t2v-1.3B "$ckpt13" "${seed[@]}"
  rm -f "$ckpt13"
else
  say "skipped (time budget ${budget}s used): 1.3B bf16"
fi
for variant in fp8_scaled fp8_e4m3fn; do
  if [ "$SECONDS" -lt "$budget" ]; then
    f="$dir/wan2.1_t2v_1.3B_$variant.safetensors"
    fixture checkpoint t2v-1.3B "$variant" "$f"
    e2e_run "1.3B-comfy-$variant-fp8base" 0 t2v-1.3B "$f" "${no_scaled[@]}"
    rm -f "$f"
  else
    say "skipped (time budget ${budget}s used): 1.3B ComfyUI $variant file"
  fi
done

if [ "$SECONDS" -lt "$budget" ]; then
  f="$dir/wan2.1_t2v_14B_fp8_e4m3fn.safetensors"
  fixture checkpoint t2v-14B fp8_e4m3fn "$f"
  e2e_run 14B-comfy-fp8_e4m3fn-fp8base-swap10 0 t2v-14B "$f" "${no_scaled[@]}"
  rm -f "$f"
else
  say "skipped (time budget ${budget}s used): 14B ComfyUI fp8 file"
fi
rm -rf "$dir"
exit $status
