#include "core/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>

#include "core/errors.h"
#include "core/log.h"

namespace sy {

namespace {

constexpr const char* kLockName = ".switchyard.lock";

std::string read_all(int fd) {
  std::string text;
  char buf[512];
  ::lseek(fd, 0, SEEK_SET);
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string self_description() {
  char host[256] = "?";
  ::gethostname(host, sizeof host - 1);
  std::string cmd;
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  for (std::string arg; std::getline(in, arg, '\0');) cmd += (cmd.empty() ? "" : " ") + arg;
  const std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return fmt::format("PID {} on host {} since {}: {}", ::getpid(), host, when, cmd);
}

}  // namespace

DirLock::DirLock(DirLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
DirLock& DirLock::operator=(DirLock&& o) noexcept {
  std::swap(fd_, o.fd_);
  return *this;
}
// A clean release empties the file: a lock file with content found later was left
// by a process that died holding it. Closing releases the flock; the file stays.
DirLock::~DirLock() {
  if (fd_ < 0) return;
  if (::ftruncate(fd_, 0) != 0) {
    // Nothing to do about it: the next holder will only warn about a stale lock.
  }
  ::close(fd_);
}

// The lock file is never deleted: removing a locked file would let a process that
// opened it just before and one that creates a new one both "hold" the lock.
DirLock DirLock::acquire(const std::string& dir, const std::string& what) {
  const std::string path = dir + "/" + kLockName;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error(ExitCode::bad_input,
                fmt::format("cannot use '{}' for {}: {} (a read-only or foreign directory? choose "
                            "another one)",
                            dir, what, std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string who = read_all(fd);
    ::close(fd);
    if (err == EWOULDBLOCK)
      throw Error(ExitCode::bad_input,
                  fmt::format("'{}' is in use by another switchyard ({}); wait for it to end, or "
                              "choose another directory",
                              dir, who.empty() ? "holder unknown" : who));
    throw Error(ExitCode::bad_input,
                fmt::format("cannot lock '{}' for {}: {}", path, what, std::strerror(err)));
  }
  const std::string previous = read_all(fd);
  if (!previous.empty())
    log_warn("{}: a lock left by a process that is gone ({}): taking it over", dir, previous);
  const std::string me = self_description() + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    const int err = errno;
    ::close(fd);
    throw Error(ExitCode::bad_input,
                fmt::format("cannot write '{}': {} (disk full or read-only?)", path, std::strerror(err)));
  }
  DirLock lock;
  lock.fd_ = fd;
  return lock;
}

std::string DirLock::holder(const std::string& dir) {
  const std::string path = dir + "/" + kLockName;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string who;
  // A shared lock we can take means nobody holds the exclusive one.
  if (::flock(fd, LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd, LOCK_UN);
  } else {
    who = read_all(fd);
    if (who.empty()) who = "holder unknown";
  }
  ::close(fd);
  return who;
}

}  // namespace sy
