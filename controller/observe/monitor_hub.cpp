#include "observe/monitor_hub.hpp"

#include <algorithm>
#include <utility>

namespace meshlane::monitor {

struct Subscription::Core {
  Hub::GateFn set_gate;
  std::vector<Subscription*> subscriptions;
  std::uint64_t gate = 0;

  void update_gate() {
    std::uint64_t mask = 0;
    for (const Subscription* subscription : subscriptions) {
      mask |= subscription->filter().types;
    }
    if (mask != gate) {
      gate = mask;
      if (set_gate) {
        set_gate(mask);
      }
    }
  }
};

Subscription::Subscription(std::weak_ptr<Core> core, Filter filter, std::size_t limit)
    : core_(std::move(core)), filter_(std::move(filter)), limit_(limit) {}

Subscription::~Subscription() { stop(); }

void Subscription::start(std::function<void()> wake) {
  wake_ = std::move(wake);
  notify();  // events queued between subscribing and the acknowledgement going out
}

bool Subscription::take(std::string& out) {
  if (queue_.empty() && pending_drops_ == 0 && pending_kernel_drops_ == 0) {
    return false;
  }
  for (std::string& line : queue_) {
    out += line;
  }
  queue_.clear();
  // The queue was full when these were dropped: they came after everything queued so far.
  if (pending_drops_ != 0) {
    out += drop_notice(pending_drops_, "client_queue").dump() + "\n";
    pending_drops_ = 0;
  }
  if (pending_kernel_drops_ != 0) {
    out += drop_notice(pending_kernel_drops_, "kernel_ring").dump() + "\n";
    pending_kernel_drops_ = 0;
  }
  return true;
}

void Subscription::stop() {
  if (stopped_) {
    return;
  }
  stopped_ = true;
  wake_ = nullptr;
  queue_.clear();
  if (auto core = core_.lock()) {
    auto& list = core->subscriptions;
    list.erase(std::remove(list.begin(), list.end(), this), list.end());
    core->update_gate();
  }
}

void Subscription::offer(const std::string& line) {
  if (queue_.size() >= limit_) {
    ++pending_drops_;
    ++dropped_total_;
    return;
  }
  queue_.push_back(line);
  notify();
}

void Subscription::offer_kernel_drops(std::uint64_t count) {
  pending_kernel_drops_ += count;
  notify();
}

void Subscription::notify() {
  if (wake_) {
    wake_();
  }
}

Hub::Hub(GateFn set_gate, std::size_t queue_limit)
    : core_(std::make_shared<Subscription::Core>()), queue_limit_(queue_limit) {
  core_->set_gate = std::move(set_gate);
}

Hub::~Hub() {
  // Subscriptions still held by sessions see the core gone and detach from nothing.
  core_->subscriptions.clear();
  core_->set_gate = nullptr;
}

std::shared_ptr<Subscription> Hub::subscribe(Filter filter) {
  std::shared_ptr<Subscription> subscription(
      new Subscription(core_, std::move(filter), queue_limit_));
  core_->subscriptions.push_back(subscription.get());
  core_->update_gate();
  return subscription;
}

void Hub::publish(const Event& event) {
  std::optional<std::string> line;  // encoded once, for the first subscriber that wants it
  // A wake-up may end a subscription (a session closing): iterate over a copy.
  const std::vector<Subscription*> targets = core_->subscriptions;
  for (Subscription* subscription : targets) {
    if (std::find(core_->subscriptions.begin(), core_->subscriptions.end(), subscription) ==
            core_->subscriptions.end() ||
        !subscription->filter().matches(event)) {
      continue;
    }
    if (!line) {
      line = event_to_json(event).dump() + "\n";
    }
    subscription->offer(*line);
  }
}

void Hub::publish_kernel_drops(std::uint64_t count) {
  const std::vector<Subscription*> targets = core_->subscriptions;
  for (Subscription* subscription : targets) {
    if (std::find(core_->subscriptions.begin(), core_->subscriptions.end(), subscription) !=
        core_->subscriptions.end()) {
      subscription->offer_kernel_drops(count);
    }
  }
}

std::size_t Hub::subscribers() const { return core_->subscriptions.size(); }

std::uint64_t Hub::gate() const { return core_->gate; }

}  // namespace meshlane::monitor
