// The Prometheus metrics endpoint's content (docs/metrics.md): the datapath counters and a few
// gauges in the Prometheus text exposition format (version 0.0.4), and the HTTP/1.x exchange
// that serves them. Pure (no I/O): metrics_server.hpp does the sockets.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "observe/counters.hpp"

namespace meshlane::metrics {

// Label name and value, e.g. {"workload", "reviews-v1"}. Names match [a-zA-Z_][a-zA-Z0-9_]*;
// values may hold any UTF-8 (escaped on output).
using Labels = std::vector<std::pair<std::string, std::string>>;

// One workload's datapath counters, labelled {"workload", NAME}.
struct CounterSet {
  Labels labels;
  Counters counters;
};

// One sample of a gauge. Samples of the same name form one family (HELP and TYPE once); give
// them the same help text.
struct GaugeSample {
  std::string name;  // without the meshlane_ prefix, e.g. "uptime_seconds"
  std::string help;
  Labels labels;
  double value = 0;
};

// Prometheus name of a node-wide datapath counter: meshlane_<name>_total, where <name> is the
// counter's name with the unit last (bytes_redirected -> meshlane_redirected_bytes_total).
std::string counter_metric_name(ml_counter counter);
// Prometheus name of a per-workload counter: meshlane_workload_<name>_total. Node-wide and
// per-workload series never share a name, so that sum() over a family never adds a workload's
// share to the node's total that already holds it.
std::string workload_counter_metric_name(ml_counter counter);
// The # HELP text of a datapath counter.
const char* counter_help(ml_counter counter);

// The exposition text: for every counter a family meshlane_<name>_total with the node-wide
// value; for every counter the programs count per workload (counted_per_workload) a family
// meshlane_workload_<name>_total with one sample per workload set; then the gauge families in
// the order first seen. Labels that break the naming rules are an error (a bug in the caller),
// never a malformed page.
Result<std::string> format_prometheus(const Counters& node, std::span<const CounterSet> workloads,
                                      std::span<const GaugeSample> gauges);

inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kMetricsPath = "/metrics";
// Longest request head (request line and headers) read; longer: 431 and close.
inline constexpr std::size_t kMaxRequestHeadBytes = 8192;

// What a request head (everything up to the empty line) amounts to.
struct HttpResponse {
  int status = 200;
  std::string reason;
  std::string content_type;
  std::string body;
  bool head_only = false;  // HEAD: headers only, Content-Length still that of the body
  std::vector<std::pair<std::string, std::string>> extra_headers;

  // Status line, headers (Content-Length, Connection: close) and body.
  [[nodiscard]] std::string serialize() const;
};

// Produces the metrics page, or an error when the counters cannot be read (503).
using RenderFn = std::function<Result<std::string>()>;

// Answers one request head: GET or HEAD of /metrics (a query string is ignored) renders the
// page; any other path is 404, another method on /metrics 405, a malformed request line or
// HTTP version 400. `head` is the bytes up to (not including) the blank line.
HttpResponse handle_request_head(std::string_view head, const RenderFn& render);

// Where the request head ends in `received`: the index just past "\r\n\r\n" (or a bare
// "\n\n"), or npos while incomplete.
std::size_t request_head_end(std::string_view received);

}  // namespace meshlane::metrics
