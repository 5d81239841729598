#pragma once
// Files in and out, safely.
//
//   MappedFile::open(path)          read-only memory map (an empty file maps to an empty span)
//   read_file(path)                 the whole file as bytes
//   AtomicFileWriter(path)          write to a temporary file in the same directory, then
//     .write(bytes) ... .commit()   fsync + rename over `path` + fsync the directory, so a
//                                   reader sees the old file or the new one, never half of one
//   write_file_atomic(path, bytes)  the same for a buffer already in memory
//
// POSIX only (mmap, fsync, rename), as is the rest of the project's I/O.

#include <mpt/core/error.hpp>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mpt::io {

namespace detail {
inline std::string errno_text() { return std::strerror(errno); }

// errno of a failed write, and what the user can do about it.
inline std::string write_error_text() {
  const int err = errno;
  std::string text = std::strerror(err);
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return text + " (the disk or the quota is full: free space, or write to another folder)";
    case EFBIG:
      return text + " (the file size limit is reached: raise `ulimit -f`, or write to another file system)";
    case EROFS:
      return text + " (the file system is read-only: write to another folder)";
    case EACCES:
    case EPERM:
      return text + " (no permission to write there: write to another folder)";
    case ENOENT:
      return text + " (the folder does not exist: create it first)";
    default:
      return text;
  }
}

// Closes a POSIX descriptor on scope exit.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd = -1) noexcept : fd_(fd) {}
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

inline FileDescriptor open_for_reading(const std::filesystem::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw_error("cannot open ", path, " for reading: ", errno_text());
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw_error("cannot stat ", path, ": ", errno_text());
  if (!S_ISREG(info.st_mode)) throw_error(path, " is not a regular file");
  return fd;
}

inline std::size_t file_size(const FileDescriptor& fd, const std::filesystem::path& path) {
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw_error("cannot stat ", path, ": ", errno_text());
  return static_cast<std::size_t>(info.st_size);
}

// Writes all of `data` to `fd`; an error names `path`, the file the user asked for.
inline void write_all(int fd, const std::byte* data, std::size_t size, const std::filesystem::path& path) {
  while (size > 0) {
    const ::ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      throw_error("cannot write ", path, ": ", write_error_text());
    }
    data += written;
    size -= static_cast<std::size_t>(written);
  }
}
}  // namespace detail

// A read-only memory map of a whole file; move-only.
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept
      : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      unmap();
      path_ = std::move(other.path_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { unmap(); }

  static MappedFile open(const std::filesystem::path& path) {
    const detail::FileDescriptor fd = detail::open_for_reading(path);
    MappedFile file;
    file.path_ = path;
    file.size_ = detail::file_size(fd, path);
    if (file.size_ == 0) return file;  // mmap of length 0 is an error; an empty span is not
    void* p = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) throw_error("cannot memory-map ", path, " (", file.size_, " bytes): ", detail::errno_text());
    file.data_ = static_cast<const std::byte*>(p);
    // Start reading ahead now: loaders touch every byte, mostly front to back.
    ::madvise(p, file.size_, MADV_WILLNEED);
    return file;
  }

  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  std::size_t size() const noexcept { return size_; }
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  void unmap() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

inline std::vector<std::byte> read_file(const std::filesystem::path& path) {
  const detail::FileDescriptor fd = detail::open_for_reading(path);
  std::vector<std::byte> bytes(detail::file_size(fd, path));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ::ssize_t got = ::read(fd.get(), bytes.data() + done, bytes.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_error("cannot read ", path, ": ", detail::errno_text());
    if (got == 0) throw_error("cannot read ", path, ": file shrank while reading (", done, " of ", bytes.size(), " bytes)");
    done += static_cast<std::size_t>(got);
  }
  return bytes;
}

inline std::string read_text_file(const std::filesystem::path& path) {
  const std::vector<std::byte> bytes = read_file(path);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Writes `path` atomically: the bytes go to "<path>.tmp.<pid>.<n>" in the same
// directory (rename is only atomic within one file system); commit() makes them
// durable and renames. Without commit() (a failed write throws) the temporary file is
// removed, and a file already at `path` is left as it was.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path path) : path_(std::move(path)) {
    static std::atomic<unsigned> counter{0};  // distinct names for writers alive at once in this process
    temp_path_ = path_;
    temp_path_ += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
    fd_ = detail::FileDescriptor(::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd_.get() < 0) throw_error("cannot write ", path_, ": creating ", temp_path_.filename(), " there failed: ", detail::write_error_text());
  }
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter() {
    if (!committed_) {
      fd_.reset();
      ::unlink(temp_path_.c_str());
    }
  }

  void write(std::span<const std::byte> bytes) { detail::write_all(fd_.get(), bytes.data(), bytes.size(), path_); }
  void write(std::string_view text) { write(std::as_bytes(std::span<const char>(text.data(), text.size()))); }

  void commit() {
    if (committed_) throw_error("AtomicFileWriter: ", path_, " was already committed");
    // fsync and close report what the file system could not store after all (full disk, quota).
    if (::fsync(fd_.get()) != 0) throw_error("cannot write ", path_, ": fsync failed: ", detail::write_error_text());
    // close() releases the descriptor whatever it returns: never close it twice.
    if (::close(fd_.release()) != 0) throw_error("cannot write ", path_, ": close failed: ", detail::write_error_text());
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
      throw_error("cannot write ", path_, ": renaming ", temp_path_.filename(), " over it failed: ", detail::write_error_text());
    }
    committed_ = true;
    // The rename itself is durable only once the directory entry is.
    std::filesystem::path dir = path_.parent_path();
    if (dir.empty()) dir = ".";
    const detail::FileDescriptor dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd.get() >= 0) ::fsync(dir_fd.get());
  }

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  detail::FileDescriptor fd_;
  bool committed_ = false;
};

inline void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  AtomicFileWriter writer(path);
  writer.write(bytes);
  writer.commit();
}
inline void write_file_atomic(const std::filesystem::path& path, std::string_view text) {
  AtomicFileWriter writer(path);
  writer.write(text);
  writer.commit();
}

}  // namespace mpt::io
