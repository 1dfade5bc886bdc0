// Fuzzes what a scraper can send to the metrics endpoint: the bytes are cut at the end of the
// request head as the server cuts them (request_head_end) and answered by handle_request_head.
// Checks that every answer is a well-formed HTTP/1.1 response with a known status whose
// Content-Length is its body's, that only GET or HEAD of /metrics renders the page, and that
// HEAD never carries the body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "observe/metrics.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using meshlane::fuzz::require;
  const std::string_view received(reinterpret_cast<const char*>(data), size);
  const std::size_t end = meshlane::metrics::request_head_end(received);
  require(end == std::string_view::npos || (end >= 2 && end <= received.size()),
          "the head ends inside what was received", received);
  const std::string_view head = end == std::string_view::npos ? received : received.substr(0, end);

  const std::string page = "meshlane_up 1\n";
  int renders = 0;
  const meshlane::metrics::HttpResponse response =
      meshlane::metrics::handle_request_head(head, [&] {
        ++renders;
        return meshlane::Result<std::string>(page);
      });
  const bool metrics_request =
      head.starts_with("GET /metrics") || head.starts_with("HEAD /metrics");
  require(renders <= 1, "the page is rendered at most once", head);
  require(renders == 0 || metrics_request, "only GET or HEAD of /metrics renders the page", head);
  require(response.status == 200 || response.status == 400 || response.status == 404 ||
              response.status == 405,
          "a known status", head);
  require((response.status == 200) == (renders == 1), "200 exactly when the page was rendered",
          head);

  const std::string bytes = response.serialize();
  const std::string length = "\r\nContent-Length: " + std::to_string(response.body.size()) + "\r\n";
  require(bytes.starts_with("HTTP/1.1 " + std::to_string(response.status) + " "),
          "a status line first", bytes);
  require(bytes.find(length) != std::string::npos, "Content-Length is the body's", bytes);
  const std::size_t body_at = bytes.find("\r\n\r\n");
  require(body_at != std::string::npos, "headers end with a blank line", bytes);
  require(bytes.substr(body_at + 4) == (response.head_only ? "" : response.body),
          "the body follows the headers, none for HEAD", bytes);
  return 0;
}
