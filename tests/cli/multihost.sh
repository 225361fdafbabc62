#!/usr/bin/env bash
# multihost.sh BIN CONFIG MODE: training across "hosts" made as network namespaces
# on this machine (veth pairs to a bridge in a switch namespace, one IP per host,
# each host with its own hostname), mpirun over TCP with Open MPI's remote launcher
# pointed at a script that enters a host's namespace instead of ssh. Needs root.
#
#   equal      4 hosts × 1 rank, MoE dp 2 × ep 2: losses and weights equal the same
#              layout on one host (1e-5; the bits are in fact the same).
#   degraded   the same with one host's link slowed and lossy (netem delay + loss
#              where the kernel has it, else a token-bucket rate limit and random
#              drops by nftables): the run finishes with the same result.
#   link_down  one host's link taken down mid-run: every rank ends with exit 6
#              within parallel.step_timeout_s of it, no process is left in any
#              host, the last committed checkpoint verifies, and the run resumes on
#              two of the remaining hosts (ep 2 × dp 1, 2 micro-batches: the same
#              global batch), its steps matching the 4-host run's to 1e-5.
#
# Exit 77 (ctest: skipped) with the reason when namespaces cannot be made here;
# SWITCHYARD_REQUIRE_NETNS=1 (CI) turns that into a failure.
set -u
source "$(dirname "$0")/lib.sh" "$1" "$2"
mode=$3
fail() { echo "FAIL: $*"; exit 1; }
skip() {
  if [ "${SWITCHYARD_REQUIRE_NETNS:-0}" = 1 ]; then fail "cannot run here: $*"; fi
  echo "SKIPPED: $*"; exit 77
}
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
command -v ip >/dev/null || skip "the ip command (iproute2) is missing"
command -v unshare >/dev/null || skip "unshare (util-linux) is missing"

p="sy$$"  # namespace names: ${p}sw (the switch), ${p}h0 .. ${p}h3
hosts=4
cleanup() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$p"); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "${p}sw" 2>/dev/null || skip "ip netns add failed (no permission for namespaces?)"
ip -n "${p}sw" link add br0 type bridge && ip -n "${p}sw" link set br0 up || fail "bridge"
for h in $(seq 0 $((hosts - 1))); do
  ip netns add "${p}h$h" || fail "namespace h$h"
  ip link add "v$p$h" netns "${p}h$h" type veth peer name "s$p$h" netns "${p}sw" || fail "veth h$h"
  ip -n "${p}sw" link set "s$p$h" master br0 && ip -n "${p}sw" link set "s$p$h" up &&
    ip -n "${p}h$h" link set lo up && ip -n "${p}h$h" link set "v$p$h" up &&
    ip -n "${p}h$h" addr add "10.77.0.$((h + 1))/24" dev "v$p$h" || fail "addresses h$h"
  # TCP gives up on unacknowledged data after ~6 s instead of Linux's ~15 min
  # (tcp_retries2 = 15): what lets the launcher notice a dead host (docs/distributed.md).
  ip netns exec "${p}h$h" sysctl -q -w net.ipv4.tcp_retries2=5 || fail "sysctl h$h"
done

# The launcher's "ssh": HOST COMMAND... runs COMMAND in HOST's namespace, with the
# hostname of that host (Open MPI joins the command into one string for a remote
# shell; sh -c parses it the way sshd's shell would).
cat >"$dir/rsh" <<EOF
#!/bin/sh
host=\$1; shift
case "\$host" in 10.77.0.[1-$hosts]) h=\$((\${host##*.} - 1));; *) echo "netns rsh: unknown host \$host" >&2; exit 255;; esac
exec ip netns exec "${p}h\$h" unshare --uts sh -c "hostname host\$h; exec \$*"
EOF
# Each rank records where it ran (hostname, network namespace) and how it ended.
cat >"$dir/rank" <<EOF
#!/bin/sh
r=\${OMPI_COMM_WORLD_RANK:-x}
echo "\$(hostname) \$(readlink /proc/self/ns/net)" >"$dir/where.\$r"
"\$@"
code=\$?
echo \$code >"$dir/exit.\$r"
exit \$code
EOF
chmod +x "$dir/rsh" "$dir/rank"

S=(--set moe.num_experts=4 --set moe.router=gshard_top2 --set run.log_every=1 --set train.eval_every=0
   --set train.eval_batches=1 --set parallel.check_replicas_every=1)
# mpirun from host 0 across the first N hosts, 1 rank each, over TCP only. The
# launcher's keepalive (Open MPI's default: minutes) notices a dead host after about
# 2 + 9 s: longer than the step timeout below, so that the ranks end first, through
# their own watchdog (exit 6); docs/distributed.md gives the same flags for clusters.
across() {  # across N ARGS...: mpirun over hosts 0..N-1
  local n=$1; shift
  seq 1 "$n" | sed 's/^/10.77.0./; s/$/ slots=1/' >"$dir/hostfile"
  local flags=(--allow-run-as-root -np "$n" --hostfile "$dir/hostfile" --mca plm_rsh_agent "$dir/rsh"
               --mca btl tcp,self --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24
               --mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 9)
  ip netns exec "${p}h0" unshare --uts sh -c 'hostname host0; exec "$@"' sh \
    mpirun "${flags[@]}" "$dir/rank" "$bin" train -c "$cfg" "${S[@]}" "$@"
}
compare() {  # compare A B TOL [FROM]: the losses of the steps (from FROM on) both logged and,
             # if both have them, final weights
  "$py" - "$1" "$2" "$3" "${4:-0}" <<'PY' || fail "$1 and $2 differ"
import json, os, struct, sys
import numpy as np
a, b, tol, first = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
def rows(path):
    return {r["step"]: r for r in map(json.loads, open(path))}
def load(d):
    w = {}
    for f in sorted(os.listdir(d)):
        if f.startswith("model") and f.endswith(".safetensors"):
            data = open(os.path.join(d, f), "rb").read()
            (n,) = struct.unpack("<Q", data[:8])
            h = json.loads(data[8:8 + n]); h.pop("__metadata__", None)
            for k, v in h.items():
                if v["dtype"] == "F32":
                    w[k] = np.frombuffer(data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], np.float32)
    return w
ma = rows(a if a.endswith(".jsonl") else a + "/metrics.jsonl")
mb = rows(b if b.endswith(".jsonl") else b + "/metrics.jsonl")
common = sorted(s for s in set(ma) & set(mb) if s >= first)
assert len(common) >= 3, ("too few common steps", sorted(ma), sorted(mb))
worst = 0.0
for s in common:
    for k in ("loss", "nll", "grad_norm"):
        e = abs(ma[s][k] - mb[s][k]) / abs(mb[s][k])
        worst = max(worst, e)
        assert e < tol, (s, k, ma[s][k], mb[s][k])
if not a.endswith(".jsonl") and os.path.exists(a + "/weights.json") and os.path.exists(b + "/weights.json"):
    wa, wb = load(a), load(b)
    assert sorted(wa) == sorted(wb) and wa
    for k in wa:
        e = np.linalg.norm((wa[k] - wb[k]).astype(np.float64)) / max(np.linalg.norm(wb[k].astype(np.float64)), 1e-30)
        worst = max(worst, e)
        assert e < tol, (k, e)
print(f"  {len(common)} steps compared, worst relative difference {worst:.1e}")
PY
}
where_check() {  # every rank on its own host and network namespace
  local n=$1
  [ "$(cat "$dir"/where.* | awk '{print $1}' | sort -u | wc -l)" = "$n" ] &&
    [ "$(cat "$dir"/where.* | awk '{print $2}' | sort -u | wc -l)" = "$n" ] ||
    { cat "$dir"/where.*; fail "the ranks did not run on $n separate hosts"; }
  rm -f "$dir"/where.*
}
single_host() {  # single_host RUN_DIR ARGS...: the same layout on this machine's own network
  bash "$here/mpirun.sh" 4 "$bin" train -c "$cfg" "${S[@]}" --set parallel.expert_parallel=2 \
    --set run.dir="$1" "${@:2}" >"$1.log" 2>&1 || { tail "$1.log"; fail "single-host run"; }
}

case "$mode" in
equal | degraded)
  single_host "$dir/one" --set train.steps=8
  if [ "$mode" = degraded ]; then
    # Host 1's link, both directions: delay and loss.
    if ip netns exec "${p}h1" tc qdisc add dev "v${p}1" root netem delay 20ms 5ms loss 2% 2>/dev/null; then
      ip netns exec "${p}sw" tc qdisc add dev "s${p}1" root netem delay 20ms 5ms loss 2% || fail "netem"
      echo "host 1: netem delay 20 ms ± 5 ms, 2% loss each way"
    else
      command -v nft >/dev/null || skip "no netem in this kernel and no nft (nftables) for random loss"
      for side in "${p}h1 v${p}1" "${p}sw s${p}1"; do
        set -- $side
        ip netns exec "$1" tc qdisc add dev "$2" root tbf rate 2mbit burst 8kb latency 100ms || fail "tbf"
      done
      ip netns exec "${p}h1" nft -f - <<'NFT' || fail "nft"
table inet faults {
  chain in { type filter hook input priority 0; numgen random mod 100 < 3 drop; }
  chain out { type filter hook output priority 0; numgen random mod 100 < 3 drop; }
}
NFT
      echo "host 1: no netem in this kernel; rate limit 2 Mbit/s (queueing delay up to 100 ms) and 3% random loss each way"
    fi
  fi
  start=$(date +%s)
  across 4 --set parallel.expert_parallel=2 --set train.steps=8 --set run.dir="$dir/four" \
    >"$dir/four.log" 2>&1 || { tail -20 "$dir/four.log"; fail "the 4-host run"; }
  where_check 4
  compare "$dir/four" "$dir/one" 1e-5
  if [ "$mode" = degraded ]; then
    # The faults were there: host 1 lost packets (retransmissions in its TCP counters).
    retrans=$(ip netns exec "${p}h1" awk '/^Tcp:/ {n++; if (n == 2) for (i = 1; i <= NF; i++) if (h[i] == "RetransSegs") print $i; if (n == 1) for (i = 1; i <= NF; i++) h[i] = $i}' /proc/net/snmp)
    [ "${retrans:-0}" -gt 0 ] || fail "host 1 retransmitted nothing: the fault was not applied"
    echo "ok: 4 hosts with host 1's link degraded ($retrans TCP retransmissions, $(( $(date +%s) - start )) s) give the single-host result"
  else
    echo "ok: 4 hosts over TCP (dp 2 × ep 2) give the single-host result"
  fi
  ;;
link_down)
  timeout_s=6
  steps=300
  run="$dir/run"
  across 4 --set parallel.expert_parallel=2 --set train.steps=$steps --set checkpoint.every=10 \
    --set parallel.step_timeout_s=$timeout_s --set run.dir="$run" >"$dir/run.log" 2>&1 &
  launcher=$!
  # Down after the first checkpoint and a few logged steps past it (steps the
  # resumed run must repeat).
  for _ in $(seq 1 600); do
    [ -s "$run/checkpoints/latest" ] && [ "$(wc -l <"$run/metrics.jsonl")" -ge 15 ] && break
    sleep 0.1
  done
  [ -s "$run/checkpoints/latest" ] || { tail "$dir/run.log"; fail "no checkpoint within 60 s"; }
  down=$(date +%s.%N)
  ip -n "${p}h3" link set "v${p}3" down || fail "link down"
  echo "host 3's link down after $(cat "$run/checkpoints/latest")"
  wait "$launcher"
  launcher_code=$?
  ended=$(date +%s.%N)
  where_check 4
  for r in 0 1 2 3; do
    [ -f "$dir/exit.$r" ] || fail "rank $r left no exit code (killed by the launcher?)"
    code=$(cat "$dir/exit.$r")
    [ "$code" = 6 ] || { tail "$dir/run.log"; fail "rank $r exited $code, want 6"; }
    late=$("$py" -c "import os,sys; print(os.path.getmtime('$dir/exit.$r') - $down)")
    "$py" -c "import sys; sys.exit(0 if $late < $timeout_s + 3 else 1)" ||
      fail "rank $r ended $late s after the link went down (parallel.step_timeout_s = $timeout_s)"
  done
  sleep 2
  for ns in $(ip netns list | awk '{print $1}' | grep "^$p"); do
    left=$(ip netns pids "$ns")
    [ -z "$left" ] || { ps -o pid,cmd -p $left; fail "processes left behind in $ns"; }
  done
  echo "ok: link down → all 4 ranks exit 6 within ${timeout_s} s (+ the step in flight), mpirun returned $launcher_code" \
       "after $("$py" -c "print(round($ended - $down, 1))") s, nothing left running"
  latest=$(cat "$run/checkpoints/latest")
  "$bin" verify "$run/checkpoints/$latest" >"$dir/verify.log" 2>&1 || { cat "$dir/verify.log"; fail "verify $latest"; }
  cp "$run/metrics.jsonl" "$dir/before.jsonl"
  rm -f "$dir"/exit.*
  ip -n "${p}h3" link set "v${p}3" up
  across 2 --set parallel.expert_parallel=2 --set train.grad_accum=2 --set train.steps=$steps --set checkpoint.every=10 \
    --set parallel.step_timeout_s=$timeout_s --set run.dir="$run" --resume auto >"$dir/resume.log" 2>&1 ||
    { tail -20 "$dir/resume.log"; fail "resume on 2 hosts"; }
  where_check 2
  grep -q "resumed from .*$latest" "$dir/resume.log" || fail "did not resume from $latest"
  [ "$(tail -1 "$run/metrics.jsonl" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["step"])')" = $((steps - 1)) ] ||
    fail "the resumed run did not reach step $steps"
  compare "$dir/before.jsonl" "$run/metrics.jsonl" 1e-5 "$((10#${latest#step_}))"
  echo "ok: $latest verifies; resumed on 2 hosts (ep 2 × dp 1) it repeats the 4-host steps after it and finishes"
  ;;
*) fail "mode: equal, degraded or link_down" ;;
esac
