// Recoverable errors as values: what failed, on what, the errno, and what to do.
#pragma once

#include <cerrno>
#include <cstring>
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

// Minimal expected<T, Error>: C++20 has no std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  [[nodiscard]] T& value() & { return std::get<T>(state_); }
  [[nodiscard]] const T& value() const& { return std::get<T>(state_); }
  [[nodiscard]] T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  [[nodiscard]] const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

// Result for operations that produce nothing but may fail.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error)
      : error_(std::move(error)), failed_(true) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  [[nodiscard]] const Error& error() const { return error_; }

 private:
  Error error_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace meshlane
