#pragma once
// SIGTERM / SIGINT set a flag and nothing else (no blocking in the handler); the
// trainer reads it at step boundaries, agrees on it across ranks, checkpoints and
// exits with code 3 (preempted: requeue me).
namespace sy {

void install_stop_handlers();
bool stop_requested();

}  // namespace sy
