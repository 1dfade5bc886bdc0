// Fuzzes everything a control-socket client can send. The input is one client's byte stream
// (its first byte picks who the client is): it is framed into lines as the server frames them
// (LineFramer, with a small frame limit so that frame_too_large is reachable) and every line
// goes through ControlApi::handle_line with a fake backend and a workload registry that applies
// to nothing. Besides crashes and sanitizer reports, it checks what clients and the daemon rely
// on:
//   - every reply is exactly one line, a version-1 response with a result or an error;
//   - the reply's id is the request's id, or null when the id could not be read;
//   - the connection is closed exactly after parse errors and oversized frames;
//   - what the registry holds is what was last applied ("nothing already applied is lost").
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "control/protocol.hpp"
#include "daemon/control_api.hpp"
#include "fake_control_backend.hpp"
#include "fuzz_check.hpp"
#include "workloads/registry.hpp"

namespace {

using meshlane::Status;
using meshlane::WorkloadConfig;
using meshlane::control::ControlApi;
using meshlane::control::ErrorCode;
using meshlane::control::LineFramer;
using meshlane::control::PeerCredentials;
using meshlane::control::Reply;
using meshlane::control::Request;
using meshlane::control::RequestError;
using meshlane::fuzz::require;
using meshlane::workloads::WorkloadRegistry;

// Small enough that fuzzed inputs reach the limit; the daemon's is 1 MiB.
constexpr std::size_t kFuzzFrameLimit = 4096;
constexpr gid_t kOperatorsGroup = 5000;  // daemon.socket_write_group
constexpr gid_t kViewersGroup = 5001;    // daemon.socket_read_group
// Workloads in these namespaces cannot be applied, or not saved: the registry's undo paths.
constexpr std::string_view kApplyFailsNetns = "/var/run/netns/apply-fails";
constexpr std::string_view kSaveFailsNetns = "/var/run/netns/save-fails";

PeerCredentials peer_for(std::uint8_t selector) {
  switch (selector % 4) {
    case 0: return {1, 0, 0, {}};                             // root
    case 1: return {2, 1000, 1000, {1000, kOperatorsGroup}};  // socket_write_group member
    case 2: return {4, 1001, 1001, {1001, kViewersGroup}};    // socket_read_group member
    default: return {3, 65534, 65534, {65534}};               // anyone else
  }
}

bool contains_netns(const std::vector<WorkloadConfig>& workloads, std::string_view netns) {
  for (const WorkloadConfig& workload : workloads) {
    if (workload.netns == netns) {
      return true;
    }
  }
  return false;
}

class Harness {
 public:
  Harness()
      : registry_([this](const std::vector<WorkloadConfig>& desired) { return apply(desired); },
                  [](const std::vector<WorkloadConfig>& live) -> Status {
                    if (contains_netns(live, kSaveFailsNetns)) {
                      return meshlane::make_error(ENOSPC, "fuzz: cannot save the state file");
                    }
                    return {};
                  }),
        api_(backend_, registry_, {kOperatorsGroup, kViewersGroup}) {
    WorkloadConfig configured = meshlane::workload_preset(meshlane::MeshKind::kIstio);
    configured.name = "conf";
    configured.netns = "/var/run/netns/conf";
    configured.ips = {meshlane::parse_ip_address("198.18.0.20").value()};
    const Status started =
        registry_.start({configured}, {}, [](const WorkloadConfig&) { return Status(); });
    require(started.ok(), "the registry starts with one config workload", "");
  }

  // Answers one line as the server would; returns whether the connection stays open.
  bool answer(const PeerCredentials& peer, std::string_view line) {
    const std::vector<WorkloadConfig> before = registry_.combined();
    const Reply reply = api_.handle_line(peer, line);
    check_reply(line, reply);
    const bool may_write = peer.uid == 0 || std::find(peer.groups.begin(), peer.groups.end(),
                                                      kOperatorsGroup) != peer.groups.end();
    require(may_write || registry_.combined() == before,
            "a caller outside the write tier changes no workload", line);
    require(registry_.combined() == applied_,
            "the registry holds exactly the workloads last applied", line);
    require(registry_.list().size() == registry_.config_count() + registry_.live_count(),
            "workload.list counts config and live workloads", line);
    return !reply.close;
  }

 private:
  Status apply(const std::vector<WorkloadConfig>& desired) {
    if (contains_netns(desired, kApplyFailsNetns)) {
      return meshlane::make_error(ENOENT, "fuzz: cannot open the namespace");
    }
    applied_ = desired;
    return {};
  }

  static void check_reply(std::string_view line, const Reply& reply) {
    require(!reply.line.empty() && reply.line.back() == '\n' &&
                reply.line.find('\n') == reply.line.size() - 1,
            "a reply is exactly one line", line);
    auto response = meshlane::control::parse_response(
        std::string_view(reply.line).substr(0, reply.line.size() - 1));
    require(response.ok(), "a reply parses as a version-1 response", reply.line);
    require(response->result.has_value() != response->error.has_value(),
            "a reply has a result or an error", reply.line);

    auto request = meshlane::control::parse_request(line);
    if (!request.ok()) {
      const RequestError* bad = &request.error();
      require(response->error.has_value() && response->error->code == bad->error.code,
              "a request that does not parse gets the parser's error", reply.line);
      require(response->id == bad->id, "a bad request is answered with its usable id", reply.line);
      require(reply.close == (bad->error.code == ErrorCode::kParseError),
              "exactly a parse error closes the connection", reply.line);
      require(bad->id.is_null() || bad->id.is_number_integer(), "ids are integers or null",
              reply.line);
    } else {
      require(response->id == request->id, "a request is answered with its own id", reply.line);
      require(!reply.close, "a well-formed request keeps the connection", reply.line);
    }
  }

  meshlane::test::FakeBackend backend_;
  std::vector<WorkloadConfig> applied_;
  WorkloadRegistry registry_;
  ControlApi api_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const PeerCredentials peer = peer_for(data[0]);
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);

  // The client side parses whatever the daemon sends; it must not crash on anything either.
  [[maybe_unused]] auto as_response = meshlane::control::parse_response(stream);

  Harness harness;
  LineFramer framer(kFuzzFrameLimit);
  framer.append(stream);
  // Where the next line starts in `stream`: a reference to check the framer against.
  std::size_t offset = 0;
  std::string line;
  for (;;) {
    const std::size_t newline = stream.find('\n', offset);
    const std::string_view expected = stream.substr(
        offset, newline == std::string_view::npos ? std::string_view::npos : newline - offset);
    switch (framer.next(line)) {
      case LineFramer::Status::kLine: {
        require(newline != std::string_view::npos && expected.size() <= kFuzzFrameLimit,
                "the framer returns only complete lines within the limit", expected);
        const std::string_view stripped =
            expected.ends_with('\r') ? expected.substr(0, expected.size() - 1) : expected;
        require(line == stripped, "the framer returns the line without its \\r\\n", expected);
        offset = newline + 1;
        if (line.find_first_not_of(" \t\r") == std::string::npos) {
          continue;  // blank lines are skipped, as the server does
        }
        if (!harness.answer(peer, line)) {
          return 0;
        }
        continue;
      }
      case LineFramer::Status::kTooLarge:
        require(expected.size() > kFuzzFrameLimit, "only lines over the limit are too large",
                expected.substr(0, 100));
        return 0;
      case LineFramer::Status::kNeedMore: {
        require(newline == std::string_view::npos, "the framer finds every complete line",
                expected);
        // End of the stream: the last request may lack its newline.
        const std::string rest = framer.take_rest();
        if (rest.find_first_not_of(" \t\r") != std::string::npos) {
          harness.answer(peer, rest);
        }
        return 0;
      }
    }
  }
}
