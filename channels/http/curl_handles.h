#pragma once

#include <curl/curl.h>

#include <memory>
#include <new>
#include <string>

namespace relance::channels::http {

// Owning handles for libcurl's C objects.
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct MimeDeleter {
  void operator()(curl_mime* mime) const { curl_mime_free(mime); }
};
struct EasyDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;
using Mime = std::unique_ptr<curl_mime, MimeDeleter>;
using Easy = std::unique_ptr<CURL, EasyDeleter>;

inline void append(Slist& list, const std::string& line) {
  curl_slist* grown = curl_slist_append(list.get(), line.c_str());
  if (grown == nullptr) throw std::bad_alloc();
  // On success curl_slist_append returns the same head (or the new one for an empty list).
  static_cast<void>(list.release());
  list.reset(grown);
}

}  // namespace relance::channels::http
