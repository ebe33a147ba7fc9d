#pragma once
// An exclusive lock on a file that several processes may want to write (a result file, shared by Slurm
// tasks on one filesystem): `<path>.lock`, held with flock(2) for the lock's lifetime and holding the
// holder's "pid@host" so that the one refused can name it. Removed when released.
#include <string>

namespace varbench {

class FileLock {
 public:
  // Throws "<path> is being written by pid P on host H (lock <path>.lock) ..." when another process holds it.
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  const std::string& lock_path() const { return lock_path_; }

 private:
  std::string lock_path_;
  int fd_ = -1;
};

}  // namespace varbench
