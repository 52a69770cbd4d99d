#ifndef VERS_SWARM_CCURL_SHIM_H
#define VERS_SWARM_CCURL_SHIM_H
#include <curl/curl.h>

/// The libcurl version string ("libcurl/7.88.1 OpenSSL/3.0 ...").
static inline const char *vs_curl_version(void) { return curl_version(); }

#endif
