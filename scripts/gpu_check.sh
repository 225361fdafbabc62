#!/usr/bin/env bash
# The whole CUDA path in one call on a GPU machine, from the repository root, with
# .device/bundle.tar.xz from scripts/gpu_bundle.sh:
#
#   bash scripts/gpu_check.sh                 # every stage, in order
#   bash scripts/gpu_check.sh ops parity      # only these (a second call, after a fix)
#
# Stages (each under its own timeout, each writing $OUT/<stage>.txt):
#   libs        every binary resolves every library (ldd), CUDA libraries found each on its own
#   device      a GPU is visible and CUDA starts (nvidia-smi, the backend's own probe)
#   ops         the CUDA op tests against the CPU ops (fp32, and bf16 operands on both),
#               with CUDA_LAUNCH_BLOCKING=1
#   routing     device routing (Thrust on the GPU) against the host rules, every router
#   parity      10 training steps, CPU vs CUDA, dense (also chunked classifier, fused
#               attention, bf16) and every router
#   nccl        NCCL bootstrapped through the bundled mpirun, -np 1
#   memcheck    compute-sanitizer memcheck on the op tests
#   bench_dense bench_moe
#               switchyard bench on configs/bench_gpu_dense.yaml and bench_gpu.yaml ("bench": both)
#   racecheck synccheck initcheck
#               compute-sanitizer's other tools ("sanitizers": all four)
#
# $OUT/summary.txt says per stage: passed, failed (with the first error) or not
# run (and why). A stage whose output says "skipped" failed: a GPU check that
# skipped verified nothing. After a failed libs or device stage the GPU stages are
# not run (SY_GPU_CHECK_FORCE=1 runs them anyway). Exit code: 0 when every stage
# that was asked for passed, 1 otherwise.
#
# Env: OUT (default .device/out); SY_BUNDLE (default .device/bundle.tar.xz);
# SY_BUNDLE_DIR (an unpacked bundle: skips unpacking, used by the CI dry run);
# SY_TIMEOUT_SCALE (multiplies every stage's timeout; default 1); SY_CHECK_BUDGET
# (seconds for the whole call, default 450: stages are cut to what is left, and
# those that no longer fit are "not run", so summary.txt is always written well
# inside a 10-minute device call).
set -u
cd "$(dirname "$0")/.."
repo=$(pwd)
out=$(mkdir -p "${OUT:-.device/out}" && cd "${OUT:-.device/out}" && pwd)
scale=${SY_TIMEOUT_SCALE:-1}
budget=${SY_CHECK_BUDGET:-450}
for v in scale budget; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check: ${v^^} must be a positive integer, not '${!v}'" >&2; exit 2; }
done
started=$SECONDS
deadline=$((started + budget))

# In the order they run: the verdicts that matter most first, the slow sanitizers last.
all_stages=(libs device ops routing parity nccl memcheck bench_dense bench_moe racecheck synccheck initcheck)
asked=()
for a in "$@"; do
  case $a in
    sanitizers) asked+=(memcheck racecheck synccheck initcheck) ;;
    bench) asked+=(bench_dense bench_moe) ;;
    *)
      if [[ " ${all_stages[*]} " == *" $a "* ]]; then asked+=("$a")
      else echo "gpu_check: unknown stage '$a' (stages: ${all_stages[*]} sanitizers bench)" >&2; exit 2; fi ;;
  esac
done
[ ${#asked[@]} -eq 0 ] && asked=("${all_stages[@]}")

# ---- the bundle -------------------------------------------------------------------------
if [ -n "${SY_BUNDLE_DIR:-}" ]; then
  b=$(cd "$SY_BUNDLE_DIR" && pwd)
else
  bundle=${SY_BUNDLE:-.device/bundle.tar.xz}
  if [ ! -f "$bundle" ]; then
    echo "gpu_check: no bundle at $bundle: run 'bash scripts/gpu_bundle.sh' on the build machine" >&2
    exit 2
  fi
  rm -rf /tmp/sy && mkdir -p /tmp/sy
  if ! tar -C /tmp/sy -xJf "$bundle"; then
    echo "gpu_check: cannot unpack $bundle (is xz there?)" >&2
    exit 2
  fi
  b=/tmp/sy/bundle
fi
sy=$b/bin/switchyard

# ---- libraries: the bundle's, then each missing one wherever this machine keeps it -------
# (the CUDA toolkit, the driver's folder, or Python packages, possibly each elsewhere).
search_roots=(/usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib /usr/local/nvidia /usr/lib/x86_64-linux-gnu
              /usr/lib64 /usr/local/lib /opt /usr/local/lib/python3* /usr/lib/python3* /root/.local)
py_site=$(python3 -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null || true)
lib_path="$b/lib"
resolve_libs() {  # resolve_libs FILE...: extends lib_path until ldd finds everything it can
  local pass missing name dir
  for pass in 1 2 3 4; do
    missing=$(for f in "$@"; do LD_LIBRARY_PATH="$lib_path" ldd "$f" 2>/dev/null; done |
              awk '/=> not found/ {print $1}' | sort -u)
    [ -z "$missing" ] && return 0
    local found_any=0
    for name in $missing; do
      dir=$(timeout 60 find "${search_roots[@]}" $py_site -name "$name" \( -type f -o -type l \) 2>/dev/null | head -1)
      if [ -n "$dir" ]; then
        lib_path="$lib_path:$(dirname "$dir")"
        echo "found $name in $(dirname "$dir")"
        found_any=1
      fi
    done
    [ $found_any = 1 ] || return 1
  done
}
binaries=("$b"/bin/*)
[ -x "$b/ompi/bin/mpirun" ] && binaries+=("$b/ompi/bin/mpirun" "$b/ompi/bin/orted")
resolve_libs "${binaries[@]}" >"$out/libs_search.txt" 2>&1
export LD_LIBRARY_PATH="$lib_path:${LD_LIBRARY_PATH:-}"

# ---- stages -------------------------------------------------------------------------------
: >"$out/summary.txt"
declare -A verdict
failed=0
gate_failed=""  # the libs or device stage, when it failed

# Reads a stage's log and return code; prints its verdict.
judge() {  # judge NAME RC LIMIT
  local log="$out/$1.txt" rc=$2 first
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "failed (timed out after $3 s)"
  elif [ "$rc" != 0 ]; then
    first=$(grep -m1 -E 'FAILED|[Ee]rror|ERROR|fatal|not found|FAIL|Assertion|CUDA error|NCCL' "$log" | cut -c1-200)
    echo "failed (exit $rc): ${first:-$(tail -1 "$log" | cut -c1-200)}"
  elif first=$(grep -m1 -iw 'skipped' "$log"); then
    echo "failed (a test skipped, so nothing was verified): $(cut -c1-200 <<<"$first")"
  elif grep -qE '^\[  PASSED  \] 0 tests' "$log"; then
    echo "failed (no test ran: the filter matched nothing)"
  else
    echo "passed"
  fi
}

stage() {  # stage NAME TIMEOUT COMMAND...: runs one stage if it was asked for
  local name=$1 limit=$(( $2 * scale )); shift 2
  [[ " ${asked[*]} " == *" $name "* ]] || return 0
  local v
  local left=$((deadline - SECONDS))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ -n "$gate_failed" ] && [ "$name" != libs ] && [ "$name" != device ] && [ -z "${SY_GPU_CHECK_FORCE:-}" ]; then
    v="not run ($gate_failed failed)"
  elif [ "$limit" -lt 15 ]; then
    v="not run (the time budget of $budget s is spent)"
  else
    local t0=$SECONDS
    # A fresh bash that knows this script's functions and variables, so that
    # `timeout` (which runs programs, not functions) can bound a function too.
    timeout --kill-after=10 "$limit" bash -c "$(declare -f $stage_functions); $(declare -p b sy out binaries); \"\$@\"" \
      stage "$@" >"$out/$name.txt" 2>&1
    local rc=$?
    v="$(judge "$name" $rc "$limit") [$((SECONDS - t0)) s]"
  fi
  verdict[$name]=$v
  echo "$name: $v" | tee -a "$out/summary.txt"
  case $v in
    passed*) ;;
    failed*) failed=1; { [ "$name" = libs ] || [ "$name" = device ]; } && gate_failed=${gate_failed:-$name} ;;
    *) failed=1 ;;  # not run: not verified either
  esac
  return 0
}

check_libs() {
  cat "$out/libs_search.txt"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  local bad=0 f
  for f in "${binaries[@]}"; do
    echo "== $f"
    ldd "$f" | grep -E 'not found|libcuda|libcudart|libcublas|libnccl|libmpi' || true
    if ldd "$f" | grep -q 'not found'; then
      echo "error: $(basename "$f") cannot load: $(ldd "$f" | awk '/not found/ {print $1}' | tr '\n' ' ')"
      bad=1
    fi
  done
  "$sy" --version || bad=1
  return $bad
}

check_device() {
  if command -v nvidia-smi >/dev/null; then timeout 30 nvidia-smi || true
  else echo "nvidia-smi: not on PATH"; fi
  "$b/bin/test_backend_cuda" --gtest_filter='CudaDevice.*' --gtest_color=no
}

sanitize() {  # sanitize TOOL
  local san
  san=$(command -v compute-sanitizer || find /usr/local /opt -maxdepth 6 -name compute-sanitizer \
        -type f -perm -u+x 2>/dev/null | head -1)
  if [ -z "$san" ]; then echo "error: compute-sanitizer not found"; return 1; fi
  "$san" --tool "$1" --error-exitcode 9 --print-limit 20 \
    "$b/bin/test_backend_cuda" --gtest_filter='Ops/OpDevice.*:Ops/OpDeviceBf16.*' --gtest_color=no
}

nccl_np1() {
  local launcher=(mpirun) root=()
  if [ -x "$b/ompi/bin/mpirun" ]; then
    # Relocated: every path from the bundle, and no system-wide Open MPI settings
    # (an /etc/openmpi of another Open MPI could select plugins this one lacks).
    export OPAL_PREFIX="$b/ompi" OPAL_SYSCONFDIR="$b/ompi/etc" PMIX_PREFIX="$b/ompi/pmix" \
           PMIX_MCA_mca_base_component_path="$b/ompi/pmix/lib/pmix"
    export PATH="$b/ompi/bin:$PATH"
    launcher=("$b/ompi/bin/mpirun")
  fi
  [ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
  # One node, shared memory only: no network plugins are needed or wanted.
  OMPI_MCA_btl=self,vader OMPI_MCA_pml=ob1 OMPI_MCA_mtl='^ofi,psm,psm2' OMPI_MCA_osc='^ucx' \
    "${launcher[@]}" -np 1 "${root[@]}" "$b/bin/test_nccl" --gtest_color=no
}

bench() {  # bench ROUTER|dense
  if [ "$1" = dense ]; then "$sy" bench --config configs/bench_gpu_dense.yaml; return; fi
  "$sy" bench --config configs/bench_gpu.yaml --set moe.router="$1"
}

stage_functions="check_libs check_device sanitize nccl_np1 bench"

{
  echo "bundle: $(cat "$b/BUILD.txt" 2>/dev/null | tr '\n' ' ')"
  echo "host: $(uname -a)"
  timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
} >"$out/machine.txt"

stage libs 60 check_libs
stage device 60 check_device
stage ops 180 env CUDA_LAUNCH_BLOCKING=1 "$b/bin/test_backend_cuda" --gtest_filter='Ops/OpDevice.*:Ops/OpDeviceBf16.*' --gtest_color=no
stage routing 60 "$b/bin/test_route_ops_cuda" --gtest_color=no
stage parity 300 bash tests/cli/cuda_parity.sh "$sy" tests/cli/tiny.yaml
stage nccl 120 nccl_np1
stage memcheck 180 sanitize memcheck
stage bench_dense 180 bench dense
stage bench_moe 240 bench expert_choice
stage racecheck 240 sanitize racecheck
stage synccheck 180 sanitize synccheck
stage initcheck 180 sanitize initcheck

# Every stage asked for has a verdict, or something went wrong in this script.
[ ${#verdict[@]} -eq ${#asked[@]} ] || { echo "gpu_check: ${#verdict[@]} verdicts for ${#asked[@]} stages" | tee -a "$out/summary.txt"; failed=1; }
echo "total: $((SECONDS - started)) s" | tee -a "$out/summary.txt"
exit $failed
