#!/usr/bin/env bash
# expect.sh BIN CONFIG: runs `BIN train -c CONFIG` and checks the exit code and the
# messages that CONFIG's header declares ("# expect: exit N", "# expect: TEXT").
set -u
bin=$(realpath "$1") cfg=$(realpath "$2")
want_code=$(sed -n 's/^# expect: exit \([0-9]*\)$/\1/p' "$cfg")
out=$(cd "$(dirname "$cfg")" && "$bin" train -c "$(basename "$cfg")" --set run.dir="${TMPDIR:-/tmp}/sy-expect-$$" 2>&1)
code=$?
fail=0
if [ "$code" != "$want_code" ]; then
  echo "FAIL: exit code $code, expected $want_code"; fail=1
fi
while IFS= read -r line; do
  if ! grep -qF -- "$line" <<<"$out"; then
    echo "FAIL: message missing: $line"; fail=1
  fi
done < <(sed -n 's/^# expect: //p' "$cfg" | grep -v '^exit ')
[ $fail = 0 ] && echo "ok: $(basename "$cfg") exits $code with the expected messages" || echo "output was:" && echo "$out"
exit $fail
