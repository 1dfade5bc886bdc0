// meshlane-cni's commands end to end (cni::run), against a fake meshlaned served on a real
// Unix socket: prevResult passed through for enrolled and skipped pods in each spec version,
// idempotent ADD and DEL, the failure policy when the daemon is down, CHECK, STATUS, GC.

#include "cni/plugin.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include "cni/pod.hpp"
#include "control/protocol.hpp"
#include "control/server.hpp"
#include "temp_dir.hpp"

namespace meshlane::cni {
namespace {

using nlohmann::json;

// The daemon's workload methods, reduced to a map (name -> params as spec), plus knobs.
class FakeDaemon {
 public:
  explicit FakeDaemon(std::string path) : path_(std::move(path)) {}
  ~FakeDaemon() { stop(); }
  FakeDaemon(const FakeDaemon&) = delete;
  FakeDaemon& operator=(const FakeDaemon&) = delete;

  void start() {
    control::ServerOptions options;
    options.path = path_;
    auto server = control::Server::start(
        io_, options,
        [this](const control::PeerCredentials&, std::string_view line) { return handle(line); });
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(server.value());
    thread_ = std::thread([this] { io_.run(); });
  }
  void stop() {
    if (thread_.joinable()) {
      io_.stop();
      thread_.join();
    }
    server_.reset();
  }

  std::map<std::string, json> workloads;  // guarded by mutex
  std::mutex mutex;
  std::atomic<bool> refuse_add{false};
  std::atomic<int> stall_ms{0};
  std::atomic<int> calls{0};

 private:
  control::Reply handle(std::string_view line) {
    auto request = control::parse_request(line);
    if (!request) {
      return {control::encode_error(request.error().id, request.error().error), true};
    }
    ++calls;
    if (stall_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(stall_ms.load()));
    }
    const json& params = request->params;
    std::lock_guard<std::mutex> lock(mutex);
    auto answer = [&](const json& result) {
      return control::Reply{control::encode_result(request->id, result)};
    };
    auto error = [&](control::ErrorCode code, const std::string& message) {
      return control::Reply{control::encode_error(request->id, {code, message})};
    };
    const std::string name = params.value("name", std::string());
    if (request->method == "status") {
      return answer({{"version", "test"}});
    }
    if (request->method == "workload.add") {
      if (refuse_add) {
        return error(control::ErrorCode::kApplyFailed, "cannot open the netns");
      }
      const auto found = workloads.find(name);
      const std::string outcome =
          found == workloads.end() ? "added" : (found->second == params ? "unchanged" : "replaced");
      workloads[name] = params;
      return answer({{"name", name}, {"outcome", outcome}, {"spec", params}});
    }
    if (request->method == "workload.get") {
      const auto found = workloads.find(name);
      if (found == workloads.end()) {
        return error(control::ErrorCode::kNotFound, "no workload named " + name);
      }
      return answer({{"name", name}, {"source", "live"}, {"spec", found->second}});
    }
    if (request->method == "workload.del") {
      if (workloads.erase(name) == 0) {
        if (!params.value("missing_ok", false)) {
          return error(control::ErrorCode::kNotFound, "no workload named " + name);
        }
        return answer({{"name", name}, {"outcome", "absent"}});
      }
      return answer({{"name", name}, {"outcome", "deleted"}});
    }
    if (request->method == "workload.list") {
      json list = json::array();
      for (const auto& [key, spec] : workloads) {
        list.push_back({{"name", key}, {"source", "live"}, {"spec", spec}});
      }
      return answer({{"workloads", list}, {"total", list.size()}});
    }
    return error(control::ErrorCode::kUnknownMethod, request->method);
  }

  std::string path_;
  boost::asio::io_context io_;
  std::unique_ptr<control::Server> server_;
  std::thread thread_;
};

constexpr const char* kContainer =
    "f00dfeed0123456789abcdef0123456789abcdef0123456789abcdef01234567";

class PluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(scratch_.path().empty());
    socket_ = scratch_.path() + "/meshlane.sock";
    daemon_ = std::make_unique<FakeDaemon>(socket_);
    daemon_->start();
    env_ = {{"CNI_COMMAND", "ADD"},
            {"CNI_CONTAINERID", kContainer},
            {"CNI_NETNS", "/var/run/netns/cni-1234"},
            {"CNI_IFNAME", "eth0"},
            {"CNI_PATH", "/opt/cni/bin"},
            {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-0"}};
  }

  // The prevResult of a bridge + host-local chain, in the version's format.
  static json prev_result(const std::string& version) {
    json result = json::parse(R"({
      "interfaces":[{"name":"cni0","mac":"0a:58:c6:12:00:01"},
                    {"name":"veth9c1d","mac":"5e:1c:2b:aa:bb:cc"},
                    {"name":"eth0","mac":"0a:58:c6:12:00:05","sandbox":"/var/run/netns/cni-1234"}],
      "ips":[{"address":"198.18.0.5/24","gateway":"198.18.0.1","interface":2},
             {"address":"fd00::5/64","gateway":"fd00::1","interface":2}],
      "routes":[{"dst":"0.0.0.0/0","gw":"198.18.0.1"}],
      "dns":{"nameservers":["198.18.0.53"]}})");
    result["cniVersion"] = version;
    if (version == "0.4.0") {
      result["ips"][0]["version"] = "4";
      result["ips"][1]["version"] = "6";
    }
    return result;
  }

  std::string netconf(const std::string& version, const json& annotations,
                      const std::string& policy = "open", bool with_prev = true) const {
    json conf = {{"cniVersion", version},
                 {"name", "k8s-pod-network"},
                 {"type", "meshlane-cni"},
                 {"control_socket", socket_},
                 {"failure_policy", policy},
                 {"timeout_ms", 500},
                 {"capabilities", {{"io.kubernetes.cri.pod-annotations", true}}},
                 {"runtimeConfig", {{"io.kubernetes.cri.pod-annotations", annotations}}}};
    if (with_prev) {
      conf["prevResult"] = prev_result(version);
    }
    return conf.dump();
  }

  Outcome invoke(const std::string& command, const std::string& input) {
    env_["CNI_COMMAND"] = command;
    log_text_.str("");
    Log log(log_text_);
    return run(
        [this](const char* name) -> std::optional<std::string> {
          const auto found = env_.find(name);
          return found == env_.end() ? std::nullopt : std::optional<std::string>(found->second);
        },
        input, log);
  }

  std::size_t workload_count() {
    std::lock_guard<std::mutex> lock(daemon_->mutex);
    return daemon_->workloads.size();
  }

  static int code_of(const Outcome& outcome) { return json::parse(outcome.output)["code"]; }

  const json istio_ = {{"sidecar.istio.io/status", R"({"containers":["istio-proxy"]})"}};
  test::TempDir scratch_{"meshlane-cni"};
  std::string socket_;
  std::unique_ptr<FakeDaemon> daemon_;
  std::map<std::string, std::string> env_;
  std::ostringstream log_text_;
};

TEST_F(PluginTest, AddEnrollsAnIstioPodAndPassesPrevResultThroughInEveryVersion) {
  for (const char* version : {"0.4.0", "1.0.0", "1.1.0"}) {
    SCOPED_TRACE(version);
    const Outcome outcome = invoke("ADD", netconf(version, istio_));
    ASSERT_EQ(outcome.exit_status, 0) << outcome.output << log_text_.str();
    EXPECT_EQ(json::parse(outcome.output), prev_result(version));
  }
  std::lock_guard<std::mutex> lock(daemon_->mutex);
  ASSERT_EQ(daemon_->workloads.count("shop.cart-0"), 1u);
  const json& spec = daemon_->workloads["shop.cart-0"];
  EXPECT_EQ(spec["ips"], json::parse(R"(["198.18.0.5","fd00::5"])"));
  EXPECT_EQ(spec["netns"], "/var/run/netns/cni-1234");
  EXPECT_EQ(spec["mesh"], "istio");
  EXPECT_EQ(spec["labels"]["meshlane.io/container-id"], std::string(kContainer).substr(0, 63));
}

TEST_F(PluginTest, SkippedPodsGetPrevResultAndNoCall) {
  for (const char* version : {"0.4.0", "1.0.0", "1.1.0"}) {
    const Outcome outcome = invoke("ADD", netconf(version, json::object()));
    ASSERT_EQ(outcome.exit_status, 0) << outcome.output;
    EXPECT_EQ(json::parse(outcome.output), prev_result(version));
  }
  EXPECT_EQ(daemon_->calls, 0);
  EXPECT_EQ(workload_count(), 0u);
}

TEST_F(PluginTest, AddTwiceIsIdempotent) {
  ASSERT_EQ(invoke("ADD", netconf("1.0.0", istio_)).exit_status, 0);
  const Outcome again = invoke("ADD", netconf("1.0.0", istio_));
  ASSERT_EQ(again.exit_status, 0);
  EXPECT_NE(log_text_.str().find("unchanged"), std::string::npos) << log_text_.str();
  EXPECT_EQ(workload_count(), 1u);
}

TEST_F(PluginTest, AddWithoutPrevResultIsCode7) {
  const Outcome outcome = invoke("ADD", netconf("1.0.0", istio_, "open", false));
  EXPECT_EQ(outcome.exit_status, 1);
  EXPECT_EQ(code_of(outcome), 7);
}

TEST_F(PluginTest, DaemonDownOpenPassesThroughClosedIsCode11) {
  daemon_->stop();
  const Outcome open = invoke("ADD", netconf("1.0.0", istio_, "open"));
  ASSERT_EQ(open.exit_status, 0) << open.output;
  EXPECT_EQ(json::parse(open.output), prev_result("1.0.0"));
  EXPECT_NE(log_text_.str().find("failure_policy \"open\""), std::string::npos);

  const Outcome closed = invoke("ADD", netconf("1.0.0", istio_, "closed"));
  EXPECT_EQ(closed.exit_status, 1);
  const json error = json::parse(closed.output);
  EXPECT_EQ(error["code"], 11);
  EXPECT_EQ(error["cniVersion"], "1.0.0");
  EXPECT_NE(error["details"].get<std::string>().find(socket_), std::string::npos);

  // A skipped pod needs no daemon, whatever the policy.
  EXPECT_EQ(invoke("ADD", netconf("1.0.0", json::object(), "closed")).exit_status, 0);
}

TEST_F(PluginTest, StalledDaemonTimesOut) {
  daemon_->stall_ms = 1500;  // timeout_ms is 500
  const auto start = std::chrono::steady_clock::now();
  const Outcome closed = invoke("ADD", netconf("1.0.0", istio_, "closed"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
  EXPECT_EQ(closed.exit_status, 1);
  EXPECT_EQ(code_of(closed), 11);
  daemon_->stall_ms = 0;
}

TEST_F(PluginTest, DaemonRefusalFollowsThePolicy) {
  daemon_->refuse_add = true;
  EXPECT_EQ(invoke("ADD", netconf("1.1.0", istio_, "open")).exit_status, 0);
  const Outcome closed = invoke("ADD", netconf("1.1.0", istio_, "closed"));
  EXPECT_EQ(closed.exit_status, 1);
  EXPECT_EQ(code_of(closed), 100);
}

TEST_F(PluginTest, BadAnnotationFollowsThePolicy) {
  json annotations = istio_;
  annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] = "postgres";
  const Outcome open = invoke("ADD", netconf("1.0.0", annotations, "open"));
  EXPECT_EQ(open.exit_status, 0);
  EXPECT_EQ(json::parse(open.output), prev_result("1.0.0"));
  EXPECT_EQ(workload_count(), 0u);
  const Outcome closed = invoke("ADD", netconf("1.0.0", annotations, "closed"));
  EXPECT_EQ(code_of(closed), 101);
}

TEST_F(PluginTest, DelRemovesAndIsIdempotent) {
  ASSERT_EQ(invoke("ADD", netconf("1.0.0", istio_)).exit_status, 0);
  ASSERT_EQ(workload_count(), 1u);
  const std::string del_conf = netconf("1.0.0", json::object(), "closed", false);
  Outcome del = invoke("DEL", del_conf);
  EXPECT_EQ(del.exit_status, 0);
  EXPECT_EQ(del.output, "");
  EXPECT_EQ(workload_count(), 0u);
  EXPECT_EQ(invoke("DEL", del_conf).exit_status, 0);  // twice
  env_.erase("CNI_NETNS");                            // the namespace is already gone
  EXPECT_EQ(invoke("DEL", del_conf).exit_status, 0);
  daemon_->stop();  // and the daemon too
  EXPECT_EQ(invoke("DEL", del_conf).exit_status, 0);
}

TEST_F(PluginTest, DelOfAnOldSandboxLeavesTheNewOne) {
  ASSERT_EQ(invoke("ADD", netconf("1.0.0", istio_)).exit_status, 0);
  env_["CNI_CONTAINERID"] = "0ldsandbox";
  EXPECT_EQ(invoke("DEL", netconf("1.0.0", json::object())).exit_status, 0);
  EXPECT_EQ(workload_count(), 1u);
  EXPECT_NE(log_text_.str().find("another sandbox"), std::string::npos);
}

TEST_F(PluginTest, CheckVerifiesTheRegistration) {
  EXPECT_EQ(invoke("CHECK", netconf("1.0.0", json::object(), "closed")).exit_status, 0);
  const Outcome missing = invoke("CHECK", netconf("1.0.0", istio_, "closed"));
  EXPECT_EQ(missing.exit_status, 1);
  EXPECT_EQ(code_of(missing), 102);
  ASSERT_EQ(invoke("ADD", netconf("0.4.0", istio_)).exit_status, 0);
  const Outcome ok = invoke("CHECK", netconf("0.4.0", istio_, "closed"));
  EXPECT_EQ(ok.exit_status, 0) << ok.output;
  EXPECT_EQ(ok.output, "");
  env_["CNI_NETNS"] = "/var/run/netns/elsewhere";
  EXPECT_EQ(code_of(invoke("CHECK", netconf("1.0.0", istio_, "closed"))), 102);
}

TEST_F(PluginTest, StatusAnswersWhetherTheDaemonDoes) {
  EXPECT_EQ(invoke("STATUS", netconf("1.1.0", json::object(), "closed", false)).exit_status, 0);
  daemon_->stop();
  const Outcome closed = invoke("STATUS", netconf("1.1.0", json::object(), "closed", false));
  EXPECT_EQ(closed.exit_status, 1);
  EXPECT_EQ(code_of(closed), 50);
  EXPECT_EQ(invoke("STATUS", netconf("1.1.0", json::object(), "open", false)).exit_status, 0);
  EXPECT_EQ(code_of(invoke("STATUS", netconf("1.0.0", json::object(), "open", false))), 1);
}

TEST_F(PluginTest, GcRemovesOnlyStaleCniWorkloads) {
  ASSERT_EQ(invoke("ADD", netconf("1.1.0", istio_)).exit_status, 0);
  env_["CNI_CONTAINERID"] = "c2";
  env_["CNI_ARGS"] = "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-1";
  ASSERT_EQ(invoke("ADD", netconf("1.1.0", istio_)).exit_status, 0);
  {
    std::lock_guard<std::mutex> lock(daemon_->mutex);
    daemon_->workloads["by-hand"] = {{"name", "by-hand"}};  // not ours: never collected
  }
  json gc = json::parse(netconf("1.1.0", json::object(), "open", false));
  gc["cni.dev/valid-attachments"] = json::parse(R"([{"containerID":"c2","ifname":"eth0"}])");
  env_.erase("CNI_CONTAINERID");
  env_.erase("CNI_NETNS");
  env_.erase("CNI_IFNAME");
  env_.erase("CNI_ARGS");
  const Outcome outcome = invoke("GC", gc.dump());
  EXPECT_EQ(outcome.exit_status, 0) << outcome.output;
  std::lock_guard<std::mutex> lock(daemon_->mutex);
  EXPECT_EQ(daemon_->workloads.count("shop.cart-0"), 0u);
  EXPECT_EQ(daemon_->workloads.count("shop.cart-1"), 1u);
  EXPECT_EQ(daemon_->workloads.count("by-hand"), 1u);
}

TEST_F(PluginTest, GcWithoutTheListRemovesNothing) {
  ASSERT_EQ(invoke("ADD", netconf("1.1.0", istio_)).exit_status, 0);
  EXPECT_EQ(invoke("GC", netconf("1.1.0", json::object(), "open", false)).exit_status, 0);
  EXPECT_EQ(workload_count(), 1u);
}

TEST_F(PluginTest, VersionAnswersForEveryVersion) {
  for (const char* version : {"0.4.0", "1.0.0", "1.1.0"}) {
    const Outcome outcome = invoke("VERSION", json{{"cniVersion", version}}.dump());
    ASSERT_EQ(outcome.exit_status, 0);
    EXPECT_EQ(json::parse(outcome.output)["cniVersion"], version);
    EXPECT_EQ(json::parse(outcome.output)["supportedVersions"],
              json::parse(R"(["0.4.0","1.0.0","1.1.0"])"));
  }
  EXPECT_EQ(invoke("VERSION", "").exit_status, 0);
}

TEST_F(PluginTest, ErrorsBeforeAndAfterDecoding) {
  EXPECT_EQ(code_of(invoke("ADD", "{")), 6);
  EXPECT_EQ(code_of(invoke("ADD", netconf("0.3.1", istio_))), 1);
  json bad = json::parse(netconf("1.0.0", istio_));
  bad["failure_policy"] = "sometimes";
  EXPECT_EQ(code_of(invoke("ADD", bad.dump())), 7);
  env_.erase("CNI_IFNAME");
  const Outcome env_error = invoke("ADD", netconf("1.0.0", istio_));
  EXPECT_EQ(code_of(env_error), 4);
  EXPECT_EQ(json::parse(env_error.output)["cniVersion"], "1.0.0");
}

TEST_F(PluginTest, LogFileGetsTheLines) {
  json conf = json::parse(netconf("1.0.0", istio_));
  conf["log_file"] = scratch_.path() + "/cni.log";
  ASSERT_EQ(invoke("ADD", conf.dump()).exit_status, 0);
  std::ifstream file(scratch_.path() + "/cni.log");
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_NE(text.str().find("workload shop.cart-0 added"), std::string::npos) << text.str();
}

}  // namespace
}  // namespace meshlane::cni
