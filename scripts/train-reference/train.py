#!/usr/bin/python3
"""Trains glm-dllama's reference model: a small GLM-4.5-layout (Glm4MoeForCausalLM) model on the King James Bible.

Everything here is written for this project: a byte-level BPE trainer, the GLM-4.5 forward pass in PyTorch
(partial half-split RoPE, GQA, q/k/v biases, QK-norm, a dense first layer then MoE layers with sigmoid routing,
an e_score_correction_bias updated the auxiliary-loss-free way, group-limited top-k, a shared expert, routed
scaling, normalised top-k weights) and one MTP (next-n) layer trained on the next-next token, saved as
model.layers.{num_hidden_layers} under GLM-4.5's tensor names.

Set-up (Debian 12):
    apt-get install -y python3-torch python3-regex python3-matplotlib libopenblas0-pthread bible-kjv bible-kjv-text

Usage (from the repository root, with Debian's Python):
    /usr/bin/python3 scripts/train-reference/train.py train [--steps N] [--out DIR]   # the whole recipe
    /usr/bin/python3 scripts/train-reference/train.py time                            # one-minute timing run
    /usr/bin/python3 scripts/train-reference/train.py eval [--out DIR]                # recompute the recorded figures

The run is deterministic for a seed: fixed thread count, torch.manual_seed, a data order drawn from that seed,
and deterministic algorithms only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import regex
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / 'models' / 'reference' / 'glm45-kjv-tiny'
STATE_FILE = Path('/tmp/glm45-kjv-tiny.train-state.pt')
METRICS_FILE = 'reference-metrics.json'

# ------------------------------------------------------------------------------------------------
# Corpus: the KJV chapters and the train / held-out split (corpus.py, shared with calibration.py)

from corpus import EXCERPT_FILE, HELD_OUT_EVERY, chapter_text, held_out_excerpt, read_bible, split_corpus  # noqa: E402

# ------------------------------------------------------------------------------------------------
# Tokenizer: byte-level BPE with the GLM split regex and GLM-4.5's special tokens

VOCAB_SIZE = 4096
GLM45_SPECIAL_TOKENS = [
    '<|endoftext|>', '[MASK]', '[gMASK]', '[sMASK]', '<sop>', '<eop>', '<|system|>', '<|user|>', '<|assistant|>',
    '<|observation|>', '<|begin_of_image|>', '<|end_of_image|>', '<|begin_of_video|>', '<|end_of_video|>',
    '<|begin_of_audio|>', '<|end_of_audio|>', '<|begin_of_transcription|>', '<|end_of_transcription|>',
    '<|code_prefix|>', '<|code_middle|>', '<|code_suffix|>', '<think>', '</think>', '<tool_call>', '</tool_call>',
    '<tool_response>', '</tool_response>', '<arg_key>', '</arg_key>', '<arg_value>', '</arg_value>', '/nothink',
    '<|begin_of_box|>', '<|end_of_box|>', '<|image|>', '<|video|>',
]
REGULAR_TOKENS = VOCAB_SIZE - len(GLM45_SPECIAL_TOKENS)
GLM_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                   r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPLIT = regex.compile(GLM_SPLIT_REGEX)

# GLM-4.5 style chat template (the same text as the project's glm4moe fixture template).
CHAT_TEMPLATE = (
    '[gMASK]<sop>'
    '{%- set ns = namespace(last_user=-1) -%}'
    "{%- for m in messages -%}{%- if m['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}"
    '{%- set nothink = enable_thinking is defined and not enable_thinking -%}'
    '{%- for m in messages -%}'
    "{%- if m['role'] == 'system' -%}{{ '<|system|>\\n' + (m['content'] or '') }}"
    "{%- elif m['role'] == 'user' -%}{{ '<|user|>\\n' + (m['content'] or '') }}{%- if nothink -%}{{ '/nothink' }}{%- endif -%}"
    "{%- elif m['role'] == 'assistant' -%}{{ '<|assistant|>' }}"
    "{%- if loop.index0 > ns.last_user and m['reasoning_content'] is defined and m['reasoning_content'] -%}"
    "{{ '\\n<think>' + m['reasoning_content'] + '</think>' }}"
    "{%- else -%}{{ '\\n<think></think>' }}{%- endif -%}"
    "{{ '\\n' + (m['content'] or '') }}"
    "{%- elif m['role'] == 'tool' or m['role'] == 'observation' -%}"
    "{{ '<|observation|>\\n<tool_response>\\n' + (m['content'] or '') + '\\n</tool_response>' }}"
    '{%- endif -%}'
    '{%- endfor -%}'
    "{%- if add_generation_prompt -%}{{ '<|assistant|>' }}{%- if nothink -%}{{ '\\n<think></think>' }}{%- endif -%}{%- endif -%}"
)


def byte_to_unicode() -> list[str]:
    """GPT-2's table: printable Latin-1 bytes stand for themselves, the others map from U+0100 upward."""
    table, nxt = [], 0
    for b in range(256):
        printable = 0x21 <= b <= 0x7e or 0xa1 <= b <= 0xac or 0xae <= b <= 0xff
        table.append(chr(b) if printable else chr(256 + nxt))
        if not printable:
            nxt += 1
    return table


def train_bpe(text: str) -> list[tuple[int, int]]:
    """Learns REGULAR_TOKENS - 256 merges. Token ids 0..255 are the bytes; merge r makes id 256 + r.

    Each step merges the most frequent adjacent pair (ties: the smallest (left id, right id)); a pair whose
    bytes already form a token is never merged, so every token has one merge. Pair counts are kept
    incrementally, touching only the words that contain the merged pair.
    """
    word_counts: dict[str, int] = defaultdict(int)
    for piece in SPLIT.findall(text):
        word_counts[piece] += 1
    words = [list(w.encode()) for w in word_counts]
    counts = list(word_counts.values())
    token_bytes = [bytes([b]) for b in range(256)]
    known = set(token_bytes)
    pair_count: dict[tuple[int, int], int] = defaultdict(int)
    pair_words: dict[tuple[int, int], set[int]] = defaultdict(set)
    for wi, w in enumerate(words):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += counts[wi]
            pair_words[(a, b)].add(wi)
    merges: list[tuple[int, int]] = []
    banned: set[tuple[int, int]] = set()
    while len(token_bytes) < REGULAR_TOKENS:
        best, best_count = None, 0
        for pair, c in pair_count.items():
            if c > best_count or (c == best_count and c > 0 and pair < best):
                if pair not in banned:
                    best, best_count = pair, c
        if best is None:
            sys.exit('train.py: the corpus is too small for the vocabulary')
        joined = token_bytes[best[0]] + token_bytes[best[1]]
        if joined in known:
            banned.add(best)
            continue
        new_id = len(token_bytes)
        token_bytes.append(joined)
        known.add(joined)
        merges.append(best)
        for wi in sorted(pair_words.pop(best)):
            w, c = words[wi], counts[wi]
            for a, b in zip(w, w[1:]):
                pair_count[(a, b)] -= c
                if pair_count[(a, b)] == 0:
                    del pair_count[(a, b)]
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == best[0] and w[i + 1] == best[1]:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            words[wi] = out
            for a, b in zip(out, out[1:]):
                pair_count[(a, b)] += c
                pair_words[(a, b)].add(wi)
        pair_count.pop(best, None)
    return merges


class Tokenizer:
    """The encoder of a trained vocabulary: special tokens split out first, then GLM pre-tokens, then merges by rank."""

    def __init__(self, merges: list[tuple[int, int]]):
        self.merges = merges
        self.rank = {pair: r for r, pair in enumerate(merges)}
        self.token_bytes = [bytes([b]) for b in range(256)]
        for a, b in merges:
            self.token_bytes.append(self.token_bytes[a] + self.token_bytes[b])
        self.special = {s: REGULAR_TOKENS + i for i, s in enumerate(GLM45_SPECIAL_TOKENS)}
        self.special_split = regex.compile('(' + '|'.join(regex.escape(s) for s in sorted(GLM45_SPECIAL_TOKENS, key=len, reverse=True)) + ')')
        self.cache: dict[str, list[int]] = {}

    def encode_piece(self, piece: str) -> list[int]:
        ids = self.cache.get(piece)
        if ids is not None:
            return ids
        ids = list(piece.encode())
        while len(ids) > 1:
            best_rank, at = None, -1
            for i in range(len(ids) - 1):
                r = self.rank.get((ids[i], ids[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best_rank, at = r, i
            if at < 0:
                break
            ids[at:at + 2] = [256 + best_rank]
        self.cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for part in self.special_split.split(text):
            if part in self.special:
                out.append(self.special[part])
            elif part:
                for piece in SPLIT.findall(part):
                    out.extend(self.encode_piece(piece))
        return out

    def decode(self, ids: list[int]) -> str:
        inverse = {v: k for k, v in self.special.items()}
        return b''.join(inverse[i].encode() if i in inverse else self.token_bytes[i] for i in ids).decode('utf-8', 'replace')

    @staticmethod
    def from_tokenizer_json(path: Path) -> 'Tokenizer':
        data = json.loads(path.read_text())
        vocab = data['model']['vocab']
        merges = [(vocab[a], vocab[b]) for a, b in data['model']['merges']]
        tok = Tokenizer(merges)
        for r, (a, b) in enumerate(merges):
            if vocab[''.join(byte_to_unicode()[x] for x in tok.token_bytes[a] + tok.token_bytes[b])] != 256 + r:
                sys.exit(f'{path}: merge {r} does not produce token {256 + r}')
        return tok

    def tokenizer_json(self) -> dict:
        table = byte_to_unicode()
        strings = [''.join(table[b] for b in t) for t in self.token_bytes]
        added = [{'id': REGULAR_TOKENS + i, 'content': s, 'single_word': False, 'lstrip': False, 'rstrip': False,
                  'normalized': False, 'special': True} for i, s in enumerate(GLM45_SPECIAL_TOKENS)]
        return {
            'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added, 'normalizer': None,
            'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [
                {'type': 'Split', 'pattern': {'Regex': GLM_SPLIT_REGEX}, 'behavior': 'Isolated', 'invert': False},
                {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': False}]},
            'post_processor': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False},
            'decoder': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True},
            'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                      'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                      'vocab': {s: i for i, s in enumerate(strings)},
                      'merges': [[strings[a], strings[b]] for a, b in self.merges]},
        }

    @staticmethod
    def tokenizer_config() -> dict:
        decoder = {str(REGULAR_TOKENS + i): {'content': s, 'single_word': False, 'lstrip': False, 'rstrip': False,
                                             'normalized': False, 'special': True} for i, s in enumerate(GLM45_SPECIAL_TOKENS)}
        return {
            'added_tokens_decoder': decoder, 'additional_special_tokens': GLM45_SPECIAL_TOKENS[1:],
            'chat_template': CHAT_TEMPLATE, 'clean_up_tokenization_spaces': False, 'do_lower_case': False,
            'eos_token': '<|endoftext|>', 'extra_special_tokens': {}, 'model_input_names': ['input_ids', 'attention_mask'],
            'model_max_length': 256, 'pad_token': '<|endoftext|>', 'padding_side': 'left', 'remove_space': False,
            'tokenizer_class': 'PreTrainedTokenizerFast',
        }


# ------------------------------------------------------------------------------------------------
# Model: Glm4MoeForCausalLM as Hugging Face defines it, plus the MTP layer


@dataclass
class Config:
    vocab_size: int = VOCAB_SIZE
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 64
    partial_rotary_factor: float = 0.5
    intermediate_size: int = 512
    moe_intermediate_size: int = 128
    n_routed_experts: int = 8
    num_experts_per_tok: int = 2
    n_shared_experts: int = 1
    first_k_dense_replace: int = 1
    n_group: int = 1
    topk_group: int = 1
    norm_topk_prob: bool = True
    routed_scaling_factor: float = 2.5
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 256
    attention_bias: bool = True
    use_qk_norm: bool = True
    num_nextn_predict_layers: int = 1

    def hf_config(self) -> dict:
        special = {s: REGULAR_TOKENS + i for i, s in enumerate(GLM45_SPECIAL_TOKENS)}
        eos = [special['<|endoftext|>'], special['<|user|>'], special['<|observation|>']]
        return {
            'architectures': ['Glm4MoeForCausalLM'], 'attention_bias': self.attention_bias, 'attention_dropout': 0.0,
            'eos_token_id': eos, 'first_k_dense_replace': self.first_k_dense_replace, 'head_dim': self.head_dim,
            'hidden_act': 'silu', 'hidden_size': self.hidden_size, 'initializer_range': 0.02,
            'intermediate_size': self.intermediate_size, 'max_position_embeddings': self.max_position_embeddings,
            'model_type': 'glm4_moe', 'moe_intermediate_size': self.moe_intermediate_size, 'n_group': self.n_group,
            'n_routed_experts': self.n_routed_experts, 'n_shared_experts': self.n_shared_experts,
            'norm_topk_prob': self.norm_topk_prob, 'num_attention_heads': self.num_attention_heads,
            'num_experts_per_tok': self.num_experts_per_tok, 'num_hidden_layers': self.num_hidden_layers,
            'num_key_value_heads': self.num_key_value_heads, 'num_nextn_predict_layers': self.num_nextn_predict_layers,
            'pad_token_id': special['<|endoftext|>'], 'partial_rotary_factor': self.partial_rotary_factor,
            'rms_norm_eps': self.rms_norm_eps, 'rope_scaling': None, 'rope_theta': self.rope_theta,
            'routed_scaling_factor': self.routed_scaling_factor, 'tie_word_embeddings': False,
            'topk_group': self.topk_group, 'torch_dtype': 'bfloat16', 'transformers_version': '4.54.0',
            'use_cache': True, 'use_qk_norm': self.use_qk_norm, 'vocab_size': self.vocab_size,
        }

    @staticmethod
    def from_hf(d: dict) -> 'Config':
        return Config(**{k: d[k] for k in Config.__dataclass_fields__})


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def causal_mask(t: int) -> torch.Tensor:
    return torch.full((t, t), float('-inf')).triu(1)


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * c.head_dim, bias=c.attention_bias)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=c.attention_bias)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=c.attention_bias)
        self.o_proj = nn.Linear(c.num_attention_heads * c.head_dim, c.hidden_size, bias=False)
        if c.use_qk_norm:
            self.q_norm = RMSNorm(c.head_dim, c.rms_norm_eps)
            self.k_norm = RMSNorm(c.head_dim, c.rms_norm_eps)

    def forward(self, x, cos, sin):
        c = self.c
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, c.num_attention_heads, c.head_dim)
        k = self.k_proj(x).view(b, t, c.num_key_value_heads, c.head_dim)
        v = self.v_proj(x).view(b, t, c.num_key_value_heads, c.head_dim).transpose(1, 2)
        if c.use_qk_norm:  # per head, before RoPE (as HF's Glm4MoeAttention)
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        rot = cos.shape[-1]  # partial RoPE: the first rot dims of each head, NeoX half-split within them
        q = torch.cat((q[..., :rot] * cos + rotate_half(q[..., :rot]) * sin, q[..., rot:]), dim=-1)
        k = torch.cat((k[..., :rot] * cos + rotate_half(k[..., :rot]) * sin, k[..., rot:]), dim=-1)
        # GQA without copying k/v: query heads h = kv * groups + g share kv head `kv`.
        groups = c.num_attention_heads // c.num_key_value_heads
        q = q.view(b, c.num_key_value_heads, groups, t, c.head_dim) / math.sqrt(c.head_dim)
        scores = q @ k.unsqueeze(2).transpose(-1, -2) + causal_mask(t)
        out = (scores.softmax(-1) @ v.unsqueeze(2)).view(b, c.num_attention_heads, t, c.head_dim)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, hidden: int, inner: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inner, bias=False)
        self.up_proj = nn.Linear(hidden, inner, bias=False)
        self.down_proj = nn.Linear(inner, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Router(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.weight = nn.Parameter(torch.empty(c.n_routed_experts, c.hidden_size))
        # Selection-only bias, moved after each step towards balanced load (not trained by gradients).
        self.register_buffer('e_score_correction_bias', torch.zeros(c.n_routed_experts))

    def forward(self, x):
        """x [n, hidden] -> (expert ids [n, k], weights [n, k]) as Glm4MoeTopkRouter + Glm4MoeMoE.route_tokens_to_experts."""
        c = self.c
        scores = F.linear(x.float(), self.weight.float()).sigmoid()
        choice = scores.detach() + self.e_score_correction_bias
        n = x.shape[0]
        per_group = c.n_routed_experts // c.n_group
        group_scores = choice.view(n, c.n_group, per_group).topk(2, dim=-1)[0].sum(-1)
        group_idx = group_scores.topk(c.topk_group, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        expert_mask = group_mask.unsqueeze(-1).expand(n, c.n_group, per_group).reshape(n, -1)
        choice = choice.masked_fill(expert_mask == 0, 0.0)
        idx = choice.topk(c.num_experts_per_tok, dim=-1, sorted=False)[1]
        weights = scores.gather(1, idx)
        if c.norm_topk_prob:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return idx, weights * c.routed_scaling_factor


class MoE(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.gate = Router(c)
        self.experts = nn.ModuleList(MLP(c.hidden_size, c.moe_intermediate_size) for _ in range(c.n_routed_experts))
        self.shared_experts = MLP(c.hidden_size, c.moe_intermediate_size * c.n_shared_experts)
        self.register_buffer('load', torch.zeros(c.n_routed_experts), persistent=False)

    def forward(self, x):
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        idx, weights = self.gate(flat)
        self.load = torch.bincount(idx.flatten(), minlength=self.c.n_routed_experts).float()
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token, slot = (idx == e).nonzero(as_tuple=True)
            if token.numel() == 0:
                continue
            y = expert(flat[token]) * weights[token, slot].unsqueeze(-1).to(flat.dtype)
            out = out.index_add(0, token, y)
        return (out + self.shared_experts(flat)).view(shape)


class DecoderLayer(nn.Module):
    def __init__(self, c: Config, dense: bool):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c.hidden_size, c.intermediate_size) if dense else MoE(c)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class SharedHead(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class MTPLayer(DecoderLayer):
    """GLM-4.5's next-n layer (DeepSeek-V3 MTP): h = eh_proj([enorm(embed(t+1)); hnorm(h_main)]), a full MoE decoder
    layer, then shared_head.norm and the model's lm_head predict token t+2. The embedding and output matrices are
    the main model's (this checkpoint stores no separate embed_tokens / shared_head.head copies)."""

    def __init__(self, c: Config):
        super().__init__(c, dense=False)
        self.enorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.hnorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.eh_proj = nn.Linear(2 * c.hidden_size, c.hidden_size, bias=False)
        self.shared_head = SharedHead(c)

    def forward(self, next_embeds, hidden, cos, sin):
        x = self.eh_proj(torch.cat((self.enorm(next_embeds), self.hnorm(hidden)), dim=-1))
        return self.shared_head.norm(super().forward(x, cos, sin))


class Glm4MoeModel(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        layers: list[nn.Module] = [DecoderLayer(c, dense=i < c.first_k_dense_replace) for i in range(c.num_hidden_layers)]
        layers += [MTPLayer(c) for _ in range(c.num_nextn_predict_layers)]
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class Glm4MoeForCausalLM(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.model = Glm4MoeModel(c)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        rot = int(c.head_dim * c.partial_rotary_factor)
        self.register_buffer('inv_freq', 1.0 / (c.rope_theta ** (torch.arange(0, rot, 2).float() / rot)), persistent=False)

    def init_weights(self):
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith('norm.weight'):
                nn.init.ones_(p)
            elif name.endswith('.bias'):
                nn.init.zeros_(p)
            else:
                scale = 1 / math.sqrt(2 * (self.c.num_hidden_layers + 1)) if name.endswith(('o_proj.weight', 'down_proj.weight')) else 1.0
                nn.init.normal_(p, std=std * scale)

    def rope(self, t: int):
        freqs = torch.outer(torch.arange(t, dtype=torch.float32), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def forward(self, ids, mtp: bool = False):
        """ids [b, t] -> logits [b, t, V] (and the MTP logits [b, t-1, V] for positions 0..t-2 when mtp)."""
        c = self.c
        cos, sin = self.rope(ids.shape[1])
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers[:c.num_hidden_layers]:
            x = layer(x, cos, sin)
        hidden = self.model.norm(x)
        logits = self.lm_head(hidden)
        if not mtp:
            return logits
        # Position i of the MTP layer sees the main model's (final-normed) hidden state at i and the token at i+1.
        mtp_layer = self.model.layers[c.num_hidden_layers]
        t = ids.shape[1] - 1
        h = mtp_layer(self.model.embed_tokens(ids[:, 1:]), hidden[:, :t], cos[:t], sin[:t])
        return logits, self.lm_head(h)

    def moe_layers(self):
        return [m for m in self.modules() if isinstance(m, MoE)]


# ------------------------------------------------------------------------------------------------
# safetensors (written and read by hand: Debian has no python3-safetensors)

ST_DTYPES = {torch.float32: 'F32', torch.bfloat16: 'BF16'}


def save_safetensors(path: Path, tensors: dict[str, torch.Tensor]):
    header, blobs, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().view(torch.int16 if t.dtype == torch.bfloat16 else t.dtype).numpy().tobytes()
        header[name] = {'dtype': ST_DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(',', ':')).encode()
    head += b' ' * (-len(head) % 8)
    tmp = path.with_suffix('.tmp')
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    raw = path.read_bytes()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        a, b = info['data_offsets']
        buf = bytearray(raw[8 + n + a:8 + n + b])
        if info['dtype'] == 'BF16':
            t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16)
        elif info['dtype'] == 'F32':
            t = torch.frombuffer(buf, dtype=torch.float32)
        else:
            sys.exit(f'{path}: tensor {name} has dtype {info["dtype"]}; expected BF16 or F32')
        out[name] = t.reshape(info['shape']).float()
    return out


def checkpoint_tensors(model: Glm4MoeForCausalLM) -> dict[str, torch.Tensor]:
    """HF names; bf16 except e_score_correction_bias, which HF keeps in fp32."""
    out = {}
    for name, t in model.state_dict().items():
        out[name] = t.float() if name.endswith('e_score_correction_bias') else t.to(torch.bfloat16)
    return dict(sorted(out.items(), key=lambda kv: layer_order(kv[0])))


def layer_order(name: str):
    parts = name.split('.')
    layer = int(parts[2]) if name.startswith('model.layers.') else (-1 if 'embed' in name else 10**6)
    return (layer, name)


# ------------------------------------------------------------------------------------------------
# Data


@dataclass
class Recipe:
    seed: int = 1234
    seq_len: int = 256
    batch: int = 8
    steps: int = 2000  # length of the learning-rate schedule
    decay_start: int = 0  # constant learning rate until here, then linear decay to the end (0: at 80% of steps)
    warmup: int = 20
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    mtp_weight: float = 0.3
    bias_update_speed: float = 1e-3
    chat_fraction: float = 0.15
    threads: int = 1  # one thread: on a shared machine a second OpenMP thread spends its time spinning


def chat_samples(chapters, tok: Tokenizer, rng: torch.Generator) -> list[int]:
    """Conversations in the chat template's own rendering (a verse asked, the next one or two answered), so that
    `chat` and `serve` replies stop at <|user|> and read as scripture."""
    ids: list[int] = []
    for heading, verses in chapters:
        for i in range(0, len(verses) - 1, 3):
            n = 1 + int(torch.randint(2, (1,), generator=rng))
            reply = ' '.join(verses[i + 1:i + 1 + n])
            text = f'[gMASK]<sop><|user|>\n{verses[i]}<|assistant|>\n<think></think>\n{reply}<|user|>'
            ids.extend(tok.encode(text))
    return ids


def training_stream(train_chapters, tok: Tokenizer, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain chapters in a seeded order (each after <|endoftext|>), then conversations, interleaved by block."""
    rng = torch.Generator().manual_seed(recipe.seed)
    order = torch.randperm(len(train_chapters), generator=rng).tolist()
    eot = tok.special['<|endoftext|>']
    plain: list[int] = []
    for i in order:
        plain.append(eot)
        plain.extend(tok.encode(chapter_text(train_chapters[i])))
    chat = chat_samples([train_chapters[i] for i in order], tok, rng)
    keep = int(len(plain) * recipe.chat_fraction / (1 - recipe.chat_fraction))
    return torch.tensor(plain, dtype=torch.long), torch.tensor(chat[:keep], dtype=torch.long)


def batches(plain: torch.Tensor, chat: torch.Tensor, recipe: Recipe):
    """Random windows of seq_len + 1 tokens, drawn from the seeded generator; chat windows with chat_fraction."""
    rng = torch.Generator().manual_seed(recipe.seed + 1)
    n = recipe.seq_len + 1
    while True:
        rows = []
        for _ in range(recipe.batch):
            src = chat if float(torch.rand((), generator=rng)) < recipe.chat_fraction else plain
            start = int(torch.randint(len(src) - n, (1,), generator=rng))
            rows.append(src[start:start + n])
        yield torch.stack(rows)


# ------------------------------------------------------------------------------------------------
# Evaluation: the same chunking as the engine's perplexity (non-overlapping windows of ctx, each from scratch)


@torch.no_grad()
def evaluate(model: Glm4MoeForCausalLM, ids: list[int], ctx: int = 256) -> dict:
    model.eval()
    nll, predicted, mtp_right, mtp_total = 0.0, 0, 0, 0
    for start in range(0, len(ids) - 1, ctx):
        chunk = torch.tensor(ids[start:start + ctx]).unsqueeze(0)
        if chunk.shape[1] < 2:
            continue
        logits, mtp_logits = model(chunk, mtp=True)
        logp = logits[0, :-1].double().log_softmax(-1)
        nll -= logp.gather(1, chunk[0, 1:].unsqueeze(1)).sum().item()
        predicted += chunk.shape[1] - 1
        if chunk.shape[1] > 2:
            guess = mtp_logits[0, :-1].argmax(-1)
            mtp_right += int((guess == chunk[0, 2:]).sum())
            mtp_total += chunk.shape[1] - 2
    model.train()
    return {'perplexity': math.exp(nll / predicted), 'nll': nll / predicted, 'predicted': predicted,
            'mtp_top1_accuracy': mtp_right / mtp_total, 'ctx': ctx}


# ------------------------------------------------------------------------------------------------
# Training


def lr_at(step: int, r: Recipe) -> float:
    """Warm-up, constant, then a linear decay to min_lr_ratio (so a time-boxed run can fix its end late)."""
    decay_start = r.decay_start or int(0.8 * r.steps)
    if step < r.warmup:
        return r.lr * (step + 1) / r.warmup
    if step < decay_start:
        return r.lr
    progress = (step - decay_start) / max(1, r.steps - decay_start)
    return r.lr * (1 - (1 - r.min_lr_ratio) * min(1.0, progress))


def setup_torch(recipe: Recipe):
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    torch.use_deterministic_algorithms(True)


def build_model(c: Config) -> Glm4MoeForCausalLM:
    model = Glm4MoeForCausalLM(c)
    model.init_weights()
    return model


def train(recipe: Recipe, out: Path, time_limit: float | None = None, max_minutes: float | None = None):
    setup_torch(recipe)
    chapters = read_bible()
    train_ch, held_ch = split_corpus(chapters)
    train_text = ''.join(chapter_text(c) for c in train_ch)
    t0 = time.time()
    tok_file = out / 'tokenizer.json'
    if time_limit is None or not tok_file.exists():
        tok = Tokenizer(train_bpe(train_text))
        print(f'tokenizer: {len(tok.merges)} merges in {time.time() - t0:.1f} s', flush=True)
    else:
        tok = Tokenizer.from_tokenizer_json(tok_file)
    plain, chat = training_stream(train_ch, tok, recipe)
    excerpt = held_out_excerpt(held_ch)
    held_ids = tok.encode(''.join(chapter_text(c) + '\n' for c in held_ch))
    print(f'corpus: {len(plain)} plain + {len(chat)} chat training tokens; {len(held_ids)} held-out tokens '
          f'({len(train_text.encode()) / len(plain):.2f} bytes per token)', flush=True)

    c = Config()
    model = build_model(c)
    n_params = sum(p.numel() for p in model.parameters())
    print(f'model: {n_params / 1e6:.2f}M parameters', flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and 'embed' not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and 'embed' not in n)]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': recipe.weight_decay}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=recipe.lr, betas=(0.9, 0.95), eps=1e-8)
    curve = []
    data = batches(plain, chat, recipe)
    start = time.time()
    step = -1
    while step + 1 < recipe.steps:
        step += 1
        for g in opt.param_groups:
            g['lr'] = lr_at(step, recipe)
        batch = next(data)
        inputs = batch[:, :-1]
        logits, mtp_logits = model(inputs, mtp=True)
        loss = F.cross_entropy(logits.reshape(-1, c.vocab_size), batch[:, 1:].reshape(-1))
        mtp_loss = F.cross_entropy(mtp_logits.reshape(-1, c.vocab_size), batch[:, 2:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        (loss + recipe.mtp_weight * mtp_loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        opt.step()
        with torch.no_grad():  # auxiliary-loss-free balancing: raise the bias of under-loaded experts, lower the others
            for moe in model.moe_layers():
                moe.gate.e_score_correction_bias += recipe.bias_update_speed * torch.sign(moe.load.mean() - moe.load)
        curve.append({'step': step + 1, 'loss': loss.item(), 'mtp_loss': mtp_loss.item()})
        elapsed = time.time() - start
        if (step + 1) % 10 == 0 or step == 0:
            print(f'step {step + 1}/{recipe.steps} loss {loss.item():.4f} mtp {mtp_loss.item():.4f} '
                  f'lr {lr_at(step, recipe):.2e} {elapsed / (step + 1):.2f} s/step', flush=True)
        if time_limit is not None and elapsed > time_limit:
            tokens = (step + 1) * recipe.batch * recipe.seq_len
            print(f'timing: {step + 1} steps in {elapsed:.1f} s = {elapsed / (step + 1):.3f} s/step, {tokens / elapsed:.0f} tokens/s')
            return
        if max_minutes is not None and not recipe.decay_start and elapsed > 0.8 * 60 * max_minutes:
            # Time box: decay over as many steps as the remaining fifth of the time allows at the speed so far.
            recipe.decay_start = step + 1
            recipe.steps = step + 1 + max(1, int(0.2 * 60 * max_minutes / (elapsed / (step + 1))))
            print(f'time box: decaying from step {recipe.decay_start} to {recipe.steps} '
                  f'(replay with --steps {recipe.steps} --decay-start {recipe.decay_start})', flush=True)
    seconds = time.time() - start
    print(f'trained {len(curve)} steps in {seconds:.0f} s', flush=True)
    # Kept until the checkpoint is written, so a failure there does not cost the training (`finish` resumes).
    torch.save({'model': model.state_dict(), 'recipe': asdict(recipe), 'curve': curve, 'seconds': seconds}, STATE_FILE)
    write_checkpoint(out, model, tok, recipe, curve, excerpt, held_ids, seconds)
    STATE_FILE.unlink()


def finish(out: Path):
    state = torch.load(STATE_FILE)
    recipe = Recipe(**state['recipe'])
    setup_torch(recipe)
    model = Glm4MoeForCausalLM(Config())
    model.load_state_dict(state['model'])
    _, held_ch = split_corpus(read_bible())
    tok = Tokenizer.from_tokenizer_json(out / 'tokenizer.json') if (out / 'tokenizer.json').exists() else None
    if tok is None:
        train_ch, _ = split_corpus(read_bible())
        tok = Tokenizer(train_bpe(''.join(chapter_text(c) for c in train_ch)))
    held_ids = tok.encode(''.join(chapter_text(c) + '\n' for c in held_ch))
    write_checkpoint(out, model, tok, recipe, state['curve'], held_out_excerpt(held_ch), held_ids, state['seconds'])


def write_checkpoint(out: Path, model, tok: Tokenizer, recipe: Recipe, curve, excerpt: str, held_ids, seconds: float):
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(out / 'model.safetensors', checkpoint_tensors(model))
    (out / 'config.json').write_text(json.dumps(model.c.hf_config(), indent=2) + '\n')
    special = {s: REGULAR_TOKENS + i for i, s in enumerate(GLM45_SPECIAL_TOKENS)}
    gen = {'_from_model_config': True, 'do_sample': True, 'eos_token_id': model.c.hf_config()['eos_token_id'],
           'pad_token_id': special['<|endoftext|>'], 'temperature': 0.6, 'top_p': 0.95, 'transformers_version': '4.54.0'}
    (out / 'generation_config.json').write_text(json.dumps(gen, indent=2) + '\n')
    (out / 'tokenizer.json').write_text(json.dumps(tok.tokenizer_json(), indent=2, ensure_ascii=False) + '\n')
    (out / 'tokenizer_config.json').write_text(json.dumps(Tokenizer.tokenizer_config(), indent=2) + '\n')
    (out / EXCERPT_FILE).write_text(excerpt)
    (out / 'training-curve.json').write_text(json.dumps(curve) + '\n')
    metrics = measure(out, held_ids)
    metrics['training'] = {'recipe': asdict(recipe), 'seconds': round(seconds), 'torch': torch.__version__,
                           'parameters': sum(p.numel() for p in model.parameters()),
                           'final_loss_mean_last_50': sum(p['loss'] for p in curve[-50:]) / len(curve[-50:])}
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + '\n')
    plot_curve(out, curve)
    write_card(out)
    print(json.dumps(metrics, indent=2))


def load_checkpoint(out: Path) -> tuple[Glm4MoeForCausalLM, Tokenizer]:
    c = Config.from_hf(json.loads((out / 'config.json').read_text()))
    model = Glm4MoeForCausalLM(c)
    tensors = load_safetensors(out / 'model.safetensors')
    missing = model.load_state_dict(tensors, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    return model.float(), Tokenizer.from_tokenizer_json(out / 'tokenizer.json')


def measure(out: Path, held_ids=None) -> dict:
    """Figures of the stored (bf16-rounded) checkpoint, computed in float32 as the engine does at f32."""
    model, tok = load_checkpoint(out)
    excerpt = (out / EXCERPT_FILE).read_text()
    result = {'excerpt': {'file': EXCERPT_FILE, 'tokens': len(tok.encode(excerpt)), **evaluate(model, tok.encode(excerpt))}}
    if held_ids is not None:
        result['held_out'] = {'chapters': f'every {HELD_OUT_EVERY}th chapter of the KJV (0-based index % {HELD_OUT_EVERY} == {HELD_OUT_EVERY - 1})',
                              'tokens': len(held_ids), **evaluate(model, held_ids)}
    return result


def plot_curve(out: Path, curve):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    steps = [p['step'] for p in curve]

    def smooth(v, k=25):
        return [sum(v[max(0, i - k + 1):i + 1]) / len(v[max(0, i - k + 1):i + 1]) for i in range(len(v))]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, smooth([p['loss'] for p in curve]), label='next token (main model)')
    ax.plot(steps, smooth([p['mtp_loss'] for p in curve]), label='next-next token (MTP layer)')
    ax.set_xlabel('step')
    ax.set_ylabel('training loss (nats, 25-step mean)')
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / 'loss.png')


def write_card(out: Path):
    """The model card, from config.json, reference-metrics.json and (when present) engine-metrics.json."""
    c = json.loads((out / 'config.json').read_text())
    m = json.loads((out / METRICS_FILE).read_text())
    r, ex, held = m['training']['recipe'], m['excerpt'], m['held_out']
    engine_file = out / 'engine-metrics.json'
    e = json.loads(engine_file.read_text()) if engine_file.exists() else None
    pct = lambda x: f'{100 * x:.1f}%'
    lines = [
        '---', 'license: mit', 'language: en', 'library_name: glm-dllama', 'pipeline_tag: text-generation',
        'tags: [glm4_moe, tiny, reference]', '---', '',
        '# glm45-kjv-tiny',
        '',
        f"A {m['training']['parameters'] / 1e6:.2f}M-parameter model in GLM-4.5's layout (`Glm4MoeForCausalLM`, with one MTP layer), "
        'trained from scratch on the King James Bible by `scripts/train-reference/train.py` (see its README for the data, '
        'tokenizer and recipe). It exists so that glm-dllama has real text and real activations to measure on: quantization '
        "quality, the demo (`npm start`), the README's generate/chat/serve examples. It is a toy: it continues text in the "
        'style of the KJV and answers a chat with verse-like sentences, without meaning.',
        '',
        '## Shape',
        '',
        '| | |', '|---|---|',
        f"| hidden | {c['hidden_size']} |",
        f"| layers | {c['num_hidden_layers']} (first {c['first_k_dense_replace']} dense, intermediate {c['intermediate_size']}; then MoE) + 1 MTP layer (`model.layers.{c['num_hidden_layers']}`) |",
        f"| attention | {c['num_attention_heads']} query heads, {c['num_key_value_heads']} KV heads, head dim {c['head_dim']}, q/k/v biases, QK-norm |",
        f"| RoPE | half-split (NeoX) on {int(c['head_dim'] * c['partial_rotary_factor'])} of {c['head_dim']} dims, theta {c['rope_theta']:g} |",
        f"| MoE | {c['n_routed_experts']} routed experts of {c['moe_intermediate_size']}, top {c['num_experts_per_tok']}, sigmoid scores, correction bias (aux-loss-free), normalised weights x {c['routed_scaling_factor']}, {c['n_shared_experts']} shared expert |",
        f"| vocabulary | {c['vocab_size']} (byte-level BPE, GLM-4.5 special tokens from id {REGULAR_TOKENS}) |",
        f"| context | {c['max_position_embeddings']} |",
        '| weights | bf16 (`e_score_correction_bias` f32) |',
        '',
        '## Training',
        '',
        f"{len(json.loads((out / 'training-curve.json').read_text()))} steps of {r['batch']} x {r['seq_len']} tokens "
        f"({m['training']['seconds'] / 60:.0f} minutes on one thread of a shared 2-core machine, PyTorch {m['training']['torch']}); "
        f"AdamW, learning rate {r['lr']:g} after {r['warmup']} warm-up steps, constant until step {r['decay_start'] or int(0.8 * r['steps'])}, "
        f"then linear to {r['min_lr_ratio']:g}x at step {r['steps']}; loss = next token + {r['mtp_weight']:g} x next-next token (MTP); "
        f"seed {r['seed']}. Replay: `/usr/bin/python3 scripts/train-reference/train.py train --steps {r['steps']} --decay-start {r['decay_start']}`.",
        '',
        '![training loss](loss.png)',
        '',
        '## Held-out figures',
        '',
        f"Every {HELD_OUT_EVERY}th chapter is held out ({held['tokens']:,} tokens); `heldout-excerpt.txt` is its first "
        f"{ex['tokens']:,} tokens. Perplexity in windows of {ex['ctx']} tokens, each from an empty cache (as `glm-dllama perplexity --ctx {ex['ctx']}`).",
        '',
        '| text | perplexity (PyTorch, f32 from the bf16 weights) | MTP next-next-token top-1 accuracy |', '|---|---:|---:|',
        f"| held-out split | {held['perplexity']:.4f} | {pct(held['mtp_top1_accuracy'])} |",
        f"| held-out excerpt | {ex['perplexity']:.4f} | {pct(ex['mtp_top1_accuracy'])} |",
        '',
        'The MTP layer at position i predicts token i+2 from the main model\'s state at i and the embedding of token i+1 '
        '(as GLM-4.5 / DeepSeek-V3 define it), so it sees as much text as the main model does at i+1 and its loss runs '
        'close to the main loss; its accuracy is what a one-token speculative draft would achieve before verification. '
        'glm-dllama skips the layer when converting.',
        '',
    ]
    if e:
        f32 = e['engine']['f32']['perplexity']
        lines += [
            'glm-dllama on the excerpt (`node dist/scripts/reference-model.js`; KL and top-1 against the engine at f32):',
            '',
            '| weights | perplexity | change | mean KL (nats) | max KL | top-1 agreement |', '|---|---:|---:|---:|---:|---:|',
            f'| f32 | {f32:.4f} | | | | |',
        ]
        for w in ('f16', 'q80', 'q40'):
            a = e['engine'][w]
            lines.append(f"| {w} | {a['perplexity']:.4f} | {100 * (a['perplexity'] / f32 - 1):+.3f}% | {a['meanKld']:.2e} | {a['maxKld']:.2e} | {100 * a['top1Agreement']:.2f}% |")
        if e.get('llamaCpp'):
            l = e['llamaCpp']
            base = l['F32']['perplexity']
            lines += ['', f"llama.cpp (node-llama-cpp) on GGUFs of the same weights, first {l['tokens']:,} tokens of the excerpt, against the engine at f32:", '',
                      '| GGUF | perplexity | change vs llama.cpp F32 | mean KL (nats) | max KL | top-1 agreement |', '|---|---:|---:|---:|---:|---:|']
            for w in ('F32', 'Q8_0', 'Q4_0'):
                a = l[w]
                lines.append(f"| {w} | {a['perplexity']:.4f} | {100 * (a['perplexity'] / base - 1):+.3f}% | {a['meanKld']:.2e} | {a['maxKld']:.2e} | {100 * a['top1Agreement']:.2f}% |")
        lines += ['', f"Committed beside the checkpoint: `glm45-kjv-tiny.q80.m` and `glm45-kjv-tiny.q40.m` with their `.t` tokenizers."]
    lines += ['', 'Figures are recorded in `reference-metrics.json` (training script) and `engine-metrics.json` (glm-dllama); '
              '`test/reference-model.test.ts` checks them against a fresh conversion.', '',
              'Training text: the King James Version (public domain), from Debian\'s `bible-kjv-text`.', '']
    (out / 'README.md').write_text('\n'.join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('mode', choices=['train', 'time', 'eval', 'finish', 'card'])
    p.add_argument('--out', type=Path, default=DEFAULT_OUT)
    p.add_argument('--steps', type=int, default=Recipe.steps)
    p.add_argument('--decay-start', type=int, default=0, help='step where the learning rate starts to decay (default: 80%% of --steps)')
    p.add_argument('--max-minutes', type=float, help='train: a time box; at 80%% of it, fix --steps and --decay-start from the speed so far')
    p.add_argument('--held-out', action='store_true', help='eval: also the whole held-out split (needs the bible package)')
    a = p.parse_args()
    recipe = Recipe(steps=a.steps, decay_start=a.decay_start)
    if a.mode == 'train':
        train(recipe, a.out, max_minutes=a.max_minutes)
    elif a.mode == 'card':
        write_card(a.out)
    elif a.mode == 'finish':
        finish(a.out)
    elif a.mode == 'time':
        train(recipe, a.out, time_limit=60)
    else:
        setup_torch(recipe)
        held_ids = None
        if a.held_out:
            _, tok = load_checkpoint(a.out)
            _, held = split_corpus(read_bible())
            held_ids = tok.encode(''.join(chapter_text(c) + '\n' for c in held))
        print(json.dumps(measure(a.out, held_ids), indent=2))


if __name__ == '__main__':
    main()
