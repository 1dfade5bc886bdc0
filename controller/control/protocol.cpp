#include "control/protocol.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>
#include <vector>

namespace meshlane::control {

namespace {

struct CodeName {
  ErrorCode code;
  std::string_view name;
};

constexpr std::array<CodeName, 14> kCodeNames = {{
    {ErrorCode::kParseError, "parse_error"},
    {ErrorCode::kFrameTooLarge, "frame_too_large"},
    {ErrorCode::kInvalidRequest, "invalid_request"},
    {ErrorCode::kUnsupportedVersion, "unsupported_version"},
    {ErrorCode::kUnknownMethod, "unknown_method"},
    {ErrorCode::kInvalidParams, "invalid_params"},
    {ErrorCode::kPermissionDenied, "permission_denied"},
    {ErrorCode::kNotFound, "not_found"},
    {ErrorCode::kConflict, "conflict"},
    {ErrorCode::kApplyFailed, "apply_failed"},
    {ErrorCode::kUnavailable, "unavailable"},
    {ErrorCode::kTooManyClients, "too_many_clients"},
    {ErrorCode::kIdleTimeout, "idle_timeout"},
    {ErrorCode::kInternal, "internal"},
}};

constexpr std::array<std::string_view, 4> kRequestMembers = {"v", "id", "method", "params"};

std::string join(std::initializer_list<std::string_view> words) {
  std::string joined;
  for (std::string_view word : words) {
    joined += (joined.empty() ? "" : ", ") + std::string(word);
  }
  return joined;
}

// The id to answer a broken request with: its id when that one at least is usable.
nlohmann::json usable_id(const nlohmann::json& object) {
  if (!object.is_object()) {
    return nullptr;
  }
  auto id = object.find("id");
  if (id != object.end() && (id->is_number_integer()) &&
      (id->is_number_unsigned()
           ? id->get<std::uint64_t>() <=
                 static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
           : true)) {
    return *id;
  }
  return nullptr;
}

// Nesting depth of a JSON value, without recursion: a 1 MiB line of '[' must not exhaust the
// stack of anything that walks the value later.
std::size_t nesting_depth(const nlohmann::json& root) {
  std::size_t deepest = 0;
  std::vector<std::pair<const nlohmann::json*, std::size_t>> pending = {{&root, 1}};
  while (!pending.empty()) {
    auto [value, depth] = pending.back();
    pending.pop_back();
    deepest = std::max(deepest, depth);
    if (value->is_structured()) {
      for (const auto& element : *value) {
        pending.emplace_back(&element, depth + 1);
      }
    }
  }
  return deepest;
}

RequestError invalid_request(const nlohmann::json& object, std::string message) {
  return {usable_id(object), {ErrorCode::kInvalidRequest, std::move(message)}, false};
}

std::string describe_type(const nlohmann::json& value) {
  if (value.is_number_float()) {
    return "a float";
  }
  if (value.is_number_integer()) {
    return "an integer";
  }
  const std::string name = value.type_name();
  if (name == "null") {
    return "null";
  }
  return (name == "array" || name == "object" ? "an " : "a ") + name;
}

}  // namespace

const char* to_string(ErrorCode code) {
  for (const CodeName& entry : kCodeNames) {
    if (entry.code == code) {
      return entry.name.data();
    }
  }
  return "internal";
}

std::optional<ErrorCode> error_code_from_string(std::string_view text) {
  for (const CodeName& entry : kCodeNames) {
    if (entry.name == text) {
      return entry.code;
    }
  }
  return std::nullopt;
}

Result<Request, RequestError> parse_request(std::string_view line) {
  nlohmann::json object;
  try {
    object = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& error) {
    // Not only parse_error: a number too large for a double ("1e400") is an out_of_range that
    // allow_exceptions=false does not cover. The message has the byte offset or the number:
    // "[json.exception.parse_error.101] parse error at line 1, column 3: ..." -> from "parse".
    std::string detail = error.what();
    if (auto at = detail.find("] "); at != std::string::npos) {
      detail = detail.substr(at + 2);
    }
    return RequestError{
        nullptr, {ErrorCode::kParseError, "the request is not valid JSON: " + detail}, true};
  }
  if (!object.is_object()) {
    return invalid_request(object, "a request must be a JSON object, got " + describe_type(object));
  }
  if (nesting_depth(object) > kMaxNestingDepth) {
    return invalid_request(object, "the request nests objects or arrays more than " +
                                       std::to_string(kMaxNestingDepth) + " levels deep");
  }
  for (const auto& [key, value] : object.items()) {
    if (std::find(kRequestMembers.begin(), kRequestMembers.end(), key) == kRequestMembers.end()) {
      return invalid_request(
          object, "unknown member \"" + key + "\" (a request has v, id, method and params)");
    }
  }
  auto version = object.find("v");
  if (version == object.end()) {
    return invalid_request(object, "missing member \"v\" (the protocol version, " +
                                       std::to_string(kProtocolVersion) + ")");
  }
  if (!version->is_number_integer()) {
    return invalid_request(object, "\"v\" must be an integer, got " + describe_type(*version));
  }
  if (*version != kProtocolVersion) {
    return RequestError{
        usable_id(object),
        {ErrorCode::kUnsupportedVersion, "protocol version " + version->dump() +
                                             " is not supported (this daemon speaks version " +
                                             std::to_string(kProtocolVersion) + ")"},
        false};
  }
  auto id = object.find("id");
  if (id == object.end()) {
    return invalid_request(object, "missing member \"id\" (an integer the response repeats)");
  }
  if (usable_id(object).is_null()) {
    return invalid_request(object, "\"id\" must be an integer -2^63..2^63-1, got " +
                                       (id->is_number_integer() ? id->dump() : describe_type(*id)));
  }
  auto method = object.find("method");
  if (method == object.end()) {
    return invalid_request(object, "missing member \"method\"");
  }
  if (!method->is_string()) {
    return invalid_request(object, "\"method\" must be a string, got " + describe_type(*method));
  }
  Request request;
  request.id = id->get<std::int64_t>();
  request.method = method->get<std::string>();
  if (auto params = object.find("params"); params != object.end()) {
    if (!params->is_object()) {
      return invalid_request(object, "\"params\" must be an object, got " + describe_type(*params));
    }
    request.params = std::move(*params);
  }
  return request;
}

std::string encode_result(const nlohmann::json& id, const nlohmann::json& result) {
  nlohmann::json response = {{"v", kProtocolVersion}, {"id", id}, {"result", result}};
  // Strings come from the kernel, files and clients: never let a stray byte kill the response.
  return response.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string encode_error(const nlohmann::json& id, const ControlError& error) {
  nlohmann::json response = {
      {"v", kProtocolVersion},
      {"id", id},
      {"error", {{"code", to_string(error.code)}, {"message", error.message}}}};
  return response.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string encode_request(std::int64_t id, std::string_view method, const nlohmann::json& params) {
  nlohmann::json request = {
      {"v", kProtocolVersion}, {"id", id}, {"method", method}, {"params", params}};
  return request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Result<Response> parse_response(std::string_view line) {
  nlohmann::json object = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    return make_error("the daemon's response is not a JSON object");
  }
  auto version = object.find("v");
  if (version == object.end() || *version != kProtocolVersion) {
    return make_error("the daemon's response is not protocol version " +
                      std::to_string(kProtocolVersion));
  }
  Response response{.id = object.value("id", nlohmann::json())};
  auto result = object.find("result");
  auto error = object.find("error");
  if (result != object.end() && error == object.end()) {
    response.result = std::move(*result);
    return response;
  }
  if (error != object.end() && result == object.end() && error->is_object()) {
    ControlError parsed;
    const nlohmann::json code = error->value("code", nlohmann::json());
    const nlohmann::json message = error->value("message", nlohmann::json());
    if (!code.is_string() || !message.is_string()) {
      return make_error("the daemon's error response lacks a code or message");
    }
    response.error_code_text = code.get<std::string>();
    parsed.code = error_code_from_string(response.error_code_text).value_or(ErrorCode::kInternal);
    parsed.message = message.get<std::string>();
    response.error = std::move(parsed);
    return response;
  }
  return make_error("the daemon's response has neither a result nor an error");
}

LineFramer::Status LineFramer::next(std::string& line) {
  if (too_large_) {
    return Status::kTooLarge;
  }
  const std::size_t newline = buffer_.find('\n', start_ + scanned_);
  if (newline == std::string::npos) {
    scanned_ = buffer_.size() - start_;
    if (scanned_ > max_bytes_) {
      too_large_ = true;
      return Status::kTooLarge;
    }
    // Keep the buffer from growing with consumed lines.
    if (start_ > 0) {
      buffer_.erase(0, start_);
      start_ = 0;
    }
    return Status::kNeedMore;
  }
  std::size_t length = newline - start_;
  if (length > max_bytes_) {
    too_large_ = true;
    return Status::kTooLarge;
  }
  line.assign(buffer_, start_, length);
  if (!line.empty() && line.back() == '\r') {
    line.pop_back();
  }
  start_ = newline + 1;
  scanned_ = 0;
  return Status::kLine;
}

std::string LineFramer::take_rest() {
  std::string rest = buffer_.substr(start_);
  buffer_.clear();
  start_ = 0;
  scanned_ = 0;
  if (!rest.empty() && rest.back() == '\r') {
    rest.pop_back();
  }
  return rest;
}

ControlStatus Params::only(std::initializer_list<std::string_view> known) const {
  for (const auto& [key, value] : params_.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      return invalid_params("params." + key + ": unknown parameter" +
                            (known.size() == 0 ? std::string(" (this method takes none)")
                                               : " (known: " + join(known) + ")"));
    }
  }
  return {};
}

ControlStatus Params::string(std::string_view key, bool required,
                             std::optional<std::string>& out) const {
  auto value = params_.find(key);
  if (value == params_.end()) {
    if (required) {
      return invalid_params("params." + std::string(key) + ": required");
    }
    out.reset();
    return {};
  }
  if (!value->is_string()) {
    return invalid_params("params." + std::string(key) + ": expected a string, got " +
                          describe_type(*value));
  }
  out = value->get<std::string>();
  return {};
}

ControlStatus Params::boolean(std::string_view key, std::optional<bool>& out) const {
  auto value = params_.find(key);
  if (value == params_.end()) {
    out.reset();
    return {};
  }
  if (!value->is_boolean()) {
    return invalid_params("params." + std::string(key) + ": expected true or false, got " +
                          describe_type(*value));
  }
  out = value->get<bool>();
  return {};
}

ControlStatus Params::integer(std::string_view key, std::int64_t min, std::int64_t max,
                              std::optional<std::int64_t>& out) const {
  auto value = params_.find(key);
  if (value == params_.end()) {
    out.reset();
    return {};
  }
  const std::string allowed = std::to_string(min) + ".." + std::to_string(max);
  if (!value->is_number_integer()) {
    return invalid_params("params." + std::string(key) + ": expected an integer " + allowed +
                          ", got " + describe_type(*value));
  }
  const bool fits = value->is_number_unsigned()
                        ? value->get<std::uint64_t>() <= static_cast<std::uint64_t>(max)
                        : value->get<std::int64_t>() >= min && value->get<std::int64_t>() <= max;
  if (!fits) {
    return invalid_params("params." + std::string(key) + ": " + value->dump() +
                          " is out of range (allowed " + allowed + ")");
  }
  out = value->get<std::int64_t>();
  return {};
}

}  // namespace meshlane::control
