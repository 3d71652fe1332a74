// Typed errors thrown by ops; the bindings translate each to the Python exception of the
// same name, so a bad argument is a Python exception, never a crash.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace lamina {

struct ValueError : std::runtime_error { using std::runtime_error::runtime_error; };
struct TypeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct IndexError : std::runtime_error { using std::runtime_error::runtime_error; };
struct RuntimeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct MemoryError : std::runtime_error { using std::runtime_error::runtime_error; };

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// check<ValueError>(cond, "matmul: ", ...) builds the message only on failure.
template <class Error, class... Args>
inline void check(bool cond, const Args&... args) {
  if (!cond) throw Error(detail::concat(args...));
}

}  // namespace lamina
