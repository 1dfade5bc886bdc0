#include "observe/metrics.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <map>
#include <system_error>

namespace meshlane::metrics {

namespace {

constexpr std::string_view kPrefix = "meshlane_";

bool is_valid_name(std::string_view name) {
  if (name.empty()) {
    return false;
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) {
      return false;
    }
  }
  return true;
}

// The exposition format's escapes: \\, \" and \n in label values, \\ and \n in HELP text.
std::string escape(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

Result<std::string> format_labels(const Labels& labels) {
  if (labels.empty()) {
    return std::string();
  }
  std::string out = "{";
  for (const auto& [name, value] : labels) {
    // "__" names are reserved for Prometheus itself.
    if (!is_valid_name(name) || name.starts_with("__")) {
      return make_error("metrics: invalid label name \"" + name + "\"");
    }
    out += (out.size() > 1 ? "," : "") + name + "=\"" + escape(value, true) + "\"";
  }
  return out + "}";
}

std::string format_value(double value) {
  if (std::isnan(value)) {
    return "NaN";
  }
  if (std::isinf(value)) {
    return value > 0 ? "+Inf" : "-Inf";
  }
  std::array<char, 64> text{};
  const auto [end, error] = std::to_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() ? std::string(text.data(), end) : "NaN";
}

void family_header(std::string& out, std::string_view name, std::string_view help,
                   std::string_view type) {
  out.append("# HELP ").append(name).append(" ").append(escape(help, false)).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

}  // namespace

const char* counter_help(ml_counter counter) {
  switch (counter) {
    case ML_CTR_SOCKETS_ADDED: return "Sockets put into the sockhash (spliceable).";
    case ML_CTR_SOCKETS_ADD_FAILED: return "Sockets not spliced because the sockhash was full.";
    case ML_CTR_SOCKETS_SKIPPED_PORT:
      return "Sockets not spliced because of acceleration.include_ports/exclude_ports.";
    case ML_CTR_MESSAGES_REDIRECTED: return "Sends redirected to the peer socket.";
    case ML_CTR_BYTES_REDIRECTED: return "Bytes redirected to the peer socket.";
    case ML_CTR_REDIRECT_FAILED:
      return "Sends that went to the normal stack because the redirect failed.";
    case ML_CTR_INTERCEPT_OUTBOUND: return "App connects sent to the pod's outbound proxy.";
    case ML_CTR_INTERCEPT_NODE_PROXY: return "App connects sent to the node-level proxy.";
    case ML_CTR_INTERCEPT_INBOUND:
      return "Proxy connects sent to a local workload's inbound proxy.";
    case ML_CTR_INTERCEPT_INBOUND_TC:
      return "Connections from off the node steered to the inbound proxy by tc.";
    case ML_CTR_BYPASS_EXCLUDED: return "Connects not intercepted: excluded port or CIDR.";
    case ML_CTR_BYPASS_PROXY: return "The proxies' own connects, passed untouched.";
    case ML_CTR_ORIG_DST_ANSWERED: return "SO_ORIGINAL_DST queries answered.";
    case ML_CTR_ORIG_DST_UNKNOWN:
      return "SO_ORIGINAL_DST queries for connections meshlane did not steer.";
    case ML_CTR_SPLICED_APP_PROXY: return "Connections spliced between an app and its proxy.";
    case ML_CTR_SPLICED_PROXY_PROXY: return "Connections spliced between two proxies.";
    case ML_CTR_SPLICED_PROXY_APP: return "Connections spliced between a proxy and an app.";
    case ML_CTR_SPLICED_OTHER: return "Other local connections spliced.";
    case ML_CTR_SOCKETS_SKIPPED_BLOCKING:
      return "Sockets not spliced because the application may read them in blocking mode.";
    case ML_CTR_DENIED_CONNECT: return "Connects refused by L4 policy (the caller got EPERM).";
    case ML_CTR_DENIED_INBOUND_TC:
      return "SYNs to a pod dropped by L4 policy at the pod's interface (tc).";
    case ML_CTR_SOCKETS_SKIPPED_WORKLOAD:
      return "Sockets not spliced because acceleration is off for their workload or port.";
    case ML_CTR_INTERCEPT_SKIPPED_MAP_FULL:
      return "Connections not intercepted (normal path) because the original-destination map "
             "was full.";
    case ML_CTR_ORIG_DST_FILE_FAILED:
      return "Intercepted connections whose original destination could not be filed.";
    case ML_CTR_TC_FLOW_COLLISIONS:
      return "SYNs not steered by tc: their flow key was taken by a connection to another port.";
    case ML_CTR_TC_FLOWS_FULL: return "SYNs not steered by tc because the tc flow map was full.";
    case ML_CTR_REDIRECT_READER_BEHIND:
      return "Spliced sockets sent back to the normal stack because their reader was more than "
             "acceleration.max_unread_bytes behind.";
    case ML_CTR_SOCKETS_SKIPPED_PEER:
      return "Sockets not spliced because the other end of their connection is not (off the "
             "node, outside the cgroup, not spliced, or its first bytes went by TCP).";
    case ML_CTR_LISTENERS_SCANNED:
      return "Listening sockets opened before the datapath whose mode the listener scan "
             "recorded (their new connections can be spliced).";
    case ML_CTR_FAST_PATH_CONNECTIONS:
      return "App connects that took the L4 fast path to an app of another workload on this "
             "node, skipping both sidecars (per workload: counted for the client and the "
             "server).";
    case ML_CTR_SPLICED_FAST_PATH: return "Fast-path connections spliced (both ends).";
    case ML_CTR_FAST_PATH_BYTES:
      return "Bytes sent over spliced fast-path connections (per workload: the sender's).";
    case ML_CTR_LISTENERS_UNREGISTERED:
      return "Listening sockets left out of the listener registry: their namespace and port "
             "already had the registry's maximum registered.";
    case ML_CTR_SOCKETS_SKIPPED_SHORT:
      return "Client sockets not spliced because their server port's spliced connections were "
             "mostly short (acceleration.adaptive_splicing).";
    case ML_CTR_DNS_CAPTURED_UDP:
      return "DNS capture: UDP queries to port 53 (sends and connects) sent to the DNS proxy.";
    case ML_CTR_DNS_CAPTURED_TCP:
      return "DNS capture: TCP connects to port 53 sent to the DNS proxy.";
    case ML_CTR_DNS_REPLIES_REWRITTEN:
      return "DNS capture: replies of the DNS proxy shown to the app as from the server it asked.";
    case ML_CTR_DNS_SERVER_SWITCHED:
      return "DNS capture: captured queries to a server other than the socket's previous one "
             "(replies still due from the earlier server appear to come from the later).";
    case ML_CTR_REDIRECT_READER_SPINNING:
      return "Spliced sockets whose sends went back to the normal stack because their reader "
             "spins on its socket (each redirected send would wait for the reader's lock).";
    case ML_CTR_REDIRECT_PEER_LEFT:
      return "Spliced sockets whose sends went back to the normal stack because their peer's had "
             "(bytes came to them by TCP): the connection leaves the splice in both directions.";
    case ML_CTR_STEERED_NO_PROXY:
      return "Connections from off the node that socket-lookup steering refused because no "
             "listener of the pod's inbound proxy port was found.";
    case ML_CTR_SOCKETS_SAMPLED_SHORT:
      return "Client sockets of a short port's connections watched unspliced as samples, one in "
             "16, to keep the port's judgement current (acceleration.adaptive_splicing).";
    case ML_CTR_MAX: break;
  }
  return "A meshlane datapath counter.";
}

namespace {

// The counter's name as a Prometheus metric base: units last, as the conventions want.
std::string prometheus_base_name(ml_counter counter) {
  if (counter == ML_CTR_BYTES_REDIRECTED) {
    return "redirected_bytes";
  }
  return counter_name(counter);
}

}  // namespace

std::string counter_metric_name(ml_counter counter) {
  return std::string(kPrefix) + prometheus_base_name(counter) + "_total";
}

std::string workload_counter_metric_name(ml_counter counter) {
  return std::string(kPrefix) + "workload_" + prometheus_base_name(counter) + "_total";
}

Result<std::string> format_prometheus(const Counters& node, std::span<const CounterSet> workloads,
                                      std::span<const GaugeSample> gauges) {
  std::vector<std::string> workload_labels;
  for (const CounterSet& set : workloads) {
    auto labels = format_labels(set.labels);
    if (!labels) {
      return labels.error();
    }
    workload_labels.push_back(std::move(labels.value()));
  }
  std::string out;
  for (int index = 0; index < ML_CTR_MAX; ++index) {
    const auto counter = static_cast<ml_counter>(index);
    const std::string name = counter_metric_name(counter);
    family_header(out, name, counter_help(counter), "counter");
    out.append(name).append(" ").append(std::to_string(node[counter])).append("\n");
  }
  for (int index = 0; index < ML_CTR_MAX; ++index) {
    const auto counter = static_cast<ml_counter>(index);
    if (!counted_per_workload(counter)) {
      continue;  // the programs count it node-wide only: a workload's would always be 0
    }
    const std::string name = workload_counter_metric_name(counter);
    family_header(out, name, std::string(counter_help(counter)) + " Per workload.", "counter");
    for (std::size_t i = 0; i < workloads.size(); ++i) {
      out.append(name)
          .append(workload_labels[i])
          .append(" ")
          .append(std::to_string(workloads[i].counters[counter]))
          .append("\n");
    }
  }

  // Gauges grouped into families by name, in the order each name first appears.
  std::vector<std::string> order;
  std::map<std::string, std::vector<const GaugeSample*>> families;
  for (const GaugeSample& sample : gauges) {
    if (!is_valid_name(sample.name)) {
      return make_error("metrics: invalid gauge name \"" + sample.name + "\"");
    }
    auto& family = families[sample.name];
    if (family.empty()) {
      order.push_back(sample.name);
    }
    family.push_back(&sample);
  }
  for (const std::string& gauge : order) {
    const auto& samples = families[gauge];
    const std::string name = std::string(kPrefix) + gauge;
    family_header(out, name, samples.front()->help, "gauge");
    for (const GaugeSample* sample : samples) {
      auto labels = format_labels(sample->labels);
      if (!labels) {
        return labels.error();
      }
      out.append(name)
          .append(labels.value())
          .append(" ")
          .append(format_value(sample->value))
          .append("\n");
    }
  }
  return out;
}

std::string HttpResponse::serialize() const {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  out += "Content-Type: " + content_type + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& [name, value] : extra_headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  // One request per connection: scrapers reconnect, and the server stays simple.
  out += "Connection: close\r\n\r\n";
  if (!head_only) {
    out += body;
  }
  return out;
}

namespace {

HttpResponse plain(int status, std::string reason, std::string body) {
  return {status, std::move(reason), "text/plain; charset=utf-8", std::move(body) + "\n"};
}

bool is_token(std::string_view text) {
  if (text.empty()) {
    return false;
  }
  for (char c : text) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::size_t request_head_end(std::string_view received) {
  const std::size_t crlf = received.find("\r\n\r\n");
  const std::size_t lf = received.find("\n\n");
  if (crlf == std::string_view::npos && lf == std::string_view::npos) {
    return std::string_view::npos;
  }
  if (crlf != std::string_view::npos && (lf == std::string_view::npos || crlf < lf)) {
    return crlf + 4;
  }
  return lf + 2;
}

HttpResponse handle_request_head(std::string_view head, const RenderFn& render) {
  std::string_view request_line = head.substr(0, head.find('\n'));
  if (request_line.ends_with('\r')) {
    request_line.remove_suffix(1);
  }
  // METHOD SP TARGET SP HTTP/1.x, single spaces (RFC 9112 section 3).
  const std::size_t first = request_line.find(' ');
  const std::size_t second =
      first == std::string_view::npos ? first : request_line.find(' ', first + 1);
  if (second == std::string_view::npos ||
      request_line.find(' ', second + 1) != std::string_view::npos) {
    return plain(400, "Bad Request", "malformed request line; expected GET /metrics HTTP/1.1");
  }
  const std::string_view method = request_line.substr(0, first);
  const std::string_view target = request_line.substr(first + 1, second - first - 1);
  const std::string_view version = request_line.substr(second + 1);
  if (!is_token(method) || !target.starts_with('/') ||
      (version != "HTTP/1.1" && version != "HTTP/1.0")) {
    return plain(400, "Bad Request", "malformed request line; expected GET /metrics HTTP/1.1");
  }
  const std::string_view path = target.substr(0, target.find('?'));
  if (path != kMetricsPath) {
    return plain(404, "Not Found", "not found; metrics are at /metrics");
  }
  if (method != "GET" && method != "HEAD") {
    HttpResponse response = plain(405, "Method Not Allowed", "only GET and HEAD are allowed");
    response.extra_headers.emplace_back("Allow", "GET, HEAD");
    return response;
  }
  auto page = render();
  HttpResponse response =
      page
          ? HttpResponse{200, "OK", std::string(kContentType), std::move(page.value())}
          : plain(503, "Service Unavailable", "cannot read the metrics: " + page.error().message());
  response.head_only = method == "HEAD";
  return response;
}

}  // namespace meshlane::metrics
