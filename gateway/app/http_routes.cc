#include "app/http_routes.h"

namespace relance::app {

void Routes::add(Table& table, const std::string& pattern, Route route) {
  if (pattern.find_first_of("()[]{}\\*+?|^$") == std::string::npos) {
    table.exact.emplace(pattern, std::move(route));
  } else {
    table.patterns.push_back(Pattern{std::regex(pattern), std::move(route)});
  }
}

void Routes::Get(const std::string& pattern, Handler handler) { add(get_, pattern, Route{std::move(handler), {}}); }

void Routes::Post(const std::string& pattern, Handler handler) { add(post_, pattern, Route{std::move(handler), {}}); }

void Routes::GetAsync(const std::string& pattern, AsyncHandler handler) {
  add(get_, pattern, Route{{}, std::move(handler)});
}

Routes::AsyncHandler Routes::immediate(Handler handler) {
  return [handler = std::move(handler)](const httplib::Request& request, const Reply& reply) {
    httplib::Response response;
    handler(request, response);
    reply(std::move(response));
  };
}

void Routes::PostAsync(const std::string& pattern, AsyncHandler handler) {
  add(post_, pattern, Route{{}, std::move(handler)});
}

const Routes::Route* Routes::find(const std::string& method, httplib::Request& request) const {
  const Table* table = nullptr;
  if (method == "GET" || method == "HEAD") {
    table = &get_;
  } else if (method == "POST") {
    table = &post_;
  } else {
    return nullptr;
  }
  if (auto it = table->exact.find(request.path); it != table->exact.end()) return &it->second;
  for (const auto& pattern : table->patterns) {
    if (std::regex_match(request.path, request.matches, pattern.regex)) return &pattern.route;
  }
  return nullptr;
}

}  // namespace relance::app
