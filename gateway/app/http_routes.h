#pragma once

#include <httplib.h>

#include <functional>
#include <regex>
#include <string>
#include <unordered_map>
#include <vector>

namespace relance::app {

// The gateway's HTTP routes, as the server (gateway/app/http_server.h) dispatches them. Handlers
// take cpp-httplib's Request and Response, plain values here: the server parses with Boost.Beast
// and fills them in.
class Routes {
 public:
  // Runs on a worker thread and may block (a preview, an outcome waiting for Kafka).
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  // Sends the answer, from any thread, exactly once.
  using Reply = std::function<void(httplib::Response)>;
  // Runs on the connection's network thread and must not block: it answers through the Reply,
  // at once or when what it started completes (a status callback's Kafka acknowledgement).
  using AsyncHandler = std::function<void(const httplib::Request&, Reply)>;

  // A path without regular-expression syntax is matched as a string; any other is an ECMAScript
  // pattern over the whole path, its groups in Request::matches.
  void Get(const std::string& pattern, Handler handler);
  void Post(const std::string& pattern, Handler handler);
  void GetAsync(const std::string& pattern, AsyncHandler handler);
  void PostAsync(const std::string& pattern, AsyncHandler handler);
  // An answer computed at once, without blocking, on the network thread: health, readiness and
  // metrics stay answered while every worker waits on a broker that is down.
  static AsyncHandler immediate(Handler handler);

  struct Route {
    Handler handler;
    AsyncHandler async_handler;
  };
  // The route for the method ("HEAD" finds GET's) and the request's path, its groups filled
  // into request.matches; nullptr when none.
  const Route* find(const std::string& method, httplib::Request& request) const;

 private:
  struct Pattern {
    std::regex regex;
    Route route;
  };
  struct Table {
    std::unordered_map<std::string, Route> exact;
    std::vector<Pattern> patterns;
  };
  void add(Table& table, const std::string& pattern, Route route);

  Table get_;
  Table post_;
};

}  // namespace relance::app
