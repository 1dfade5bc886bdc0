// The control protocol's wire format (docs/control-protocol.md): newline-delimited JSON over a
// Unix stream socket, one request object per line and one response object per line.
//
//   request   {"v":1,"id":7,"method":"workload.get","params":{"name":"reviews-v1"}}
//   response  {"v":1,"id":7,"result":{...}}
//         or  {"v":1,"id":7,"error":{"code":"not_found","message":"..."}}
//
// Everything here is pure (no I/O), shared by the daemon, meshlanectl and the unit tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace meshlane::control {

inline constexpr int kProtocolVersion = 1;
// Longest request line the daemon reads, newline excluded. Longer: frame_too_large, then close.
inline constexpr std::size_t kMaxFrameBytes = std::size_t{1024} * 1024;
// Deepest nesting of objects and arrays a request may have (the envelope counts as one).
inline constexpr std::size_t kMaxNestingDepth = 16;
// Sockets the "conns" method returns when its params have no "limit".
inline constexpr std::int64_t kDefaultConnsLimit = 10000;

// Stable error codes: clients branch on them, so they are only ever added, never renamed.
enum class ErrorCode {
  kParseError,          // the line is not JSON (connection closed)
  kFrameTooLarge,       // the line is longer than kMaxFrameBytes (connection closed)
  kInvalidRequest,      // JSON, but not a request object (missing/unknown/mistyped member)
  kUnsupportedVersion,  // "v" is not a version this daemon speaks
  kUnknownMethod,
  kInvalidParams,     // unknown, missing or invalid parameter
  kPermissionDenied,  // the peer's uid/groups may not call the method
  kNotFound,          // the named object does not exist
  kConflict,          // the request contradicts the daemon's state (e.g. a config workload)
  kApplyFailed,       // the daemon could not apply the change; nothing changed
  kUnavailable,       // the datapath could not be read (e.g. pins removed under the daemon)
  kTooManyClients,    // the daemon serves its maximum number of clients (connection closed)
  kIdleTimeout,       // no complete request within the idle timeout (connection closed)
  kInternal,
};

const char* to_string(ErrorCode code);
std::optional<ErrorCode> error_code_from_string(std::string_view text);

struct ControlError {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

// What the control methods return: a value or the error to answer with.
template <typename T>
using ControlResult = Result<T, ControlError>;
// For checks and steps that produce nothing.
using ControlStatus = Result<void, ControlError>;

inline ControlError invalid_params(std::string message) {
  return {ErrorCode::kInvalidParams, std::move(message)};
}

// A request that passed the envelope checks. params is always an object.
struct Request {
  std::int64_t id = 0;
  std::string method;
  nlohmann::json params = nlohmann::json::object();
};

// Why a line is not a request, with the id to answer with (null when it could not be read) and
// whether the connection must be closed after the answer (the stream can no longer be trusted).
struct RequestError {
  nlohmann::json id;  // null, or the request's id
  ControlError error;
  bool close = false;
};

// Checks one line (without its newline) against the envelope: an object with exactly
// "v" (== kProtocolVersion), "id" (integer), "method" (string) and optionally "params" (object).
Result<Request, RequestError> parse_request(std::string_view line);

// One response line each, newline included.
std::string encode_result(const nlohmann::json& id, const nlohmann::json& result);
std::string encode_error(const nlohmann::json& id, const ControlError& error);
std::string encode_request(std::int64_t id, std::string_view method, const nlohmann::json& params);

// A response as the client sees it: result or error, for the request with id.
struct Response {
  nlohmann::json id;
  std::optional<nlohmann::json> result;
  std::optional<ControlError> error;
  std::string error_code_text;  // the code as sent, also when this build does not know it
};

// Parses a response line. Error when it is not a version-1 response object.
Result<Response> parse_response(std::string_view line);

// Splits a byte stream into lines of at most max_bytes (newline excluded). A trailing '\r' is
// dropped. Once a line grows past max_bytes the framer is spoiled: next() reports it forever.
class LineFramer {
 public:
  explicit LineFramer(std::size_t max_bytes = kMaxFrameBytes) : max_bytes_(max_bytes) {}

  void append(std::string_view bytes) { buffer_.append(bytes); }

  enum class Status { kLine, kNeedMore, kTooLarge };
  // kLine: `line` holds the next complete line. kNeedMore: no complete line buffered.
  Status next(std::string& line);

  // Bytes buffered that are not yet part of a complete line.
  [[nodiscard]] std::size_t pending() const { return buffer_.size() - start_; }
  // The unterminated rest (a last request sent without its newline before EOF).
  std::string take_rest();

 private:
  std::size_t max_bytes_;
  std::string buffer_;
  std::size_t start_ = 0;    // first byte not yet returned
  std::size_t scanned_ = 0;  // bytes from start_ already known to hold no newline
  bool too_large_ = false;
};

// ---- Parameter checking, shared by the methods ------------------------------------------------

// Reads the members of a params object: every member must be known to the method, required ones
// must be there, and each has its type checked. Messages name the parameter: "params.name: ...".
class Params {
 public:
  explicit Params(const nlohmann::json& params) : params_(params) {}

  // Fails on any member not in `known` (listing the known ones).
  [[nodiscard]] ControlStatus only(std::initializer_list<std::string_view> known) const;

  // A string member; nullopt in `out` when absent and not required.
  ControlStatus string(std::string_view key, bool required, std::optional<std::string>& out) const;
  ControlStatus boolean(std::string_view key, std::optional<bool>& out) const;
  // An integer min..max.
  ControlStatus integer(std::string_view key, std::int64_t min, std::int64_t max,
                        std::optional<std::int64_t>& out) const;

 private:
  const nlohmann::json& params_;
};

}  // namespace meshlane::control
