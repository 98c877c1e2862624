// Project files: round trip, relative paths that survive moving the project directory,
// one precise error per kind of broken file, and atomic save.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/core/error.h"
#include "engine/project/project.h"

using namespace mcw;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(testing::TempDir()) / ("mcw_project_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Project sample(const fs::path& dir) {
  Project p;
  p.name = "demo";
  p.model_path = (dir / "models" / "tiny.bin").string();
  p.calibration_path = (dir / "data" / "calib.txt").string();
  p.evaluation_path = (dir / "data" / "eval.txt").string();
  p.recipes = {{"w4", (dir / "recipes" / "w4.yaml").string(), ""},
               {"quick", "", "stages: []\n"}};
  p.eval = {64, 32, 1000};
  p.database_path = (dir / "runs.mcwdb").string();
  p.cluster = {"gpu", "2:00:00", "32G", 1, 4};
  return p;
}

// The error message load_project gives for a project file with this text.
std::string load_error(const fs::path& file, const std::string& text, int64_t* offset = nullptr) {
  write_file(file, text);
  try {
    load_project(file.string());
  } catch (const Error& e) {
    if (offset) *offset = e.offset();
    EXPECT_EQ(e.file(), file.string());
    return e.message();
  }
  ADD_FAILURE() << "no error for: " << text;
  return {};
}

}  // namespace

TEST(Project, RoundTripKeepsEveryField) {
  const fs::path dir = fresh_dir("roundtrip");
  const Project p = sample(dir);
  const std::string file = (dir / "demo.mcwproj").string();
  save_project(p, file);
  const Project q = load_project(file);
  EXPECT_EQ(q.name, p.name);
  EXPECT_EQ(q.model_path, p.model_path);
  EXPECT_EQ(q.calibration_path, p.calibration_path);
  EXPECT_EQ(q.evaluation_path, p.evaluation_path);
  ASSERT_EQ(q.recipes.size(), 2u);
  EXPECT_EQ(q.recipes[0].name, "w4");
  EXPECT_EQ(q.recipes[0].path, p.recipes[0].path);
  EXPECT_TRUE(q.recipes[1].is_inline());
  EXPECT_EQ(q.recipes[1].inline_text, "stages: []\n");
  EXPECT_EQ(q.eval.window, 64);
  EXPECT_EQ(q.eval.stride, 32);
  EXPECT_EQ(q.eval.max_tokens, 1000);
  EXPECT_EQ(q.database_path, p.database_path);
  EXPECT_EQ(q.cluster.partition, "gpu");
  EXPECT_EQ(q.cluster.time, "2:00:00");
  EXPECT_EQ(q.cluster.mem, "32G");
  EXPECT_EQ(q.cluster.gpus, 1);
  EXPECT_EQ(q.cluster.max_concurrent, 4);
}

TEST(Project, PathsAreStoredRelativeToTheProjectFile) {
  const fs::path dir = fresh_dir("relative");
  save_project(sample(dir), (dir / "demo.mcwproj").string());
  const std::string text = read_file(dir / "demo.mcwproj");
  EXPECT_NE(text.find("\"models/tiny.bin\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"runs.mcwdb\""), std::string::npos) << text;
  EXPECT_EQ(text.find(dir.string()), std::string::npos) << "absolute path leaked: " << text;

  // A model one level up is written with "..".
  Project p = sample(dir);
  p.model_path = (dir.parent_path() / "shared.bin").string();
  fs::create_directories(dir / "sub");
  save_project(p, (dir / "sub" / "x.mcwproj").string());
  EXPECT_NE(read_file(dir / "sub" / "x.mcwproj").find("\"../../shared.bin\""), std::string::npos);
  EXPECT_EQ(load_project((dir / "sub" / "x.mcwproj").string()).model_path, p.model_path);
}

TEST(Project, MovingTheDirectoryWithItsFilesResolvesAgainstTheNewPlace) {
  const fs::path root = fresh_dir("move");
  const fs::path a = root / "a", b = root / "b";
  fs::create_directories(a);
  Project p = sample(a);
  write_file(p.model_path, "model");
  write_file(p.evaluation_path, "text");
  save_project(p, (a / "demo.mcwproj").string());
  fs::rename(a, b);
  const Project q = load_project((b / "demo.mcwproj").string());
  EXPECT_EQ(q.model_path, (b / "models" / "tiny.bin").string());
  EXPECT_EQ(q.evaluation_path, (b / "data" / "eval.txt").string());
  EXPECT_EQ(q.database_path, (b / "runs.mcwdb").string());
  EXPECT_EQ(read_file(q.model_path), "model");
}

TEST(Project, MinimalFileGetsDefaults) {
  const fs::path dir = fresh_dir("minimal");
  const fs::path file = dir / "m.mcwproj";
  write_file(file, R"({"format_version": 1, "name": "my/proj", "model": ""})");
  const Project p = load_project(file.string());
  EXPECT_EQ(p.model_path, "");
  EXPECT_EQ(p.eval.window, 256);
  EXPECT_EQ(p.eval.stride, 256);
  EXPECT_EQ(p.eval.max_tokens, 0);
  EXPECT_TRUE(p.recipes.empty());
  EXPECT_EQ(p.database_path, (dir / "my_proj.mcwdb").string());  // '/' cannot be in a name
  EXPECT_TRUE(p.cluster.partition.empty());
  EXPECT_EQ(p.cluster.max_concurrent, 0);
  save_project(p, file.string());  // nothing set: no "cluster" key written
  EXPECT_EQ(read_file(file).find("cluster"), std::string::npos);
}

TEST(Project, MissingFile) {
  const fs::path file = fresh_dir("missing") / "nope.mcwproj";
  try {
    load_project(file.string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), file.string() + ": no such file or directory");
  }
}

TEST(Project, BrokenJsonNamesTheByteOffset) {
  const fs::path file = fresh_dir("broken") / "b.mcwproj";
  int64_t offset = -1;
  //                     0123456789012345678
  std::string m = load_error(file, R"({"format_version": x})", &offset);
  EXPECT_EQ(offset, 19);  // the 'x'
  EXPECT_EQ(m.rfind("invalid JSON: ", 0), 0u) << m;
  EXPECT_EQ(m.find("json.exception"), std::string::npos) << m;
  m = load_error(file, "{\"name\": \"a\"", &offset);
  EXPECT_EQ(offset, 12);  // end of input
  EXPECT_EQ(m.find('\n'), std::string::npos);
}

TEST(Project, TopLevelMustBeAnObject) {
  const fs::path file = fresh_dir("notobj") / "n.mcwproj";
  EXPECT_EQ(load_error(file, "[1, 2]"), "expected a JSON object at the top level, got array");
}

TEST(Project, MissingAndWrongTypedKeysAreNamed) {
  const fs::path file = fresh_dir("keys") / "k.mcwproj";
  EXPECT_EQ(load_error(file, R"({"name": "a", "model": ""})"), "missing key \"format_version\"");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "model": ""})"), "missing key \"name\"");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "name": "a"})"), "missing key \"model\"");
  EXPECT_EQ(load_error(file, R"({"format_version": "1", "name": "a", "model": ""})"),
            "key \"format_version\": expected an integer, got string");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "name": 5, "model": ""})"),
            "key \"name\": expected a string, got number");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "name": "a", "model": "",
                                 "datasets": {"evaluation": 3}})"),
            "key \"datasets.evaluation\": expected a string, got number");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "name": "a", "model": "",
                                 "evaluation": {"window": 1.5}})"),
            "key \"evaluation.window\": expected an integer, got number");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "name": "a", "model": "",
                                 "evaluation": {"window": 8, "stride": 9}})"),
            "key \"evaluation.stride\": must be between 1 and the window (8), got 9");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "name": "a", "model": "",
                                 "recipes": {}})"),
            "key \"recipes\": expected an array, got object");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "name": "a", "model": "",
                                 "recipes": [{"name": "r"}]})"),
            "key \"recipes[0]\": needs exactly one of \"path\" or \"inline\"");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "name": "a", "model": "",
                                 "recipes": [{"path": "r.yaml"}]})"),
            "missing key \"recipes[0].name\"");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "name": "a", "model": "",
                                 "cluster": {"gpus": -1}})"),
            "key \"cluster.gpus\": must be 0 to 1024");
  EXPECT_EQ(load_error(file, R"({"format_version": 1, "name": "a", "model": "",
                                 "cluster": {"partition": 3}})"),
            "key \"cluster.partition\": expected a string, got number");
}

TEST(Project, NewerFormatIsRefusedWithBothVersions) {
  const fs::path file = fresh_dir("newer") / "n.mcwproj";
  EXPECT_EQ(load_error(file, R"({"format_version": 3, "name": "a", "model": ""})"),
            "written by a newer MCW (format 3); this MCW reads up to 1");
}

TEST(Project, MissingModelStillLoadsAndIsReportedByCheck) {
  const fs::path dir = fresh_dir("check");
  Project p = sample(dir);
  write_file(p.evaluation_path, "hello");
  save_project(p, (dir / "c.mcwproj").string());
  const Project q = load_project((dir / "c.mcwproj").string());
  const auto problems = check_project(q);
  std::vector<std::string> fields;
  for (const auto& pr : problems) fields.push_back(pr.field);
  // model, calibration and the w4 recipe are missing; evaluation exists; quick is inline.
  EXPECT_EQ(fields, (std::vector<std::string>{"model", "calibration", "recipes[0]"}));
  EXPECT_EQ(problems[0].message, q.model_path + ": no such file or directory");

  write_file(q.model_path, "m");
  write_file(q.calibration_path, "c");
  write_file(q.recipes[0].path, "r");
  EXPECT_TRUE(check_project(q).empty());
  Project none = q;
  none.model_path.clear();
  ASSERT_EQ(check_project(none).size(), 1u);
  EXPECT_EQ(check_project(none)[0].message, "no model chosen");
}

TEST(Project, SaveIntoMissingDirectoryFailsCleanly) {
  const fs::path dir = fresh_dir("nodir");
  const fs::path file = dir / "absent" / "p.mcwproj";
  EXPECT_THROW(save_project(sample(dir), file.string()), Error);
  EXPECT_FALSE(fs::exists(dir / "absent"));
}

// A real write failure (the file-size limit makes the flush fail with EFBIG, which works
// even as root) must leave the previous project file exactly as it was, and no temporary.
TEST(Project, FailedSaveLeavesTheOldFileIntact) {
  const fs::path dir = fresh_dir("atomic");
  const std::string file = (dir / "p.mcwproj").string();
  Project p = sample(dir);
  save_project(p, file);
  const std::string before = read_file(file);

  p.name = std::string(4000, 'x');  // bigger than the limit below
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct rlimit small = old_limit;
  small.rlim_cur = 1024;
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  bool threw = false;
  try {
    save_project(p, file);
  } catch (const Error&) {
    threw = true;
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(threw);
  EXPECT_EQ(read_file(file), before);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.is_regular_file();
  EXPECT_EQ(entries, 1) << "a temporary file was left behind";
}

TEST(Project, ReadOnlyDirectoryKeepsTheOldFile) {
  if (geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  const fs::path dir = fresh_dir("readonly");
  const std::string file = (dir / "p.mcwproj").string();
  save_project(sample(dir), file);
  const std::string before = read_file(file);
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
  Project p = sample(dir);
  p.name = "changed";
  EXPECT_THROW(save_project(p, file), Error);
  fs::permissions(dir, fs::perms::owner_all);
  EXPECT_EQ(read_file(file), before);
}
