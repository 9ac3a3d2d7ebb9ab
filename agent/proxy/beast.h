#pragma once

// Beast for the proxy. With sanitizers on, GCC 12 reports a false
// -Wmaybe-uninitialized inside Boost.Optional as Beast's parser inlines it;
// the warning is about Boost's code, so it is silenced for these headers only.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
