// The control protocol's envelope, error codes, response parsing, line framing and parameter
// checks (controller/control/protocol.cpp).

#include <gtest/gtest.h>

#include <string>

#include "control/protocol.hpp"

#include "test_support.hpp"

namespace meshlane::control {
namespace {

using test::contains;

Request parse_ok(const std::string& line) {
  auto parsed = parse_request(line);
  EXPECT_TRUE(parsed.ok()) << line << " -> " << parsed.error().error.message;
  return parsed.ok() ? parsed.value() : Request{};
}

RequestError parse_bad(const std::string& line) {
  auto parsed = parse_request(line);
  EXPECT_FALSE(parsed.ok()) << "accepted: " << line;
  return parsed.ok() ? RequestError{} : parsed.error();
}

TEST(ControlRequest, FullRequestIsParsed) {
  const Request request =
      parse_ok(R"({"v":1,"id":42,"method":"workload.get","params":{"name":"a"}})");
  EXPECT_EQ(request.id, 42);
  EXPECT_EQ(request.method, "workload.get");
  EXPECT_EQ(request.params, nlohmann::json({{"name", "a"}}));
}

TEST(ControlRequest, ParamsDefaultToAnEmptyObject) {
  const Request request = parse_ok(R"({"v":1,"id":1,"method":"status"})");
  EXPECT_TRUE(request.params.is_object());
  EXPECT_TRUE(request.params.empty());
}

TEST(ControlRequest, MemberOrderAndWhitespaceDoNotMatter) {
  const Request request = parse_ok(" { \"method\" : \"stats\" , \"id\" : -3 , \"v\" : 1 } ");
  EXPECT_EQ(request.id, -3);
  EXPECT_EQ(request.method, "stats");
}

TEST(ControlRequest, MalformedJsonIsAParseErrorThatCloses) {
  for (const char* line : {"{", "{\"v\":1,", "not json", "{\"v\":1}}", "\"\\x\""}) {
    const RequestError error = parse_bad(line);
    EXPECT_EQ(error.error.code, ErrorCode::kParseError) << line;
    EXPECT_TRUE(error.close) << line;
    EXPECT_TRUE(error.id.is_null());
    EXPECT_TRUE(contains(error.error.message, "not valid JSON: parse error at line 1, column"));
  }
}

// Found by fuzz_control_api: the parser threw out_of_range for a number beyond a double, which
// ended the daemon's io_context and the daemon with it.
TEST(ControlRequest, NumberTooLargeForADoubleIsAParseError) {
  for (const char* line : {R"({"v":1,"id":1e400,"method":"status"})",
                           R"({"v":1,"id":1,"method":"conns","params":{"limit":-1E+999}})"}) {
    const RequestError error = parse_bad(line);
    EXPECT_EQ(error.error.code, ErrorCode::kParseError) << line;
    EXPECT_TRUE(error.close) << line;
    EXPECT_TRUE(error.id.is_null());
    EXPECT_TRUE(contains(error.error.message, "not valid JSON: number overflow parsing"))
        << error.error.message;
  }
}

TEST(ControlRequest, InvalidUtf8IsAParseError) {
  EXPECT_EQ(parse_bad("{\"v\":1,\"id\":1,\"method\":\"\xff\"}").error.code, ErrorCode::kParseError);
}

TEST(ControlRequest, NonObjectIsAnInvalidRequestThatKeepsTheConnection) {
  const RequestError error = parse_bad("[1,2]");
  EXPECT_EQ(error.error.code, ErrorCode::kInvalidRequest);
  EXPECT_FALSE(error.close);
  EXPECT_EQ(error.error.message, "a request must be a JSON object, got an array");
  EXPECT_EQ(parse_bad("3").error.message, "a request must be a JSON object, got an integer");
}

TEST(ControlRequest, UnknownMemberIsRejectedWithItsId) {
  const RequestError error = parse_bad(R"({"v":1,"id":9,"method":"status","extra":true})");
  EXPECT_EQ(error.error.code, ErrorCode::kInvalidRequest);
  EXPECT_EQ(error.id, 9);
  EXPECT_EQ(error.error.message,
            "unknown member \"extra\" (a request has v, id, method and params)");
}

TEST(ControlRequest, MissingMembersAreNamed) {
  EXPECT_TRUE(
      contains(parse_bad(R"({"id":1,"method":"status"})").error.message, "missing member \"v\""));
  EXPECT_TRUE(
      contains(parse_bad(R"({"v":1,"method":"status"})").error.message, "missing member \"id\""));
  const RequestError no_method = parse_bad(R"({"v":1,"id":4})");
  EXPECT_EQ(no_method.error.message, "missing member \"method\"");
  EXPECT_EQ(no_method.id, 4);
}

TEST(ControlRequest, MistypedMembersAreRejected) {
  EXPECT_EQ(parse_bad(R"({"v":"1","id":1,"method":"status"})").error.message,
            "\"v\" must be an integer, got a string");
  EXPECT_TRUE(contains(parse_bad(R"({"v":1,"id":"a","method":"status"})").error.message,
                       "\"id\" must be an integer -2^63..2^63-1, got a string"));
  EXPECT_TRUE(
      contains(parse_bad(R"({"v":1,"id":1.5,"method":"status"})").error.message, "got a float"));
  EXPECT_TRUE(
      contains(parse_bad(R"({"v":1,"id":18446744073709551615,"method":"status"})").error.message,
               "got 18446744073709551615"));
  EXPECT_EQ(parse_bad(R"({"v":1,"id":1,"method":7})").error.message,
            "\"method\" must be a string, got an integer");
  const RequestError params = parse_bad(R"({"v":1,"id":2,"method":"status","params":[]})");
  EXPECT_EQ(params.error.message, "\"params\" must be an object, got an array");
  EXPECT_EQ(params.id, 2);
  EXPECT_EQ(parse_bad(R"({"v":1,"id":2,"method":"status","params":null})").error.message,
            "\"params\" must be an object, got null");
}

TEST(ControlRequest, OtherVersionsAreUnsupported) {
  const RequestError error = parse_bad(R"({"v":2,"id":5,"method":"status"})");
  EXPECT_EQ(error.error.code, ErrorCode::kUnsupportedVersion);
  EXPECT_EQ(error.id, 5);
  EXPECT_FALSE(error.close);
  EXPECT_EQ(error.error.message,
            "protocol version 2 is not supported (this daemon speaks version 1)");
}

TEST(ControlRequest, DeepNestingIsRejectedWithoutRecursion) {
  // Deep enough to overflow any recursive walk of the value.
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  const RequestError error =
      parse_bad(R"({"v":1,"id":1,"method":"status","params":{"x":)" + deep + "}}");
  EXPECT_EQ(error.error.code, ErrorCode::kInvalidRequest);
  EXPECT_TRUE(contains(error.error.message, "more than 16 levels deep"));
  // Up to the limit is fine: envelope, params, and 14 more levels.
  parse_ok(R"({"v":1,"id":1,"method":"x","params":{"a":)" + std::string(13, '[') +
           std::string(13, ']') + "}}");
}

TEST(ControlResponse, ResultAndErrorLinesAreOneLineEach) {
  const std::string result = encode_result(7, {{"ok", true}});
  EXPECT_EQ(result, "{\"id\":7,\"result\":{\"ok\":true},\"v\":1}\n");
  const std::string error =
      encode_error(nullptr, {ErrorCode::kFrameTooLarge, "line\nbreak \"quoted\""});
  EXPECT_EQ(error.find('\n'), error.size() - 1);
  EXPECT_EQ(error,
            "{\"error\":{\"code\":\"frame_too_large\",\"message\":\"line\\nbreak "
            "\\\"quoted\\\"\"},\"id\":null,\"v\":1}\n");
}

TEST(ControlResponse, InvalidUtf8InAResultIsReplacedNotFatal) {
  const std::string line = encode_result(1, {{"path", std::string("a\xff")}});
  EXPECT_TRUE(contains(line, "a\xEF\xBF\xBD"));  // U+FFFD
}

TEST(ControlResponse, RoundTripsThroughParseResponse) {
  auto ok = parse_response(encode_result(3, {{"n", 1}}));
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->id, 3);
  ASSERT_TRUE(ok->result.has_value());
  EXPECT_EQ((*ok->result)["n"], 1);
  EXPECT_FALSE(ok->error.has_value());

  auto failed = parse_response(encode_error(4, {ErrorCode::kNotFound, "no workload named x"}));
  ASSERT_TRUE(failed.ok());
  ASSERT_TRUE(failed->error.has_value());
  EXPECT_EQ(failed->error->code, ErrorCode::kNotFound);
  EXPECT_EQ(failed->error->message, "no workload named x");
  EXPECT_EQ(failed->error_code_text, "not_found");
}

TEST(ControlResponse, UnknownErrorCodesSurviveAsText) {
  auto response =
      parse_response(R"({"v":1,"id":1,"error":{"code":"from_the_future","message":"m"}})");
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->error_code_text, "from_the_future");
  EXPECT_EQ(response->error->code, ErrorCode::kInternal);
}

TEST(ControlResponse, BrokenResponsesAreErrors) {
  EXPECT_FALSE(parse_response("nope").ok());
  EXPECT_FALSE(parse_response(R"({"v":2,"id":1,"result":{}})").ok());
  EXPECT_FALSE(parse_response(R"({"v":1,"id":1})").ok());
  EXPECT_FALSE(parse_response(R"({"v":1,"id":1,"result":{},"error":{}})").ok());
  EXPECT_FALSE(parse_response(R"({"v":1,"id":1,"error":{"code":1,"message":"m"}})").ok());
}

TEST(ControlRequest, EncodedRequestsParse) {
  std::string line = encode_request(11, "conns", {{"limit", 5}});
  ASSERT_EQ(line.back(), '\n');
  line.pop_back();
  const Request request = parse_ok(line);
  EXPECT_EQ(request.id, 11);
  EXPECT_EQ(request.params["limit"], 5);
}

TEST(ControlErrorCodes, NamesAreStableAndReversible) {
  EXPECT_STREQ(to_string(ErrorCode::kParseError), "parse_error");
  EXPECT_STREQ(to_string(ErrorCode::kInvalidParams), "invalid_params");
  EXPECT_STREQ(to_string(ErrorCode::kPermissionDenied), "permission_denied");
  for (auto code : {ErrorCode::kParseError, ErrorCode::kFrameTooLarge, ErrorCode::kInvalidRequest,
                    ErrorCode::kUnsupportedVersion, ErrorCode::kUnknownMethod,
                    ErrorCode::kInvalidParams, ErrorCode::kPermissionDenied, ErrorCode::kNotFound,
                    ErrorCode::kConflict, ErrorCode::kApplyFailed, ErrorCode::kUnavailable,
                    ErrorCode::kTooManyClients, ErrorCode::kIdleTimeout, ErrorCode::kInternal}) {
    EXPECT_EQ(error_code_from_string(to_string(code)), code);
  }
  EXPECT_FALSE(error_code_from_string("nope").has_value());
}

// ---- Framing -----------------------------------------------------------------------------------

TEST(LineFramer, SplitsLinesAcrossChunks) {
  LineFramer framer(100);
  std::string line;
  framer.append("{\"a\"");
  EXPECT_EQ(framer.next(line), LineFramer::Status::kNeedMore);
  framer.append(":1}\n{\"b\":2}\r\n{\"c\"");
  ASSERT_EQ(framer.next(line), LineFramer::Status::kLine);
  EXPECT_EQ(line, "{\"a\":1}");
  ASSERT_EQ(framer.next(line), LineFramer::Status::kLine);
  EXPECT_EQ(line, "{\"b\":2}");  // \r dropped
  EXPECT_EQ(framer.next(line), LineFramer::Status::kNeedMore);
  EXPECT_EQ(framer.pending(), 4u);
  EXPECT_EQ(framer.take_rest(), "{\"c\"");
  EXPECT_EQ(framer.pending(), 0u);
}

TEST(LineFramer, EmptyLinesAreLines) {
  LineFramer framer(10);
  std::string line = "x";
  framer.append("\n\n");
  ASSERT_EQ(framer.next(line), LineFramer::Status::kLine);
  EXPECT_EQ(line, "");
  ASSERT_EQ(framer.next(line), LineFramer::Status::kLine);
  EXPECT_EQ(framer.next(line), LineFramer::Status::kNeedMore);
}

TEST(LineFramer, LineOfExactlyTheLimitIsAccepted) {
  LineFramer framer(8);
  std::string line;
  framer.append("12345678\n");
  ASSERT_EQ(framer.next(line), LineFramer::Status::kLine);
  EXPECT_EQ(line, "12345678");
}

TEST(LineFramer, CompleteLineOverTheLimitIsTooLarge) {
  LineFramer framer(8);
  std::string line;
  framer.append("123456789\nok\n");
  EXPECT_EQ(framer.next(line), LineFramer::Status::kTooLarge);
  // Spoiled for good: the stream position can no longer be trusted.
  EXPECT_EQ(framer.next(line), LineFramer::Status::kTooLarge);
}

TEST(LineFramer, UnterminatedLineOverTheLimitIsTooLargeBeforeItsNewline) {
  LineFramer framer(kMaxFrameBytes);
  std::string line;
  const std::string chunk(64 * 1024, 'x');
  LineFramer::Status status = LineFramer::Status::kNeedMore;
  std::size_t appended = 0;
  while (status == LineFramer::Status::kNeedMore && appended <= 2 * kMaxFrameBytes) {
    framer.append(chunk);
    appended += chunk.size();
    status = framer.next(line);
  }
  EXPECT_EQ(status, LineFramer::Status::kTooLarge);
  // Reported as soon as the limit is passed, not after buffering much more.
  EXPECT_LE(appended, kMaxFrameBytes + chunk.size());
}

TEST(LineFramer, ConsumedLinesDoNotAccumulate) {
  LineFramer framer(16);
  std::string line;
  for (int i = 0; i < 10000; ++i) {
    framer.append("0123456789\n");
    ASSERT_EQ(framer.next(line), LineFramer::Status::kLine);
    ASSERT_EQ(framer.next(line), LineFramer::Status::kNeedMore);
  }
  EXPECT_EQ(framer.pending(), 0u);
}

// ---- Params ----------------------------------------------------------------------------------

TEST(ControlParams, UnknownParameterListsTheKnownOnes) {
  const nlohmann::json params = {{"name", "a"}, {"nmae", "b"}};
  auto checked = Params(params).only({"name", "missing_ok"});
  ASSERT_FALSE(checked.ok());
  EXPECT_EQ(checked.error().code, ErrorCode::kInvalidParams);
  EXPECT_EQ(checked.error().message, "params.nmae: unknown parameter (known: name, missing_ok)");
  const nlohmann::json one = {{"x", 1}};
  EXPECT_EQ(Params(one).only({}).error().message,
            "params.x: unknown parameter (this method takes none)");
  EXPECT_TRUE(Params(nlohmann::json::object()).only({}).ok());
}

TEST(ControlParams, TypedReaders) {
  const nlohmann::json params = {{"name", "a"}, {"flag", true}, {"n", 5}, {"bad", "5"}};
  const Params reader(params);
  std::optional<std::string> name;
  EXPECT_TRUE(reader.string("name", true, name).ok());
  EXPECT_EQ(name, "a");
  std::optional<std::string> absent;
  EXPECT_TRUE(reader.string("other", false, absent).ok());
  EXPECT_FALSE(absent.has_value());
  EXPECT_EQ(reader.string("other", true, absent).error().message, "params.other: required");
  EXPECT_EQ(reader.string("n", true, absent).error().message,
            "params.n: expected a string, got an integer");
  std::optional<bool> flag;
  EXPECT_TRUE(reader.boolean("flag", flag).ok());
  EXPECT_EQ(flag, true);
  EXPECT_EQ(reader.boolean("name", flag).error().message,
            "params.name: expected true or false, got a string");
  std::optional<std::int64_t> n;
  EXPECT_TRUE(reader.integer("n", 0, 10, n).ok());
  EXPECT_EQ(n, 5);
  EXPECT_EQ(reader.integer("n", 0, 4, n).error().message,
            "params.n: 5 is out of range (allowed 0..4)");
  EXPECT_EQ(reader.integer("bad", 0, 10, n).error().message,
            "params.bad: expected an integer 0..10, got a string");
}

}  // namespace
}  // namespace meshlane::control
