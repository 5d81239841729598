#pragma once
// Tensor<T>: owning, 64-byte aligned, row-major, rank 0 to 4.
// TensorView<T>: the same without ownership (T may be const).
// MatrixView<T>: a rows x cols matrix with a leading dimension (row stride),
// the currency of GEMM.

#include <mpt/core/aligned.hpp>
#include <mpt/core/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <string>
#include <type_traits>

namespace mpt {

inline constexpr int max_tensor_rank = 4;

// The extents of a row-major tensor, rank 0 to 4.
class Shape {
 public:
  constexpr Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) {
    if (dims.size() > max_tensor_rank) throw_error("Shape: rank ", dims.size(), " exceeds the maximum of ", max_tensor_rank);
    for (std::int64_t d : dims) {
      if (d < 0) throw_error("Shape: negative extent ", d);
      dims_[rank_++] = d;
    }
  }
  constexpr int rank() const noexcept { return rank_; }
  constexpr std::int64_t operator[](int axis) const noexcept { return dims_[axis]; }
  // Extent along an axis; negative axes count from the end (-1 is the last).
  std::int64_t dim(int axis) const {
    const int a = axis < 0 ? axis + rank_ : axis;
    if (a < 0 || a >= rank_) throw_error("Shape ", to_string(), ": no axis ", axis);
    return dims_[a];
  }
  constexpr std::size_t numel() const noexcept {
    std::size_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= static_cast<std::size_t>(dims_[i]);
    return n;
  }
  friend constexpr bool operator==(const Shape& a, const Shape& b) noexcept {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }
  std::string to_string() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[i]);
    return s + "]";
  }
  friend std::ostream& operator<<(std::ostream& out, const Shape& s) { return out << s.to_string(); }

 private:
  std::array<std::int64_t, max_tensor_rank> dims_{};
  int rank_ = 0;
};

// Throws unless `actual` equals `expected`, naming the operation and both shapes.
inline void check_shape(const char* operation, const char* what, const Shape& actual, const Shape& expected) {
  if (!(actual == expected)) {
    throw_error(operation, ": ", what, " has shape ", actual, " but ", expected, " is required");
  }
}

// A non-owning view of contiguous row-major data.
template <class T>
class TensorView {
 public:
  using value_type = std::remove_const_t<T>;
  constexpr TensorView() = default;
  TensorView(T* data, Shape shape) noexcept : data_(data), shape_(shape) {}
  // A view of T converts to a view of const T.
  // (clang-format 14 would fold the requires clause into the declaration)
  // clang-format off
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  TensorView(TensorView<U> other) noexcept : data_(other.data()), shape_(other.shape()) {}
  // clang-format on

  T* data() const noexcept { return data_; }
  const Shape& shape() const noexcept { return shape_; }
  int rank() const noexcept { return shape_.rank(); }
  std::int64_t dim(int axis) const { return shape_.dim(axis); }
  std::size_t size() const noexcept { return shape_.numel(); }
  std::span<T> span() const noexcept { return {data_, size()}; }
  T& operator[](std::size_t i) const noexcept { return data_[i]; }

  // Element access by index, row-major; unchecked in release builds.
  template <class... I>
  T& operator()(I... index) const noexcept {
    static_assert(sizeof...(I) >= 1 && sizeof...(I) <= max_tensor_rank, "give one index per axis (1 to 4)");
    std::size_t offset = 0;
    int axis = 0;
    ((offset = offset * static_cast<std::size_t>(shape_[axis++]) + static_cast<std::size_t>(index)), ...);
    return data_[offset];
  }

  // The same elements under another shape with the same element count.
  TensorView reshape(Shape shape) const {
    if (shape.numel() != size()) throw_error("reshape: cannot view ", shape_, " (", size(), " elements) as ", shape);
    return TensorView(data_, shape);
  }

 private:
  T* data_ = nullptr;
  Shape shape_;
};

// An owning tensor, zero-initialized on construction.
template <class T>
class Tensor {
  static_assert(!std::is_const_v<T>, "Tensor owns mutable data: use TensorView<const T> for read-only access");

 public:
  using value_type = T;
  Tensor() = default;
  explicit Tensor(Shape shape) : buffer_(shape.numel()), shape_(shape) {}
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  Tensor clone() const {
    Tensor t;
    t.buffer_ = buffer_.clone();
    t.shape_ = shape_;
    return t;
  }

  T* data() noexcept { return buffer_.data(); }
  const T* data() const noexcept { return buffer_.data(); }
  const Shape& shape() const noexcept { return shape_; }
  int rank() const noexcept { return shape_.rank(); }
  std::int64_t dim(int axis) const { return shape_.dim(axis); }
  std::size_t size() const noexcept { return shape_.numel(); }
  std::span<T> span() noexcept { return {data(), size()}; }
  std::span<const T> span() const noexcept { return {data(), size()}; }
  T& operator[](std::size_t i) noexcept { return buffer_[i]; }
  const T& operator[](std::size_t i) const noexcept { return buffer_[i]; }
  template <class... I>
  T& operator()(I... index) noexcept {
    return view()(index...);
  }
  template <class... I>
  const T& operator()(I... index) const noexcept {
    return view()(index...);
  }

  TensorView<T> view() noexcept { return {data(), shape_}; }
  TensorView<const T> view() const noexcept { return {data(), shape_}; }
  operator TensorView<T>() noexcept { return view(); }
  operator TensorView<const T>() const noexcept { return view(); }

  // Changes the shape in place; the element count must stay the same.
  void reshape(Shape shape) {
    if (shape.numel() != size()) throw_error("reshape: cannot view ", shape_, " (", size(), " elements) as ", shape);
    shape_ = shape;
  }

 private:
  AlignedBuffer<T> buffer_;
  Shape shape_;
};

// rows x cols, row-major, consecutive rows `ld` elements apart (ld >= cols).
template <class T>
struct MatrixView {
  T* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t ld = 0;

  constexpr MatrixView() = default;
  constexpr MatrixView(T* data_, std::int64_t rows_, std::int64_t cols_, std::int64_t ld_) : data(data_), rows(rows_), cols(cols_), ld(ld_) {}
  constexpr MatrixView(T* data_, std::int64_t rows_, std::int64_t cols_) : MatrixView(data_, rows_, cols_, cols_) {}
  // (clang-format 14 would fold the requires clause into the declaration)
  // clang-format off
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  constexpr MatrixView(MatrixView<U> m) : data(m.data), rows(m.rows), cols(m.cols), ld(m.ld) {}
  // clang-format on

  T& operator()(std::int64_t r, std::int64_t c) const noexcept { return data[r * ld + c]; }
  T* row(std::int64_t r) const noexcept { return data + r * ld; }
};

// A rank-2 view (or a rank-N view flattened to [prod(leading dims), last dim]) as a matrix.
template <class T>
MatrixView<T> as_matrix(TensorView<T> t) {
  if (t.rank() < 1) throw_error("as_matrix: a rank-0 tensor is not a matrix");
  const std::int64_t cols = t.dim(-1);
  const std::int64_t rows = cols == 0 ? 0 : static_cast<std::int64_t>(t.size()) / cols;
  return {t.data(), rows, cols, cols};
}

}  // namespace mpt
