#!/usr/bin/env bash
# Command-line mistakes exit 2 with a message; --version and --help exit 0.
set -u
bin=$1
fail=0
check() {  # check WANT_CODE PATTERN ARGS...
  local want=$1 pattern=$2; shift 2
  local out code
  out=$("$bin" "$@" 2>&1); code=$?
  if [ "$code" != "$want" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: switchyard $* → exit $code (want $want), output:"; echo "$out"; fail=1
  else
    echo "ok: switchyard $* → exit $code"
  fi
}
check 0 '^switchyard [0-9]+\.[0-9]+\.[0-9]+' --version
check 0 'train' --help
check 2 'subcommand' 
check 2 'subcommand|frobnicate' frobnicate
check 2 '--config is required' train
check 2 "cannot read config file 'nope.yaml'" train -c nope.yaml
check 2 'expected KEY=VALUE' train -c /dev/null --set lr
exit $fail
