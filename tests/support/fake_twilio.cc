#include "support/fake_twilio.h"

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <stdexcept>
#include <thread>

namespace relance::testing {
namespace {

using Clock = std::chrono::system_clock;

constexpr const char* kApiVersion = "2010-04-01";
// Each keep-alive connection holds a worker while it is open, and a delayed answer holds one for
// its whole delay: enough workers that neither ever blocks another request.
constexpr std::size_t kWorkers = 64;

// --- encoding ---------------------------------------------------------------------------------

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding: '+' is a space, %XX a byte.
std::string form_decode(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Splits on '&', then on the first '=': "DateSent>=2026-01-01" is the name "DateSent>", as
// Twilio reads it, whether or not the client percent-encoded the '>'.
FormFields parse_form(const std::string& text) {
  FormFields fields;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find('&', start);
    if (end == std::string::npos) end = text.size();
    auto pair = text.substr(start, end - start);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      if (eq == std::string::npos) {
        fields.emplace_back(form_decode(pair), "");
      } else {
        fields.emplace_back(form_decode(pair.substr(0, eq)), form_decode(pair.substr(eq + 1)));
      }
    }
    start = end + 1;
  }
  return fields;
}

std::string form_encode_part(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += ch;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

std::string form_encode(const FormFields& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    out += form_encode_part(name) + "=" + form_encode_part(value);
  }
  return out;
}

std::optional<std::string> field(const FormFields& fields, const std::string& name) {
  for (const auto& [key, value] : fields) {
    if (key == name) return value;
  }
  return std::nullopt;
}

std::string value_of(const FormFields& fields, const std::string& name) { return field(fields, name).value_or(""); }

void set_field(FormFields& fields, const std::string& name, const std::string& value) {
  for (auto& [key, existing] : fields) {
    if (key == name) {
      existing = value;
      return;
    }
  }
  fields.emplace_back(name, value);
}

std::string base64(const unsigned char* data, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(written));
  return out;
}

std::optional<std::string> base64_decode(const std::string& text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  int written = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (written < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(written));
  // EVP_DecodeBlock keeps the zero bytes the padding stands for.
  for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) out.pop_back();
  return out;
}

std::string json_string(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string json_or_null(const std::string& s) { return s.empty() ? "null" : json_string(s); }

// --- time -------------------------------------------------------------------------------------

// RFC 2822, as Twilio writes date_created: "Tue, 24 Nov 2026 10:00:00 +0000". Written by hand so
// the C++ locale cannot change the names.
std::string rfc2822(Clock::time_point t) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t secs = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday], tm.tm_mday,
                kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

// Twilio's RawDlrDoneDate: YYMMDDhhmm, UTC.
std::string dlr_done_date(Clock::time_point t) {
  std::time_t secs = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%y%m%d%H%M", &tm);
  return buf;
}

// A DateSent bound: YYYY-MM-DD (a whole UTC day) or an RFC 3339 date-time (one instant).
struct DateBound {
  Clock::time_point at;
  bool whole_day = false;
};

std::optional<DateBound> parse_date_bound(const std::string& text) {
  static const std::regex kDate(R"((\d{4})-(\d{2})-(\d{2}))");
  static const std::regex kDateTime(
      R"((\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):?(\d{2}))?)");
  std::smatch m;
  auto to_int = [&m](std::size_t i) { return std::stoi(m[i].str()); };
  std::tm tm{};
  DateBound bound;
  long long offset_seconds = 0;
  std::chrono::nanoseconds fraction{0};
  if (std::regex_match(text, m, kDate)) {
    tm.tm_year = to_int(1) - 1900;
    tm.tm_mon = to_int(2) - 1;
    tm.tm_mday = to_int(3);
    bound.whole_day = true;
  } else if (std::regex_match(text, m, kDateTime)) {
    tm.tm_year = to_int(1) - 1900;
    tm.tm_mon = to_int(2) - 1;
    tm.tm_mday = to_int(3);
    tm.tm_hour = to_int(4);
    tm.tm_min = to_int(5);
    tm.tm_sec = to_int(6);
    if (m[7].matched) {
      std::string digits = m[7].str().substr(1, 9);
      digits.resize(9, '0');
      fraction = std::chrono::nanoseconds(std::stoll(digits));
    }
    if (m[9].matched) {
      offset_seconds = (to_int(10) * 3600LL + to_int(11) * 60LL) * (m[9].str() == "-" ? -1 : 1);
    }
  } else {
    return std::nullopt;
  }
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31) return std::nullopt;
  std::time_t secs = timegm(&tm) - static_cast<std::time_t>(offset_seconds);
  bound.at = Clock::from_time_t(secs) + std::chrono::duration_cast<Clock::duration>(fraction);
  return bound;
}

// --- Twilio's shapes --------------------------------------------------------------------------

std::string error_message(int code) {
  switch (code) {
    case 20001: return "Invalid parameter";
    case 20003: return "Authenticate";
    case 20404: return "The requested resource was not found";
    case 20429: return "Too Many Requests";
    case 20500: return "An internal server error has occurred";
    case 20503: return "Service is unavailable. Please try again";
    case 21211: return "The 'To' number is not a valid phone number.";
    case 21602: return "Message body is required.";
    case 21603: return "A 'From' phone number is required.";
    case 21604: return "A 'To' phone number is required.";
    case 21608: return "The number is unverified. Trial accounts may only send messages to verified numbers.";
    case 21610: return "Attempt to send to unsubscribed recipient";
    case 21614: return "'To' number is not a valid mobile number";
    case 63016: return "Failed to send freeform message because you are outside the allowed window.";
    default: return "Error " + std::to_string(code);
  }
}

int default_code(int status) {
  switch (status) {
    case 401: return 20003;
    case 404: return 20404;
    case 429: return 20429;
    case 503: return 20503;
    default: return status >= 500 ? 20500 : 21211;
  }
}

std::string error_body(int status, int code) {
  return "{\"code\":" + std::to_string(code) + ",\"message\":" + json_string(error_message(code)) +
         ",\"more_info\":\"https://www.twilio.com/docs/errors/" + std::to_string(code) +
         "\",\"status\":" + std::to_string(status) + "}";
}

// GSM 03.38: the basic set costs one septet, the extension table two; anything else makes the
// whole message UCS-2.
const std::u32string& gsm_basic() {
  static const std::u32string set =
      U"@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
      U"abcdefghijklmnopqrstuvwxyzäöñüà";
  return set;
}
constexpr std::u32string_view kGsmExtension = U"\f^{}\\[~]|€";

std::u32string utf8_decode(const std::string& s) {
  std::u32string out;
  for (std::size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (extra < 0 || i + static_cast<std::size_t>(extra) >= s.size()) {
      out += U'\uFFFD';
      ++i;
      continue;
    }
    char32_t cp = extra == 0 ? c : c & (0x3F >> extra);
    for (int k = 1; k <= extra; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]) & 0x3F);
    out += cp;
    i += static_cast<std::size_t>(extra) + 1;
  }
  return out;
}

int num_segments(const std::string& body) {
  auto text = utf8_decode(body);
  std::size_t septets = 0;
  bool gsm = true;
  for (char32_t cp : text) {
    if (gsm_basic().find(cp) != std::u32string::npos) {
      septets += 1;
    } else if (kGsmExtension.find(cp) != std::u32string_view::npos) {
      septets += 2;
    } else {
      gsm = false;
      break;
    }
  }
  std::size_t units = septets, single = 160, multi = 153;
  if (!gsm) {
    units = 0;
    for (char32_t cp : text) units += cp > 0xFFFF ? 2 : 1;
    single = 70;
    multi = 67;
  }
  if (units <= single) return 1;
  return static_cast<int>((units + multi - 1) / multi);
}

std::string message_uri(const std::string& account_sid, const std::string& sid) {
  return std::string("/2010-04-01/Accounts/") + account_sid + "/Messages/" + sid + ".json";
}

std::string message_json(const FakeMessage& m) {
  auto date = json_string(rfc2822(m.created));
  auto uri = message_uri(m.account_sid, m.sid);
  bool has_media = field(m.form, "MediaUrl").has_value();
  std::string error_code = m.error_code.empty() ? "null" : m.error_code;
  return "{\"account_sid\":" + json_string(m.account_sid) + ",\"api_version\":\"" + kApiVersion +
         "\",\"body\":" + json_string(m.body) + ",\"date_created\":" + date + ",\"date_sent\":" + date +
         ",\"date_updated\":" + date + ",\"direction\":\"outbound-api\",\"error_code\":" + error_code +
         ",\"error_message\":null,\"from\":" + json_or_null(m.from) +
         ",\"messaging_service_sid\":" + json_or_null(m.messaging_service_sid) + ",\"num_media\":\"" +
         (has_media ? "1" : "0") + "\",\"num_segments\":\"" + std::to_string(num_segments(m.body)) +
         "\",\"price\":null,\"price_unit\":\"USD\",\"sid\":" + json_string(m.sid) +
         ",\"status\":" + json_string(m.status) + ",\"subresource_uris\":{\"media\":" +
         json_string(uri.substr(0, uri.size() - 5) + "/Media.json") + "},\"to\":" + json_string(m.to) +
         ",\"uri\":" + json_string(uri) + "}";
}

// --- outgoing requests ------------------------------------------------------------------------

struct Target {
  std::string origin;  // scheme://host[:port]
  std::string path;    // path and query, "/" when empty
};

Target split_url(const std::string& url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) throw std::invalid_argument("not an absolute URL: " + url);
  auto path_start = url.find_first_of("/?#", scheme_end + 3);
  if (path_start == std::string::npos) return {url, "/"};
  auto path = url.substr(path_start);
  if (auto hash = path.find('#'); hash != std::string::npos) path.resize(hash);
  if (path.empty() || path[0] != '/') path = "/" + path;
  return {url.substr(0, path_start), path};
}

std::unique_ptr<httplib::Client> client_for(const std::string& origin) {
  // Plain http by host and port: the scheme://host:port constructor matches a static regex that
  // ThreadSanitizer cannot see initialised (httplib is not instrumented) and reports as a race.
  std::unique_ptr<httplib::Client> client;
  static const std::regex kHttp(R"(http://([^:/]+|\[[^\]]+\])(?::(\d+))?)");
  std::smatch m;
  if (std::regex_match(origin, m, kHttp)) {
    auto host = m[1].str();
    if (host.front() == '[') host = host.substr(1, host.size() - 2);
    client = std::make_unique<httplib::Client>(host, m[2].matched ? std::stoi(m[2].str()) : 80);
  } else {
    client = std::make_unique<httplib::Client>(origin);  // https
  }
  client->set_url_encode(false);  // the path goes out exactly as given
  client->set_connection_timeout(5);
  client->set_read_timeout(30);
  client->set_write_timeout(30);
  return client;
}

int form_post(const std::string& url, const FormFields& form, const std::string& signature, bool with_signature) {
  auto target = split_url(url);
  auto client = client_for(target.origin);
  httplib::Headers headers{{"User-Agent", "TwilioProxy/1.1"}};
  if (with_signature) headers.emplace("X-Twilio-Signature", signature);
  static std::atomic<unsigned> counter{0};
  headers.emplace("I-Twilio-Idempotency-Token",
                  std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "-" +
                      std::to_string(counter++));
  auto result = client->Post(target.path, headers, form_encode(form), "application/x-www-form-urlencoded");
  return result ? result->status : 0;
}

// httplib 0.11 listens with a backlog of 5: a burst of new connections (a gateway sending in
// parallel) overflows it, and the kernel drops handshakes that then take a 1 s SYN retransmit.
// listen() again on the listening socket only raises the backlog.
class Server : public httplib::Server {
 public:
  void raise_backlog(int backlog) {
    if (::listen(svr_sock_, backlog) != 0) throw std::runtime_error("FakeTwilio: listen() failed");
  }
};

}  // namespace

// --- the server -------------------------------------------------------------------------------

struct FakeTwilio::Impl {
  std::string account_sid;
  std::string auth_token;
  std::string prism_url;

  Server server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
  int port = 0;

  mutable std::mutex mutex;
  std::condition_variable stopping_cv;
  bool stopping = false;
  std::deque<FakeResponse> pending;
  FakeResponse fallback;
  std::vector<FakeRequest> requests;
  std::vector<FakeMessage> messages;
  std::mt19937_64 random{std::random_device{}()};

  std::string random_hex(std::size_t digits) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::lock_guard lock(mutex);
    std::string out;
    for (std::size_t i = 0; i < digits; ++i) out += kHex[random() & 0xF];
    return out;
  }

  std::size_t record(const httplib::Request& req, std::chrono::steady_clock::time_point at) {
    FakeRequest r;
    r.at = at;
    r.method = req.method;
    r.path = req.path;
    auto q = req.target.find('?');
    if (q != std::string::npos) r.query = req.target.substr(q + 1);
    r.authorization = req.get_header_value("Authorization");
    if (req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0) {
      r.form = parse_form(req.body);
    }
    std::lock_guard lock(mutex);
    requests.push_back(std::move(r));
    return requests.size() - 1;
  }

  void relay_to_prism(const httplib::Request& req, std::size_t index) {
    if (prism_url.empty()) return;
    auto client = client_for(prism_url);
    httplib::Request out;
    out.method = req.method;
    out.path = req.target;  // path and query exactly as received
    for (const char* name : {"Authorization", "Content-Type"}) {
      if (req.has_header(name)) out.headers.emplace(name, req.get_header_value(name));
    }
    out.body = req.body;
    auto result = client->send(out);
    std::lock_guard lock(mutex);
    requests[index].prism_status = result ? result->status : -1;
    requests[index].prism_body = result ? result->body : httplib::to_string(result.error());
  }

  void answer(httplib::Response& res, std::size_t index, int status, const std::string& body,
              const std::map<std::string, std::string>& headers = {}) {
    res.status = status;
    for (const auto& [name, value] : headers) res.set_header(name, value);
    res.set_header("Twilio-Request-Id", "RQ" + random_hex(32));
    res.set_content(body, "application/json");
    std::lock_guard lock(mutex);
    requests[index].answered = status;
  }

  void answer_error(httplib::Response& res, std::size_t index, int status, int code) {
    std::map<std::string, std::string> headers;
    if (status == 401) headers["WWW-Authenticate"] = "Basic realm=\"Twilio API\"";
    answer(res, index, status, error_body(status, code), headers);
  }

  // Basic auth as the account sid with its auth token, or as any API key (SK...) with any secret.
  bool authorized(const httplib::Request& req) const {
    auto header = req.get_header_value("Authorization");
    if (header.rfind("Basic ", 0) != 0) return false;
    auto decoded = base64_decode(header.substr(6));
    if (!decoded) return false;
    auto colon = decoded->find(':');
    if (colon == std::string::npos) return false;
    auto user = decoded->substr(0, colon), password = decoded->substr(colon + 1);
    if (user.size() == 34 && user.rfind("SK", 0) == 0) return true;
    return user == account_sid && password == auth_token;
  }

  // Common to every Messages route: record, relay, authenticate. False when already answered.
  bool admit(const httplib::Request& req, httplib::Response& res, std::size_t index) {
    relay_to_prism(req, index);
    if (!authorized(req)) {
      answer_error(res, index, 401, 20003);
      return false;
    }
    if (req.matches[1].str() != account_sid) {
      answer_error(res, index, 404, 20404);
      return false;
    }
    return true;
  }

  void create(const httplib::Request& req, httplib::Response& res) {
    auto index = record(req, std::chrono::steady_clock::now());
    if (!admit(req, res, index)) return;
    FormFields form;
    {
      std::lock_guard lock(mutex);
      form = requests[index].form;
    }
    if (value_of(form, "To").empty()) return answer_error(res, index, 400, 21604);
    if (value_of(form, "From").empty() && value_of(form, "MessagingServiceSid").empty()) {
      return answer_error(res, index, 400, 21603);
    }
    if (value_of(form, "Body").empty() && value_of(form, "ContentSid").empty() && !field(form, "MediaUrl")) {
      return answer_error(res, index, 400, 21602);
    }

    FakeResponse scripted;
    {
      std::lock_guard lock(mutex);
      if (pending.empty()) {
        scripted = fallback;
      } else {
        scripted = std::move(pending.front());
        pending.pop_front();
      }
    }

    FakeMessage message;
    bool created = (scripted.status >= 200 && scripted.status < 300) || scripted.create;
    if (created) {
      message.sid = "SM" + random_hex(32);
      message.account_sid = account_sid;
      message.from = value_of(form, "From");
      message.to = value_of(form, "To");
      message.body = value_of(form, "Body");
      message.content_sid = value_of(form, "ContentSid");
      message.content_variables = value_of(form, "ContentVariables");
      message.status_callback = value_of(form, "StatusCallback");
      message.messaging_service_sid = value_of(form, "MessagingServiceSid");
      message.status = message.messaging_service_sid.empty() ? "queued" : "accepted";
      message.created = Clock::now();
      message.form = form;
      std::lock_guard lock(mutex);
      messages.push_back(message);
    }

    if (scripted.delay.count() > 0) {
      std::unique_lock lock(mutex);
      stopping_cv.wait_for(lock, scripted.delay, [this] { return stopping; });
    }

    std::string body = scripted.body;
    if (body.empty()) {
      if (scripted.status >= 200 && scripted.status < 300) {
        body = message_json(message);
      } else {
        int code = scripted.twilio_code != 0 ? scripted.twilio_code : default_code(scripted.status);
        body = error_body(scripted.status, code);
      }
    }
    answer(res, index, scripted.status, body, scripted.headers);
  }

  void list(const httplib::Request& req, httplib::Response& res) {
    auto index = record(req, std::chrono::steady_clock::now());
    if (!admit(req, res, index)) return;
    auto query_text = req.target.find('?') == std::string::npos ? "" : req.target.substr(req.target.find('?') + 1);
    auto query = parse_form(query_text);

    struct Filter {
      std::string name;
      DateBound bound;
    };
    std::vector<Filter> dates;
    std::size_t page_size = 50, page = 0;
    for (const auto& [name, value] : query) {
      if (name == "DateSent" || name == "DateSent>" || name == "DateSent<" || name == "DateSent>=" ||
          name == "DateSent<=") {
        auto bound = parse_date_bound(value);
        if (!bound) return answer_error(res, index, 400, 20001);
        dates.push_back({name.substr(0, 9), *bound});
      } else if (name == "PageSize" || name == "Page") {
        char* end = nullptr;
        auto n = std::strtoul(value.c_str(), &end, 10);
        if (value.empty() || *end != '\0' || (name == "PageSize" && (n < 1 || n > 1000))) {
          return answer_error(res, index, 400, 20001);
        }
        (name == "PageSize" ? page_size : page) = n;
      }
    }
    auto to = field(query, "To");
    auto from = field(query, "From");

    std::vector<FakeMessage> found;
    {
      std::lock_guard lock(mutex);
      for (const auto& m : messages) {
        if (to && m.to != *to) continue;
        if (from && m.from != *from) continue;
        bool keep = true;
        for (const auto& [name, bound] : dates) {
          auto day_end = bound.at + std::chrono::hours(24);
          if (name == "DateSent>") {
            keep = keep && m.created >= bound.at;
          } else if (name == "DateSent<") {
            keep = keep && (bound.whole_day ? m.created < day_end : m.created <= bound.at);
          } else {  // DateSent: the UTC day of the bound
            auto secs = Clock::to_time_t(bound.at);
            auto day_start = Clock::from_time_t(secs - secs % 86400);
            keep = keep && m.created >= day_start && m.created < day_start + std::chrono::hours(24);
          }
        }
        if (keep) found.push_back(m);
      }
    }
    // Newest first; messages created in the same instant keep the newest-created first too.
    std::reverse(found.begin(), found.end());
    std::stable_sort(found.begin(), found.end(),
                     [](const FakeMessage& a, const FakeMessage& b) { return a.created > b.created; });

    std::string base = "/2010-04-01/Accounts/" + account_sid + "/Messages.json";
    FormFields kept;
    for (const auto& [name, value] : query) {
      if (name != "Page" && name != "PageSize" && name != "PageToken") kept.emplace_back(name, value);
    }
    auto page_uri = [&](std::size_t n) {
      auto fields = kept;
      fields.emplace_back("PageSize", std::to_string(page_size));
      fields.emplace_back("Page", std::to_string(n));
      return base + "?" + form_encode(fields);
    };
    std::size_t start = std::min(page * page_size, found.size());
    std::size_t end = std::min(start + page_size, found.size());
    std::string items;
    for (std::size_t i = start; i < end; ++i) {
      if (!items.empty()) items += ',';
      items += message_json(found[i]);
    }
    std::string body = "{\"end\":" + std::to_string(end == start ? start : end - 1) +
                       ",\"first_page_uri\":" + json_string(page_uri(0)) + ",\"messages\":[" + items +
                       "],\"next_page_uri\":" + (end < found.size() ? json_string(page_uri(page + 1)) : "null") +
                       ",\"page\":" + std::to_string(page) + ",\"page_size\":" + std::to_string(page_size) +
                       ",\"previous_page_uri\":" + (page > 0 ? json_string(page_uri(page - 1)) : "null") +
                       ",\"start\":" + std::to_string(start) + ",\"uri\":" + json_string(page_uri(page)) + "}";
    answer(res, index, 200, body);
  }

  void fetch(const httplib::Request& req, httplib::Response& res) {
    auto index = record(req, std::chrono::steady_clock::now());
    if (!admit(req, res, index)) return;
    auto sid = req.matches[2].str();
    std::optional<FakeMessage> found;
    {
      std::lock_guard lock(mutex);
      for (const auto& m : messages) {
        if (m.sid == sid) found = m;
      }
    }
    if (!found) return answer_error(res, index, 404, 20404);
    answer(res, index, 200, message_json(*found));
  }

  void unknown(const httplib::Request& req, httplib::Response& res) {
    auto index = record(req, std::chrono::steady_clock::now());
    answer_error(res, index, 404, 20404);
  }
};

FakeTwilio::FakeTwilio(std::string account_sid, std::string auth_token, std::string prism_url)
    : impl_(std::make_unique<Impl>()) {
  auto& impl = *impl_;
  impl.account_sid = std::move(account_sid);
  impl.auth_token = std::move(auth_token);
  impl.prism_url = std::move(prism_url);
  while (!impl.prism_url.empty() && impl.prism_url.back() == '/') impl.prism_url.pop_back();

  auto& server = impl.server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };
  // Real connections stay open longer, but an idle keep-alive connection holds its worker (and
  // the destructor) until it times out.
  server.set_keep_alive_timeout(2);
  server.set_keep_alive_max_count(1000);
  const std::string messages = R"(/2010-04-01/Accounts/([^/]+)/Messages)";
  Impl* self = impl_.get();
  server.Post(messages + R"(\.json)",
              [self](const httplib::Request& req, httplib::Response& res) { self->create(req, res); });
  server.Get(messages + R"(\.json)",
             [self](const httplib::Request& req, httplib::Response& res) { self->list(req, res); });
  server.Get(messages + R"(/([^/]+)\.json)",
             [self](const httplib::Request& req, httplib::Response& res) { self->fetch(req, res); });
  auto unknown = [self](const httplib::Request& req, httplib::Response& res) { self->unknown(req, res); };
  server.Get(".*", unknown);
  server.Post(".*", unknown);
  server.Put(".*", unknown);
  server.Delete(".*", unknown);

  impl.port = server.bind_to_any_port("127.0.0.1");
  if (impl.port <= 0) throw std::runtime_error("FakeTwilio: cannot bind a port on 127.0.0.1");
  server.raise_backlog(SOMAXCONN);
  impl.thread = std::thread([self] {
    self->server.listen_after_bind();
    self->listen_returned = true;
  });
  // Connections made before the accept loop runs would only wait in the backlog, but stop() is
  // a no-op until it runs, so the destructor needs it running.
  while (!server.is_running() && !impl.listen_returned) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

FakeTwilio::~FakeTwilio() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;  // cuts scripted delays short
  }
  impl_->stopping_cv.notify_all();
  impl_->server.stop();
  impl_->thread.join();
}

std::string FakeTwilio::base_url() const { return "http://127.0.0.1:" + std::to_string(impl_->port); }
int FakeTwilio::port() const { return impl_->port; }
const std::string& FakeTwilio::account_sid() const { return impl_->account_sid; }
const std::string& FakeTwilio::auth_token() const { return impl_->auth_token; }

void FakeTwilio::script(std::vector<FakeResponse> answers) {
  std::lock_guard lock(impl_->mutex);
  impl_->pending.assign(std::make_move_iterator(answers.begin()), std::make_move_iterator(answers.end()));
}

void FakeTwilio::set_default(FakeResponse answer) {
  std::lock_guard lock(impl_->mutex);
  impl_->fallback = std::move(answer);
}

std::vector<FakeRequest> FakeTwilio::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->requests;
}

std::vector<FakeMessage> FakeTwilio::messages() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->messages;
}

std::string FakeTwilio::sign(const std::string& url, const FormFields& params, const std::string& auth_token) {
  auto sorted = params;
  std::sort(sorted.begin(), sorted.end());  // by name, then value, byte order
  std::string data = url;
  for (const auto& [name, value] : sorted) data += name + value;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (HMAC(EVP_sha1(), auth_token.data(), static_cast<int>(auth_token.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &size) == nullptr) {
    throw std::runtime_error("FakeTwilio::sign: HMAC-SHA1 failed");
  }
  return base64(digest, size);
}

int FakeTwilio::post_status(const std::string& callback_url, const std::string& sid, const std::string& status,
                            const std::string& error_code, const FormFields& extra) const {
  std::optional<FakeMessage> message;
  {
    std::lock_guard lock(impl_->mutex);
    for (auto& m : impl_->messages) {
      if (m.sid == sid) {
        m.status = status;
        m.error_code = error_code;
        message = m;
      }
    }
  }
  FormFields form{{"MessageSid", sid},
                  {"SmsSid", sid},
                  {"MessageStatus", status},
                  {"SmsStatus", status},
                  {"AccountSid", impl_->account_sid},
                  {"From", message ? message->from : ""},
                  {"To", message ? message->to : ""},
                  {"ApiVersion", kApiVersion}};
  if (!error_code.empty()) form.emplace_back("ErrorCode", error_code);
  if (message && !message->messaging_service_sid.empty()) {
    form.emplace_back("MessagingServiceSid", message->messaging_service_sid);
  }
  if (message && message->to.rfind("whatsapp:", 0) == 0) {
    form.emplace_back("ChannelPrefix", "whatsapp");
    form.emplace_back("ChannelToAddress", message->to.substr(9));
  } else if (status == "delivered" || status == "undelivered") {
    form.emplace_back("RawDlrDoneDate", dlr_done_date(Clock::now()));
  }
  for (const auto& [name, value] : extra) set_field(form, name, value);
  return form_post(callback_url, form, sign(callback_url, form, impl_->auth_token), true);
}

int FakeTwilio::post_inbound(const std::string& url, const std::string& from, const std::string& to,
                             const std::string& body) const {
  auto sid = "SM" + impl_->random_hex(32);
  FormFields form{{"SmsMessageSid", sid},
                  {"NumMedia", "0"},
                  {"SmsSid", sid},
                  {"SmsStatus", "received"},
                  {"Body", body},
                  {"To", to},
                  {"NumSegments", std::to_string(num_segments(body))},
                  {"MessageSid", sid},
                  {"AccountSid", impl_->account_sid},
                  {"From", from},
                  {"ApiVersion", kApiVersion}};
  return form_post(url, form, sign(url, form, impl_->auth_token), true);
}

int FakeTwilio::post_forged(const std::string& url, const FormFields& form, bool with_header) const {
  return form_post(url, form, sign(url, form, "forged-" + impl_->auth_token), with_header);
}

}  // namespace relance::testing
