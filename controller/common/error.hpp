// Recoverable errors as values: what failed, on what, the errno, and what to do.
#pragma once

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace meshlane {

struct Error {
  int errnum = 0;       // errno value, 0 when the failure is not a system error
  std::string context;  // "what failed, on what[: what to do]"

  // A one-line message for logs and the CLI: context plus strerror when errnum is set.
  [[nodiscard]] std::string message() const {
    if (errnum == 0) {
      return context;
    }
    return context + ": " + std::strerror(errnum) + " (errno " + std::to_string(errnum) + ")";
  }
};

// errnum is taken as a positive errno; libbpf's negative returns are accepted too.
inline Error make_error(int errnum, std::string context) {
  return Error{errnum < 0 ? -errnum : errnum, std::move(context)};
}
inline Error make_error(std::string context) { return Error{0, std::move(context)}; }

// Minimal expected<T, E>: C++20 has no std::expected. E is Error for system and config failures;
// the control protocol uses Result<T, control::ControlError> so that one shape serves everywhere.
template <typename T, typename E = Error>
class [[nodiscard]] Result {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor)
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  // NOLINTNEXTLINE(google-explicit-constructor)
  Result(E error) : state_(std::in_place_index<1>, std::move(error)) {}

  [[nodiscard]] bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  [[nodiscard]] T& value() & { return std::get<0>(state_); }
  [[nodiscard]] const T& value() const& { return std::get<0>(state_); }
  [[nodiscard]] T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  [[nodiscard]] const E& error() const& { return std::get<1>(state_); }
  [[nodiscard]] E error() && { return std::get<1>(std::move(state_)); }

 private:
  // By index, not by type: T and E may be the same type.
  std::variant<T, E> state_;
};

// Result for operations that produce nothing but may fail.
template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  Result(E error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  [[nodiscard]] const E& error() const& { return *error_; }
  [[nodiscard]] E error() && { return *std::move(error_); }

 private:
  std::optional<E> error_;
};

using Status = Result<void>;

}  // namespace meshlane
