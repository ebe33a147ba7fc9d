#include "formats/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace varbench {

namespace {
std::string read_holder(int fd) {
  char buf[256] = {0};
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
  return holder;
}
std::string me() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::to_string(getpid()) + "@" + host;
}

std::string holder_text(const std::string& holder) {
  const auto at = holder.find('@');
  return at == std::string::npos ? "another process" : "pid " + holder.substr(0, at) + " on host " + holder.substr(at + 1);
}
}  // namespace

void FileLock::take_by_exclusive_create(const std::string& path, const std::string& why) {
  exclusive_create_ = true;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int fd = ::open(lock_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      const std::string note = me() + "\n";
      const bool written = ::write(fd, note.data(), note.size()) == static_cast<ssize_t>(note.size()) && ::fsync(fd) == 0;
      ::close(fd);
      if (!written) {
        ::unlink(lock_path_.c_str());
        throw std::runtime_error(path + ": cannot write the lock file " + lock_path_ + ": " + std::strerror(errno));
      }
      return;
    }
    if (errno != EEXIST)
      throw std::runtime_error(path + ": cannot create the lock file " + lock_path_ + " (" + why + "): " + std::strerror(errno));
    const int existing = ::open(lock_path_.c_str(), O_RDONLY | O_CLOEXEC);
    const std::string holder = existing >= 0 ? read_holder(existing) : "";
    if (existing >= 0) ::close(existing);
    const auto at = holder.find('@');
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    if (at != std::string::npos && holder.substr(at + 1) == host) {
      const long pid = std::strtol(holder.substr(0, at).c_str(), nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        ::unlink(lock_path_.c_str());  // its holder was killed on this host: the lock is stale
        continue;
      }
    }
    throw std::runtime_error(path + " is being written by " + holder_text(holder) + " (lock file " + lock_path_ + ", " + why +
                             "): two processes never write one result file; wait for it, give each its own --out, or delete " +
                             lock_path_ + " if that process is gone");
  }
  throw std::runtime_error(path + ": could not take the lock " + lock_path_);
}

FileLock::FileLock(const std::string& path) : lock_path_(path + ".lock") {
  if (const char* mode = std::getenv("VARBENCH_LOCK"); mode && *mode) {
    if (std::string(mode) == "exclusive-create") {
      take_by_exclusive_create(path, "exclusive-create lock: VARBENCH_LOCK");
      return;
    }
    if (std::string(mode) != "flock")
      throw std::runtime_error(std::string("VARBENCH_LOCK='") + mode + "': expected flock (the default) or exclusive-create");
  }
  // The lock file is removed on release; a process that opened it just before then would lock an inode
  // no longer at the path, so the lock is only taken once the path still names the locked inode.
  for (int attempt = 0; attempt < 100; ++attempt) {
    fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw std::runtime_error(path + ": cannot create the lock file " + lock_path_ + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const std::string holder = read_holder(fd_);
      ::close(fd_);
      fd_ = -1;
      if (err == EWOULDBLOCK)
        throw std::runtime_error(path + " is being written by " + holder_text(holder) + " (lock " + lock_path_ +
                                 "): two processes never write one result file; wait for it, or give each its own --out");
      if (err == ENOLCK || err == EOPNOTSUPP || err == ENOSYS || err == EINVAL) {
        // A filesystem without flock: the lock file we just created (empty) is ours to replace.
        if (holder.empty()) ::unlink(lock_path_.c_str());
        take_by_exclusive_create(path, std::string("exclusive-create lock: flock failed with ") + std::strerror(err));
        return;
      }
      throw std::runtime_error(path + ": cannot lock " + lock_path_ + ": " + std::strerror(err));
    }
    struct stat held {}, named {};
    if (::fstat(fd_, &held) == 0 && ::stat(lock_path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev) {
      const std::string note = me() + "\n";
      if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, note.data(), note.size(), 0) != static_cast<ssize_t>(note.size())) {
        // The lock holds without the note; only the refused process's message is vaguer.
      }
      return;
    }
    ::close(fd_);  // released and removed under us: take the new file
    fd_ = -1;
  }
  throw std::runtime_error(path + ": could not take the lock " + lock_path_);
}

FileLock::~FileLock() {
  if (exclusive_create_) {
    ::unlink(lock_path_.c_str());
    return;
  }
  if (fd_ < 0) return;
  ::unlink(lock_path_.c_str());
  ::close(fd_);
}

}  // namespace varbench
