#include "channels/http/transfer_loop.h"

#include <algorithm>
#include <stdexcept>
#include <thread>

namespace relance::channels::http {

namespace {

struct GlobalInit {
  GlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

}  // namespace

TransferLoop::TransferLoop() {
  static GlobalInit init;
  multi_ = curl_multi_init();
  if (multi_ == nullptr) throw std::runtime_error("libcurl: cannot create a multi handle");
  // Several requests to one provider share its connections instead of opening one each.
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
}

TransferLoop::~TransferLoop() {
  for (auto& [easy, done] : transfers_) curl_multi_remove_handle(multi_, easy);
  curl_multi_cleanup(multi_);
}

void TransferLoop::start(CURL* easy, Completion done) {
  transfers_.emplace(easy, std::move(done));
  if (auto rc = curl_multi_add_handle(multi_, easy); rc != CURLM_OK) {
    auto node = transfers_.extract(easy);
    node.mapped()(CURLE_FAILED_INIT);
  }
}

TransferLoop::TimerId TransferLoop::at(SteadyTime when, std::function<void()> fire) {
  auto id = next_timer_++;
  timers_.emplace(when, std::pair{id, std::move(fire)});
  return id;
}

void TransferLoop::cancel(TimerId id) {
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    if (it->second.first == id) {
      timers_.erase(it);
      return;
    }
  }
}

void TransferLoop::run_once(std::chrono::milliseconds max_wait) {
  auto wait = max_wait;
  if (!timers_.empty()) {
    auto until = std::chrono::ceil<std::chrono::milliseconds>(timers_.begin()->first - std::chrono::steady_clock::now());
    wait = std::clamp(until, std::chrono::milliseconds(0), wait);
  }
  int running = 0;
  if (transfers_.empty() && wait.count() > 0) {
    // Nothing on the wire: only a timer can have work for us.
    std::this_thread::sleep_for(wait);
  } else if (!transfers_.empty()) {
    curl_multi_perform(multi_, &running);
    complete_finished();
    if (!transfers_.empty() && wait.count() > 0) {
      curl_multi_poll(multi_, nullptr, 0, static_cast<int>(wait.count()), nullptr);
      curl_multi_perform(multi_, &running);
      complete_finished();
    }
  }
  fire_timers();
}

void TransferLoop::complete_finished() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    curl_multi_remove_handle(multi_, easy);
    auto node = transfers_.extract(easy);
    // The completion may start new transfers (a retry, the next queued message).
    if (!node.empty()) node.mapped()(result);
  }
}

void TransferLoop::fire_timers() {
  auto now = std::chrono::steady_clock::now();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    auto fire = std::move(timers_.begin()->second.second);
    timers_.erase(timers_.begin());
    fire();
  }
}

bool TransferLoop::drain(SteadyTime deadline) {
  // Waits for requests already on the wire (their outcome must be recorded); messages still
  // waiting for a timer are left unsent.
  while (!transfers_.empty() && std::chrono::steady_clock::now() < deadline) run_once(std::chrono::milliseconds(20));
  return transfers_.empty();
}

}  // namespace relance::channels::http
