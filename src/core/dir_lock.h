#pragma once
// An exclusive lock on a directory: one trainer per run directory, one sweep per
// sweep directory.
#include <string>

namespace sy {

// An exclusive lock on a directory: <dir>/.switchyard.lock, locked with flock() and
// holding the holder's PID, host, start time and command. The lock dies with its
// process (even on SIGKILL), so a lock file left behind is stale, noticed and taken
// over with a warning. Released by the destructor (or at exit).
class DirLock {
 public:
  DirLock() = default;
  DirLock(DirLock&& o) noexcept;
  DirLock& operator=(DirLock&& o) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();
  bool held() const { return fd_ >= 0; }

  // Takes the lock of `dir` (which must exist) for `what` ("training", "a sweep").
  // Throws Error(bad_input) naming the holder when it is held, or when the
  // directory cannot be written (read-only, no permission).
  static DirLock acquire(const std::string& dir, const std::string& what);
  // The holder's description if `dir` is locked now, else "".
  static std::string holder(const std::string& dir);

 private:
  int fd_ = -1;
};

}  // namespace sy
