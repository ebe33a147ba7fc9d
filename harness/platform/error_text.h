#pragma once
// What an error says to a user: libtorch's c10::Error carries a C++ backtrace in what(); users get the
// message without it.
#include <exception>
#include <string>

namespace varbench {

std::string error_message(const std::exception& e);  // every line of the message, no backtrace
std::string one_line(const std::exception& e);       // its first line (for run records and tables)

}  // namespace varbench
