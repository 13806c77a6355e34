#ifndef PAYBRIDGE_CCURL_H
#define PAYBRIDGE_CCURL_H

// libcurl for Swift. curl_easy_setopt, curl_multi_setopt, curl_share_setopt and
// curl_easy_getinfo are variadic, which Swift cannot call: these static inline
// wrappers fix one argument type each, and the Clang importer compiles them into
// the Swift module that uses them (no separate C target needed).

#include <curl/curl.h>

static inline CURLcode pb_easy_setopt_long(CURL *easy, CURLoption option, long value) {
    return curl_easy_setopt(easy, option, value);
}

static inline CURLcode pb_easy_setopt_off(CURL *easy, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(easy, option, value);
}

/// Strings are copied by libcurl (except CURLOPT_POSTFIELDS, which this project never uses).
static inline CURLcode pb_easy_setopt_str(CURL *easy, CURLoption option, const char *value) {
    return curl_easy_setopt(easy, option, value);
}

static inline CURLcode pb_easy_setopt_ptr(CURL *easy, CURLoption option, void *value) {
    return curl_easy_setopt(easy, option, value);
}

static inline CURLcode pb_easy_setopt_slist(CURL *easy, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(easy, option, value);
}

static inline CURLcode pb_easy_setopt_share(CURL *easy, CURLSH *share) {
    return curl_easy_setopt(easy, CURLOPT_SHARE, share);
}

static inline CURLcode pb_easy_setopt_write_function(CURL *easy, curl_write_callback callback) {
    return curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, callback);
}

static inline CURLcode pb_easy_getinfo_long(CURL *easy, CURLINFO info, long *value) {
    return curl_easy_getinfo(easy, info, value);
}

static inline CURLcode pb_easy_getinfo_socket(CURL *easy, CURLINFO info, curl_socket_t *value) {
    return curl_easy_getinfo(easy, info, value);
}

static inline CURLcode pb_easy_getinfo_off(CURL *easy, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(easy, info, value);
}

static inline CURLMcode pb_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

static inline CURLMcode pb_multi_setopt_ptr(CURLM *multi, CURLMoption option, void *value) {
    return curl_multi_setopt(multi, option, value);
}

static inline CURLMcode pb_multi_setopt_socket_function(CURLM *multi, curl_socket_callback callback) {
    return curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, callback);
}

static inline CURLMcode pb_multi_setopt_timer_function(CURLM *multi, curl_multi_timer_callback callback) {
    return curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, callback);
}

static inline CURLSHcode pb_share_setopt_long(CURLSH *share, CURLSHoption option, long value) {
    return curl_share_setopt(share, option, value);
}

/// The result of a CURLMSG_DONE message (a member of an anonymous union in C).
static inline CURLcode pb_msg_result(const CURLMsg *message) {
    return message->data.result;
}

static inline int pb_msg_is_done(const CURLMsg *message) {
    return message->msg == CURLMSG_DONE;
}

enum {
    PB_CURL_ERROR_SIZE = CURL_ERROR_SIZE,
    PB_CURL_SOCKET_TIMEOUT = CURL_SOCKET_TIMEOUT,
    PB_CURL_GLOBAL_DEFAULT = CURL_GLOBAL_DEFAULT,
    PB_CURL_POLL_IN = CURL_POLL_IN,
    PB_CURL_POLL_OUT = CURL_POLL_OUT,
    PB_CURL_POLL_INOUT = CURL_POLL_INOUT,
    PB_CURL_POLL_REMOVE = CURL_POLL_REMOVE,
    PB_CURL_CSELECT_IN = CURL_CSELECT_IN,
    PB_CURL_CSELECT_OUT = CURL_CSELECT_OUT,
    PB_CURL_CSELECT_ERR = CURL_CSELECT_ERR,
};

#endif
