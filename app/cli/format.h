// Human-readable numbers for terminal output.
#pragma once
#include <cstdint>
#include <string>

#include "engine/core/memory_usage.h"  // human_bytes

namespace mcw::cli {

std::string human_count(uint64_t n);       // "6.74 B", "1.02 M", "512"
std::string short_float(double v);         // "%.4g", "nan" for NaN
std::string human_duration(double s);      // "4m05s", "1h02m"
// "8G", "8GiB", "512M", "1.5g", "4096" (bytes; K/M/G/T are powers of 1024); throws
// UsageError naming `option` for anything else.
uint64_t parse_bytes(const std::string& text, const std::string& option);

}  // namespace mcw::cli
