#include "formats/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

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
}  // namespace

FileLock::FileLock(const std::string& path) : lock_path_(path + ".lock") {
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
      if (err == EWOULDBLOCK) {
        const auto at = holder.find('@');
        const std::string who = at == std::string::npos ? "another process"
                                                         : "pid " + holder.substr(0, at) + " on host " + holder.substr(at + 1);
        throw std::runtime_error(path + " is being written by " + who + " (lock " + lock_path_ +
                                 "): two processes never write one result file; wait for it, or give each its own --out");
      }
      throw std::runtime_error(path + ": cannot lock " + lock_path_ + ": " + std::strerror(err));
    }
    struct stat held {}, named {};
    if (::fstat(fd_, &held) == 0 && ::stat(lock_path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev) {
      char host[256] = {0};
      gethostname(host, sizeof host - 1);
      const std::string me = std::to_string(getpid()) + "@" + host + "\n";
      if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
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
  if (fd_ < 0) return;
  ::unlink(lock_path_.c_str());
  ::close(fd_);
}

}  // namespace varbench
