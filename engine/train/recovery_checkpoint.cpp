// A recovery's checkpoint file (recovery.h: RecoveryCheckpoint): the trainables and AdamW's
// moments as tensors, the step, the sampler's state, the curve and the run's identity as
// metadata.
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "engine/core/error.h"
#include "engine/io/json_text.h"
#include "engine/io/safetensors.h"
#include "engine/train/recovery.h"

namespace mcw {

namespace {

nlohmann::json step_to_json(const RecoveryStep& s) {
  nlohmann::json j = {{"step", s.step}, {"total", s.total},         {"loss", s.loss},
                      {"lr", s.lr},     {"grad_norm", s.grad_norm}, {"seconds", s.seconds}};
  if (s.eval_loss) j["eval_loss"] = *s.eval_loss;
  if (s.eval_kl) j["eval_kl"] = *s.eval_kl;
  return j;
}

RecoveryStep step_from_json(const nlohmann::json& j) {
  RecoveryStep s;
  s.step = j.at("step"), s.total = j.at("total"), s.loss = j.at("loss"), s.lr = j.at("lr");
  s.grad_norm = j.at("grad_norm"), s.seconds = j.at("seconds");
  if (j.contains("eval_loss")) s.eval_loss = j["eval_loss"].get<double>();
  if (j.contains("eval_kl")) s.eval_kl = j["eval_kl"].get<double>();
  return s;
}

}  // namespace

void save_recovery_checkpoint(const std::string& path, const RecoveryCheckpoint& c,
                              const std::string& identity) {
  std::vector<Tensor> tensors;
  auto add = [&](const char* prefix, const std::vector<std::vector<float>>& vs) {
    for (size_t i = 0; i < vs.size(); ++i)
      tensors.push_back(
          Tensor::from_f32(vs[i], {int64_t(vs[i].size())}, prefix + std::to_string(i)));
  };
  add("p.", c.params), add("m.", c.adam_m), add("v.", c.adam_v);
  nlohmann::json history = nlohmann::json::array();
  for (const RecoveryStep& s : c.history) history.push_back(step_to_json(s));
  write_safetensors(path, tensors,
                    {{"mcw.recovery.identity", identity},
                     {"mcw.recovery.step", std::to_string(c.step)},
                     {"mcw.recovery.tensors", std::to_string(c.params.size())},
                     {"mcw.recovery.sampler", c.sampler},
                     {"mcw.recovery.history", history.dump()}});
}

RecoveryCheckpoint load_recovery_checkpoint(const std::string& path, const std::string& identity) {
  const SafetensorsFile f = read_safetensors(path);
  auto meta = [&](const char* key) {
    const auto it = f.metadata.find(key);
    if (it == f.metadata.end())
      throw Error(path, std::string("not a recovery checkpoint (no ") + key + ")");
    return it->second;
  };
  if (meta("mcw.recovery.identity") != identity)
    throw Error(path, "is the checkpoint of another recovery (model, text or options differ)");
  RecoveryCheckpoint c;
  try {
    c.step = std::stoll(meta("mcw.recovery.step"));
    const size_t n = std::stoul(meta("mcw.recovery.tensors"));
    std::map<std::string, const Tensor*> by_name;
    for (const Tensor& t : f.tensors) by_name[t.name()] = &t;
    for (auto [prefix, vs] :
         {std::pair{"p.", &c.params}, std::pair{"m.", &c.adam_m}, std::pair{"v.", &c.adam_v}})
      for (size_t i = 0; i < n; ++i) {
        const auto it = by_name.find(prefix + std::to_string(i));
        if (it == by_name.end() || it->second->dtype() != DType::F32)
          throw Error(path, "recovery checkpoint lacks " + std::string(prefix) + std::to_string(i));
        vs->push_back(it->second->to_f32());
      }
    c.sampler = meta("mcw.recovery.sampler");
    std::mt19937_64 sampler;
    if (!(std::istringstream(c.sampler) >> sampler))
      throw Error(path, "damaged recovery checkpoint: sampler state");
    const std::string history = meta("mcw.recovery.history");
    for (const auto& j :
         parse_json_text(history, path, 0, {.what = "the recovery curve", .utf8_hint = {}}))
      c.history.push_back(step_from_json(j));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path, std::string("damaged recovery checkpoint: ") + e.what());
  } catch (const std::logic_error& e) {  // stoll, stoul
    throw Error(path, std::string("damaged recovery checkpoint: ") + e.what());
  }
  return c;
}

}  // namespace mcw
