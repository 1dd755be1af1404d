#include "data_dir_lock.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace claps::server {

data_dir_lock data_dir_lock::acquire(const std::string& dir, std::string& error) {
  std::error_code ec;
  // A new data dir is readable by its owner only: it holds every user's claps.
  const bool existed = std::filesystem::exists(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (!ec && !existed)
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  if (ec) {
    error = "cannot create data dir '" + dir + "': " + ec.message();
    return {};
  }
  const std::string path = dir + "/clapsd.lock";
  // O_NOFOLLOW: a symlink planted at the lock's path is refused, not
  // followed and truncated below.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    error = "cannot open lock file '" + path + "': " + std::strerror(errno);
    return {};
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    error = err == EWOULDBLOCK ? "data dir '" + dir + "' is in use by another clapsd (lock file " + path +
                                     " is held); stop it or pass another --data-dir"
                               : "cannot lock '" + path + "': " + std::strerror(err);
    return {};
  }
  // Record the holder's pid for humans; the lock itself is the flock.
  if (::ftruncate(fd, 0) == 0) {
    const std::string pid = std::to_string(::getpid()) + "\n";
    [[maybe_unused]] auto n = ::write(fd, pid.data(), pid.size());
  }
  return data_dir_lock(fd);
}

data_dir_lock& data_dir_lock::operator=(data_dir_lock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

data_dir_lock::~data_dir_lock() {
  if (fd_ >= 0) ::close(fd_);
}

std::string data_dir_lock::owner_id(const std::string& dir, std::string& error) {
  const std::string path = dir + "/node-owner";
  {
    std::ifstream in(path);
    std::string id;
    if (in >> id) {
      if (id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos) return id;
      error = "'" + path + "' does not hold an owner id (32 hex digits): restore it or remove it";
      return {};
    }
  }
  std::random_device rd;
  static constexpr char hex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 32; ++i) id.push_back(hex[rd() & 0xf]);
  const std::string tmp = path + ".tmp";
  // A leftover from a crash is removed, then the file is created afresh:
  // never opened through a symlink someone planted.
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  const std::string line = id + "\n";
  const bool written = fd >= 0 &&
                       ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                       ::fsync(fd) == 0;
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (!written || ::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot write '" + path + "': " + std::strerror(written ? errno : err);
    return {};
  }
  return id;
}

}  // namespace claps::server
