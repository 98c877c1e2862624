#include "app/studio/byte_eval.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "engine/core/error.h"
#include "engine/model/llama_model.h"

namespace mcw::studio {

static std::vector<int32_t> read_byte_tokens(const std::string& path, int64_t max_tokens) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty()) throw Error("", "the project has no evaluation text");
  if (!fs::is_regular_file(path, ec)) throw Error(path, "no such file");
  uint64_t n = fs::file_size(path, ec);
  if (ec) throw Error(path, "cannot read the file size: " + ec.message());
  if (max_tokens > 0) n = std::min<uint64_t>(n, uint64_t(max_tokens));
  std::vector<char> bytes(n);
  std::ifstream in(path, std::ios::binary);
  if (!in.read(bytes.data(), std::streamsize(n))) throw Error(path, "cannot read the text");
  std::vector<int32_t> tokens(n);
  for (uint64_t i = 0; i < n; ++i) tokens[i] = int32_t(static_cast<unsigned char>(bytes[i]));
  return tokens;
}

ByteEvalOutcome run_byte_evaluation(const ByteEvalRequest& req, const ProgressFn& progress,
                                    const CancelToken& cancel) {
  if (req.model_path.empty()) throw Error("", "the project has no model");
  report(progress, "load", "", 0, "loading the model");
  const LlamaModel model = load_llama(req.model_path);
  cancel.throw_if_cancelled();
  if (model.cfg.vocab_size < 256)
    throw Error(req.model_path, "the vocabulary has " + std::to_string(model.cfg.vocab_size) +
                                    " tokens; byte-level evaluation needs at least 256");
  const std::vector<int32_t> tokens = read_byte_tokens(req.text_path, req.max_tokens);
  if (tokens.size() < 2) throw Error(req.text_path, "the text needs at least two bytes");
  ByteEvalOutcome out;
  out.tokens = int64_t(tokens.size());
  out.vocab = model.cfg.vocab_size;
  EvalOptions opt;
  opt.window = std::min<int64_t>(req.window, model.cfg.max_seq_len);
  opt.stride = std::min(req.stride, opt.window);
  out.result = evaluate(model, tokens, opt, nullptr, progress, &cancel);
  return out;
}

}  // namespace mcw::studio
