// data_dir_lock.hpp - an flock'd lock file, so two clapsd on one data dir
// fail fast instead of corrupting each other's view of LMDB.
#pragma once

#include <string>

namespace claps::server {

class data_dir_lock {
public:
  /// Creates `dir` if missing and takes an exclusive lock on dir/clapsd.lock.
  /// On failure returns an empty lock and sets `error` to a message for the user.
  static data_dir_lock acquire(const std::string& dir, std::string& error);

  data_dir_lock() = default;
  data_dir_lock(data_dir_lock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  data_dir_lock& operator=(data_dir_lock&& other) noexcept;
  ~data_dir_lock();
  data_dir_lock(const data_dir_lock&) = delete;
  data_dir_lock& operator=(const data_dir_lock&) = delete;

  bool held() const noexcept { return fd_ >= 0; }

  /// The data directory's owner id (dir/node-owner): 32 random hex digits,
  /// written (fsync'd, then renamed into place) on first use and read after.
  /// With several nodes it binds --node-id to this directory, so a second
  /// directory started with the same node id is refused by Redis. Call while
  /// holding the lock. Empty with `error` set on failure.
  static std::string owner_id(const std::string& dir, std::string& error);

private:
  explicit data_dir_lock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace claps::server
