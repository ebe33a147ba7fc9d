#include "harness/platform/error_text.h"

#include <c10/util/Exception.h>

namespace varbench {

std::string error_message(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

std::string one_line(const std::exception& e) {
  const std::string what = error_message(e);
  const auto nl = what.find('\n');
  return nl == std::string::npos ? what : what.substr(0, nl);
}

}  // namespace varbench
