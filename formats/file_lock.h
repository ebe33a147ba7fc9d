#pragma once
// An exclusive lock on a file that several processes may want to write (a result file, shared by Slurm
// tasks on one filesystem): `<path>.lock`, holding the holder's "pid@host" so that the one refused can
// name it, removed when released. Held with flock(2); where the filesystem has no flock (Lustre or NFS
// mounted without it: flock fails with ENOLCK, EOPNOTSUPP or ENOSYS), or with VARBENCH_LOCK=exclusive-create
// (Lustre's `localflock` locks per node only, which is no lock for tasks on several nodes), the lock is
// the file's exclusive creation (O_EXCL) instead. Such a lock outlives a killed holder: one whose holder
// was on this host and no longer runs is taken over; one from another host names that host and says to
// delete the file once that process is gone.
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
  bool exclusive_create() const { return exclusive_create_; }  // the lock is the file's existence, not flock

 private:
  void take_by_exclusive_create(const std::string& path, const std::string& why);
  std::string lock_path_;
  int fd_ = -1;
  bool exclusive_create_ = false;
};

}  // namespace varbench
