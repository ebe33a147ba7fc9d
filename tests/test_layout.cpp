// The architecture as the include graph: data flows one way, and each layer includes only the layers
// below it. formats/ (file formats) is the bottom; engines/model/ builds on it; engines/ on the model;
// metrics/ on formats only; harness/ on everything.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

#include <fmt/format.h>

#include "tests/test_support.h"

namespace varbench {
namespace {

// The layer of a repository path ("engines/model/x.h" -> "engines/model"), or "" for other folders.
std::string layer_of(const std::string& path) {
  for (const char* layer : {"engines/model", "engines", "formats", "metrics", "harness"})
    if (path.rfind(std::string(layer) + "/", 0) == 0) return layer;
  return "";
}

TEST(Layout, EachLayerIncludesOnlyTheLayersBelowIt) {
  const std::map<std::string, std::set<std::string>> allowed{
      {"formats", {"formats"}},
      {"engines/model", {"engines/model", "formats"}},
      {"engines", {"engines", "engines/model", "formats"}},
      {"metrics", {"metrics", "formats"}},
      {"harness", {"harness", "engines", "engines/model", "metrics", "formats"}},
  };
  const std::filesystem::path root = testing::source_path("");
  const std::regex include_line(R"re(^\s*#\s*include\s+"([^"]+)")re");
  std::vector<std::string> violations;
  int files = 0;
  for (const char* top : {"formats", "engines", "metrics", "harness"}) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root / top)) {
      const auto ext = entry.path().extension();
      if (ext != ".h" && ext != ".cpp") continue;
      const auto rel = std::filesystem::relative(entry.path(), root).generic_string();
      const auto from = layer_of(rel);
      ++files;
      std::ifstream in(entry.path());
      std::string line;
      for (int n = 1; std::getline(in, line); ++n) {
        std::smatch m;
        if (!std::regex_search(line, m, include_line)) continue;
        const auto to = layer_of(m[1].str());
        if (!to.empty() && !allowed.at(from).count(to)) violations.push_back(fmt::format("{}:{} includes {}", rel, n, m[1].str()));
      }
    }
  }
  EXPECT_GT(files, 50);
  EXPECT_TRUE(violations.empty()) << fmt::format("{}", fmt::join(violations, "\n"));
}

}  // namespace
}  // namespace varbench
