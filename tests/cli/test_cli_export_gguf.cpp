// mcw export --format gguf from the command line: the per-tensor report, the importance
// matrix from --calib, and the usage errors.
#include <gtest/gtest.h>

#include "engine/io/gguf.h"
#include "tests/cli/cli_test_util.h"

namespace fs = std::filesystem;
using namespace mcw;
using namespace mcw::test;

TEST(CliExportGguf, WritesTheTypeAndReportsEachTensor) {
  const fs::path dir = fresh_dir("export-gguf");
  write_tiny_model_and_text(dir);
  const std::string out = (dir / "m.gguf").string();
  const Result r =
      run_mcw("export " + (dir / "model").string() + " --format gguf --type Q8_0 --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Q8_0    blk.0.attn_q.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("wrote   " + out + ": Q8_0,"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("act-weighted"), std::string::npos) << r.out;
  EXPECT_EQ(read_gguf(out).get_u64("general.file_type"), 7u);

  // --calib: each weight with an importance entry also reports its activation-weighted error.
  const std::string weighted = (dir / "w.gguf").string();
  const Result w =
      run_mcw("export " + (dir / "model").string() + " --format gguf --type Q4_0 --out " +
              weighted + " --calib " + (dir / "eval.txt").string() + " --windows 2 --window 16");
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_NE(w.out.find("blk.1.ffn_down.weight            rel.err "), std::string::npos) << w.out;
  EXPECT_NE(w.out.find("act-weighted"), std::string::npos) << w.out;

  // --method gptq: each re-quantised weight prints its output error beside the --imatrix one.
  const std::string gptq = (dir / "g.gguf").string();
  const Result g =
      run_mcw("export " + (dir / "model").string() + " --format gguf --type Q4_0 --out " + gptq +
              " --calib " + (dir / "eval.txt").string() + " --method gptq --windows 2 --window 16");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.out.find("blk.1.ffn_down.weight            rel.err "), std::string::npos) << g.out;
  EXPECT_NE(g.out.find(" (imatrix "), std::string::npos) << g.out;
  EXPECT_EQ(read_gguf(gptq).get_u64("general.file_type"), 2u);
}

// --format hf: the GGUF just written goes back to a Hugging Face directory MCW evaluates.
TEST(CliExportGguf, GgufBackToHuggingFace) {
  const fs::path dir = fresh_dir("export-hf");
  write_tiny_model_and_text(dir);
  const std::string gguf = (dir / "m.gguf").string(), hf = (dir / "hf").string();
  ASSERT_EQ(
      run_mcw("export " + (dir / "model").string() + " --format gguf --type Q8_0 --out " + gguf)
          .code,
      0);
  const Result r = run_mcw("export " + gguf + " --format hf --dtype bf16 --out " + hf);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote   " + hf + ": BF16, 3 shards"), std::string::npos) << r.out;
  const Result e =
      run_mcw("eval " + hf + " --text " + (dir / "eval.txt").string() + " --window 16");
  EXPECT_EQ(e.code, 0) << e.err;
}

// A disk that fills up during an export (the file-size limit below the new file's size):
// an error naming the file and the system's reason, the file already under that name
// as it was, and no temporary left beside it.
TEST(CliExportGguf, AFullDiskKeepsThePreviousFile) {
  const fs::path dir = fresh_dir("export-full");
  write_tiny_model_and_text(dir);
  const std::string model = (dir / "model").string(), out = (dir / "m.gguf").string();
  ASSERT_EQ(run_mcw("export " + model + " --format gguf --type Q8_0 --out " + out).code, 0);
  const std::string before = slurp(out);
  const Result r = run_mcw("export " + model + " --format gguf --type F32 --out " + out,
                           before.size());  // F32 is bigger than Q8_0
  EXPECT_EQ(r.code, 1);                     // stderr: the progress bar's line, then the error's
  EXPECT_NE(r.err.find("mcw: " + out + ": write failed: File too large\n"), std::string::npos)
      << r.err;
  EXPECT_TRUE(slurp(out) == before);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"eval.txt", "m.gguf", "model"}));
}

// The GPTQ pass keeps a checkpoint after every block: killed (SIGKILL, as the OOM killer or
// a power cut would) after the first, nothing is under the final name, a plain rerun
// refuses to throw the stopped export away, and --resume writes the file an uninterrupted
// export writes, byte for byte, with the same per-tensor report.
TEST(CliExportGguf, AKilledGptqExportGoesOnWithResume) {
  const fs::path dir = fresh_dir("export-resume");
  write_tiny_model_and_text(dir);
  const std::string model = (dir / "model").string(), whole = (dir / "whole.gguf").string(),
                    out = (dir / "m.gguf").string(), calib = (dir / "eval.txt").string();
  auto args = [&](const std::string& to, const std::string& type) {
    return "export " + model + " --format gguf --type " + type + " --out " + to + " --calib " +
           calib + " --method gptq --windows 2 --window 16";
  };
  const Result w = run_mcw(args(whole, "Q4_0"));
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_FALSE(fs::exists(whole + ".gptq.partial"));

  setenv("MCW_FAULT_KILL_AFTER_CHECKPOINT", "1", 1);
  const Result killed = run_mcw(args(out, "Q4_0"));
  unsetenv("MCW_FAULT_KILL_AFTER_CHECKPOINT");
  EXPECT_TRUE(killed.code == 128 + 9 || killed.code == -1) << killed.code << killed.err;
  EXPECT_FALSE(fs::exists(out));
  ASSERT_TRUE(fs::exists(out + ".gptq.partial/.checkpoint.json"));

  expect_one_line_error(run_mcw(args(out, "Q4_0")), "m.gguf.gptq.partial",
                        "holds a stopped export (1 of 2 blocks done): add --resume");
  expect_one_line_error(run_mcw(args(out, "Q5_0") + " --resume"), "m.gguf.gptq.partial",
                        "another run (a different file_type, types)");
  const Result r = run_mcw(args(out, "Q4_0") + " --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("resuming " + out + ".gptq.partial (1 of 2 blocks done)"), std::string::npos)
      << r.err;
  EXPECT_TRUE(slurp(out) == slurp(whole));
  EXPECT_EQ(r.out.substr(0, r.out.find("wrote")), w.out.substr(0, w.out.find("wrote")));
  EXPECT_FALSE(fs::exists(out + ".gptq.partial"));

  // The resumed file takes the done blocks from the checkpoint, not from a second GPTQ:
  // one code changed there shows up in it.
  const std::string again = (dir / "again.gguf").string();
  setenv("MCW_FAULT_KILL_AFTER_CHECKPOINT", "1", 1);
  run_mcw(args(again, "Q4_0"));
  unsetenv("MCW_FAULT_KILL_AFTER_CHECKPOINT");
  const fs::path q =
      fs::path(again + ".gptq.partial") / "model.layers.0.self_attn.q_proj.weight.blocks";
  std::string blocks = slurp(q);
  ASSERT_GT(blocks.size(), 5u);
  blocks[5] ^= 0x11;  // two 4-bit codes of the first block (after its f16 scale)
  write_bytes(q.string(), blocks);
  ASSERT_EQ(run_mcw(args(again, "Q4_0") + " --resume").code, 0);
  EXPECT_FALSE(slurp(again) == slurp(whole));
  expect_one_line_error(run_mcw(args((dir / "n.gguf").string(), "Q4_0") + " --resume"),
                        "n.gguf.gptq.partial", "holds no checkpoint to resume");
}

// A disk that fills up when the GGUF is written at the end of the GPTQ pass: the error says
// where the blocks done are kept, and --resume writes the file without redoing them.
TEST(CliExportGguf, AFullDiskAfterGptqKeepsTheBlocksForResume) {
  const fs::path dir = fresh_dir("export-resume-full");
  write_tiny_model_and_text(dir);
  const std::string model = (dir / "model").string(), whole = (dir / "whole.gguf").string(),
                    out = (dir / "m.gguf").string();
  const std::string args = " --format gguf --type Q4_0 --calib " + (dir / "eval.txt").string() +
                           " --method gptq --windows 2 --window 16";
  ASSERT_EQ(run_mcw("export " + model + " --out " + whole + args).code, 0);
  const Result r = run_mcw("export " + model + " --out " + out + args, fs::file_size(whole) - 1);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(out + ": write failed: File too large (the blocks done are kept in " + out +
                       ".gptq.partial: add --resume to go on)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out));
  const Result resumed = run_mcw("export " + model + " --out " + out + args + " --resume");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_TRUE(slurp(out) == slurp(whole));
}

TEST(CliExportGguf, UsageErrors) {
  const fs::path dir = fresh_dir("export-gguf-usage");
  write_tiny_model_and_text(dir);
  const std::string model = (dir / "model").string(), out = (dir / "m.gguf").string();
  const Result type = run_mcw("export " + model + " --format gguf --type q4_k_m --out " + out);
  EXPECT_EQ(type.code, 1);
  EXPECT_NE(type.err.find("the GGUF types are: F32, F16"), std::string::npos) << type.err;
  const Result windows =
      run_mcw("export " + model + " --format gguf --type Q8_0 --windows 4 --out " + out);
  EXPECT_EQ(windows.code, 1);
  EXPECT_NE(windows.err.find("--method, --windows, --window and --resume are for --calib"),
            std::string::npos)
      << windows.err;
  const Result method = run_mcw("export " + model + " --format gguf --type Q8_0 --calib " +
                                (dir / "eval.txt").string() + " --method awq --out " + out);
  EXPECT_EQ(method.code, 1);
  EXPECT_NE(method.err.find("the methods are: imatrix, gptq"), std::string::npos) << method.err;
  const Result ct =
      run_mcw("export " + model + " --format compressed-tensors --calib x --out " + out);
  EXPECT_EQ(ct.code, 1);
  EXPECT_NE(ct.err.find("--calib is for --format gguf"), std::string::npos) << ct.err;
  const Result dtype = run_mcw("export " + model + " --format hf --dtype q8 --out " + out);
  EXPECT_EQ(dtype.code, 1);
  EXPECT_NE(dtype.err.find("the dtypes are: f16, bf16, f32"), std::string::npos) << dtype.err;
  const Result format = run_mcw("export " + model + " --format onnx --out " + out);
  EXPECT_NE(format.err.find("the formats are: gguf, compressed-tensors, hf"), std::string::npos)
      << format.err;
  EXPECT_FALSE(fs::exists(out));
}

// --run: the model of a finished run of a project, in each format, recorded as the run's
// artifact; the run's recipe is compressed again with the project's calibration text.
TEST(CliExportGguf, ExportsAProjectsRun) {
  const fs::path dir = fresh_dir("export-run");
  Project p = tiny_project(dir, "exportrun");
  p.calibration_path = (dir / "eval.txt").string();
  p.recipes = {{"w4", "", "stages:\n  - algorithm: rtn\n    bits: 4\n    group_size: 0\n"}};
  const std::string proj = (dir / "exportrun.mcwproj").string();
  save_project(p, proj);
  const Result run = run_mcw("run " + proj + " --recipe w4");  // run 1 baseline, run 2 w4
  ASSERT_EQ(run.code, 0) << run.err;

  const std::string gguf = (dir / "run2.gguf").string(), hf = (dir / "run2-hf").string();
  const Result g = run_mcw("export " + proj + " --run 2 --format gguf --type Q4_K_M --out " + gguf);
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.out.find("GPTQ re-quantised "), std::string::npos) << g.out;
  EXPECT_NE(g.out.find("exported run 2 ('w4') to " + gguf), std::string::npos) << g.out;
  EXPECT_EQ(read_gguf(gguf).get_u64("general.file_type"), 15u);
  EXPECT_FALSE(fs::exists(gguf + ".mcw-compressed"));
  const Result h = run_mcw("export " + proj + " --run 2 --format hf --out " + hf);
  ASSERT_EQ(h.code, 0) << h.err;
  EXPECT_TRUE(fs::exists(fs::path(hf) / "packed.safetensors"));
  const Result show = run_mcw("runs show " + proj + " 2");
  EXPECT_NE(show.out.find("model-gguf"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("model-hf"), std::string::npos) << show.out;

  const Result missing =
      run_mcw("export " + proj + " --run 9 --format hf --out " + (dir / "x").string());
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("no run 9"), std::string::npos) << missing.err;
  const Result bad =
      run_mcw("export " + proj + " --run two --format hf --out " + (dir / "x").string());
  EXPECT_NE(bad.err.find("a run id"), std::string::npos) << bad.err;
  const Result type =
      run_mcw("export " + proj + " --run 2 --format hf --type Q8_0 --out " + (dir / "x").string());
  EXPECT_NE(type.err.find("--type and --method are for --format gguf"), std::string::npos)
      << type.err;
  EXPECT_FALSE(fs::exists(dir / "x"));
}
