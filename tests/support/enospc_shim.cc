// Loaded with LD_PRELOAD into a process under test: while the file named by
// RELANCE_ENOSPC_TRIGGER exists, every write, allocation or sync of a file under the directory
// RELANCE_ENOSPC_DIR fails with ENOSPC, as on a full file system. Needs no root (unlike a small
// tmpfs or a loop mount) and lets the test say when the disk fills and when space comes back.
// Reads, and every other file and socket, are left alone.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace {

// Resolved once, on first use, from the environment the process was started with.
struct Fault {
  char dir[PATH_MAX] = {};
  std::size_t dir_length = 0;
  const char* trigger = nullptr;

  Fault() {
    const char* d = getenv("RELANCE_ENOSPC_DIR");
    trigger = getenv("RELANCE_ENOSPC_TRIGGER");
    if (d == nullptr || trigger == nullptr || realpath(d, dir) == nullptr) {
      // Not there yet (the store creates it): compared as given.
      if (d != nullptr) std::snprintf(dir, sizeof dir, "%s", d);
    }
    dir_length = std::strlen(dir);
  }
};

const Fault& fault() {
  static const Fault f;
  return f;
}

// True when `fd` is a file under the directory and the disk is "full" now.
bool full(int fd) {
  const auto& f = fault();
  if (f.dir_length == 0 || f.trigger == nullptr || access(f.trigger, F_OK) != 0) return false;
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char path[PATH_MAX];
  auto n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return false;
  path[n] = '\0';
  return std::strncmp(path, f.dir, f.dir_length) == 0 && (path[f.dir_length] == '/' || path[f.dir_length] == '\0');
}

template <typename F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t count) {
  static auto real = next<ssize_t (*)(int, const void*, size_t)>("write");
  if (full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static auto real = next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  if (full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t offset) {
  static auto real = next<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
  if (full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  static auto real = next<ssize_t (*)(int, const struct iovec*, int)>("writev");
  if (full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec* iov, int iovcnt, off_t offset) {
  static auto real = next<ssize_t (*)(int, const struct iovec*, int, off_t)>("pwritev");
  if (full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, iov, iovcnt, offset);
}

int fallocate(int fd, int mode, off_t offset, off_t len) {
  static auto real = next<int (*)(int, int, off_t, off_t)>("fallocate");
  if (full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, mode, offset, len);
}

int fallocate64(int fd, int mode, off64_t offset, off64_t len) {
  static auto real = next<int (*)(int, int, off64_t, off64_t)>("fallocate64");
  if (full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd, mode, offset, len);
}

// posix_fallocate reports its error as the return value, not in errno.
int posix_fallocate(int fd, off_t offset, off_t len) {
  static auto real = next<int (*)(int, off_t, off_t)>("posix_fallocate");
  if (full(fd)) return ENOSPC;
  return real(fd, offset, len);
}

// A sync can fail with ENOSPC too (delayed allocation, thin provisioning).
int fsync(int fd) {
  static auto real = next<int (*)(int)>("fsync");
  if (full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd);
}

int fdatasync(int fd) {
  static auto real = next<int (*)(int)>("fdatasync");
  if (full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return real(fd);
}

}  // extern "C"
