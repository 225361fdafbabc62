# Sourced by the CLI test scripts: the binary and config as absolute paths, this
# folder, Debian's python3 (it has numpy, from scripts/setup.sh), and a scratch
# folder removed on exit.  Usage: source lib.sh BIN [CONFIG]
bin=$(realpath "$1")
cfg=${2:+$(realpath "$2")}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
