# Sourced by the fetch scripts.
# require_sha256 NAME FILE SHA256: exit 2 (deleting FILE) unless FILE has that checksum.
require_sha256() {
  local got
  got=$(sha256sum "$2" | cut -d' ' -f1)
  if [ "$got" != "$3" ]; then
    echo "$1: checksum mismatch for $2: got $got, want $3; deleting it (run the script again)" >&2
    rm -f "$2"
    exit 2
  fi
}
