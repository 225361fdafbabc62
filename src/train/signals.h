#pragma once
// SIGTERM / SIGINT set a flag and nothing else (no blocking in the handler); the
// trainer reads it at step boundaries, agrees on it across ranks, checkpoints and
// exits with code 3 (preempted: requeue me). Before the first step the same
// agreement ends the run with exit 3 having written nothing. `train` installs the
// handlers as its first instruction (and unblocks both signals, which a launcher
// may have blocked to hold a stop until then).
namespace sy {

void install_stop_handlers();
bool stop_requested();

}  // namespace sy
