// Generated from HEADER_KEYS in converter/model-header.ts by `npm run gen:model-limits`; do not edit.
// The .m header keys: id, name, whether required, the value when absent (float bits for floats), and the
// inclusive bounds of int and bool values. test/model-limits.test.ts checks that this file is fresh.
#pragma once
#include <cstddef>
#include <cstdint>

namespace glm {

struct HeaderKey {
  int32_t id;
  const char* name;
  bool required;
  int32_t absent;
  bool ranged;
  int32_t min, max;
};

inline constexpr HeaderKey kHeaderKeys[] = {
    {0, "version", false, 0, true, 0, 65535},
    {1, "arch_type", true, 0, true, 11259152, 11259154},
    {11, "hidden_act", false, 1, true, 1, 1},
    {2, "dim", true, 0, true, 1, 65536},
    {3, "hidden_dim", true, 0, true, 0, 65536},
    {4, "n_layers", true, 0, true, 1, 1024},
    {5, "n_heads", true, 0, true, 1, 4096},
    {6, "n_kv_heads", true, 0, true, 1, 4096},
    {13, "weights_float_type", true, 0, true, 0, 3},
    {10, "max_seq_len", true, 0, true, 1, 16777216},
    {9, "vocab_size", true, 0, true, 1, 16777216},
    {7, "n_experts", false, 0, true, 0, 4096},
    {8, "n_active_experts", false, 0, true, 0, 4096},
    {18, "rope_type", false, 0, true, 0, 1},
    {19, "head_dim", true, 0, true, 1, 65536},
    {21, "moe_hidden_dim", false, 0, true, 0, 65536},
    {256, "rope_theta", true, 0, false, 0, 0},
    {257, "norm_epsilon", true, 0, false, 0, 0},
    {258, "rope_dim", true, 0, true, 2, 65536},
    {259, "attention_bias", false, 0, true, 0, 1},
    {260, "qk_norm", false, 0, true, 0, 1},
    {261, "n_shared_experts", false, 0, true, 0, 64},
    {262, "first_dense_layers", false, 0, true, 0, 1024},
    {263, "routed_scaling_factor", false, 1065353216, false, 0, 0},
    {264, "norm_topk_prob", false, 0, true, 0, 1},
    {265, "n_expert_groups", false, 1, true, 1, 4096},
    {266, "topk_groups", false, 1, true, 1, 4096},
    {267, "output_float_type", false, -1, true, 0, 3},
    {300, "mtp_layers", false, 0, true, 0, 1},
};

inline constexpr size_t kMaxHeaderBytes = 65536;

}  // namespace glm
