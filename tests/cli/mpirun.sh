#!/usr/bin/env bash
# mpirun.sh NP ARGS...: Open MPI's mpirun with the flags a test machine needs
# (oversubscription on 2 cores; root allowed in containers).
set -eu
np=$1; shift
flags=(--oversubscribe)
[ "$(id -u)" = 0 ] && flags+=(--allow-run-as-root)
exec mpirun -np "$np" "${flags[@]}" "$@"
