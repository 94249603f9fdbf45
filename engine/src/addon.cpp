// Node binding of the native engine. Every argument is checked here, so a bad call
// becomes a JavaScript exception instead of a crash of the Node process.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "activation-stats.h"
#include "bench.h"
#include "cpu/kernels.h"
#include "metrics.h"
#include "model.h"
#include "net/crypto.h"
#include "quant.h"
#include "device.h"
#include "session.h"

namespace {

glm::FloatType floatTypeArg(const Napi::Value& v) {
  const int t = v.As<Napi::Number>().Int32Value();
  if (t < 0 || t > 3) throw Napi::RangeError::New(v.Env(), "unknown weight type id " + std::to_string(t));
  return static_cast<glm::FloatType>(t);
}

glm::SourceType sourceTypeArg(const Napi::Value& v) {
  const int t = v.As<Napi::Number>().Int32Value();
  if (t < 0 || t > 2) throw Napi::RangeError::New(v.Env(), "unknown source dtype id " + std::to_string(t));
  return static_cast<glm::SourceType>(t);
}

Napi::Uint8Array bytesArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Uint8Array");
  }
  return info[i].As<Napi::Uint8Array>();
}

size_t countArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  const double n = info[i].As<Napi::Number>().DoubleValue();
  if (n < 0 || n != static_cast<double>(static_cast<size_t>(n))) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a non-negative integer");
  }
  return static_cast<size_t>(n);
}

void checkBlocks(Napi::Env env, glm::FloatType type, size_t elements) {
  if ((type == glm::FloatType::Q40 || type == glm::FloatType::Q80) && elements % glm::kBlockSize != 0) {
    throw Napi::RangeError::New(env, "element count " + std::to_string(elements) + " is not a multiple of 32");
  }
}

// Encodes on a libuv worker thread, split over `threads` native threads by whole blocks.
class EncodeWorker : public Napi::AsyncWorker {
 public:
  EncodeWorker(Napi::Env env, Napi::Uint8Array src, glm::SourceType srcType, Napi::Uint8Array dst,
               glm::FloatType dstType, size_t elements, unsigned threads, Napi::Float32Array importance)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        srcRef_(Napi::Persistent(src)),
        dstRef_(Napi::Persistent(dst)),
        src_(src.Data()),
        dst_(dst.Data()),
        srcType_(srcType),
        dstType_(dstType),
        elements_(elements),
        threads_(threads) {
    if (!importance.IsEmpty()) {
      importanceRef_ = Napi::Persistent(importance);
      importance_ = importance.Data();
      cols_ = importance.ElementLength();
    }
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    if (importance_) return encodeWeighted();
    const size_t blocks = (elements_ + glm::kBlockSize - 1) / glm::kBlockSize;
    const size_t parts = std::max<size_t>(1, std::min<size_t>(threads_, blocks / 64 + 1));
    const size_t srcBytes = glm::sourceElementBytes(srcType_);
    std::vector<size_t> nonFinite(parts, 0);
    auto run = [&](size_t part) {
      const size_t first = blocks * part / parts * glm::kBlockSize;
      const size_t last = std::min(elements_, blocks * (part + 1) / parts * glm::kBlockSize);
      if (last > first) {
        nonFinite[part] = glm::encodeSource(srcType_, src_ + first * srcBytes, dstType_,
                                            dst_ + glm::encodedBytes(dstType_, first), last - first);
      }
    };
    std::vector<std::thread> pool;
    for (size_t p = 1; p < parts; p++) pool.emplace_back(run, p);
    run(0);
    for (auto& t : pool) t.join();
    for (size_t count : nonFinite) nonFinite_ += count;
  }

  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), static_cast<double>(nonFinite_))); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  // The importance-weighted q40 search, split by whole rows (each row's weights need its mean square).
  void encodeWeighted() {
    const size_t rows = elements_ / cols_;
    const size_t parts = std::max<size_t>(1, std::min<size_t>(threads_, rows));
    const size_t srcBytes = glm::sourceElementBytes(srcType_), rowBytes = glm::encodedBytes(glm::FloatType::Q40, cols_);
    std::vector<size_t> nonFinite(parts, 0);
    auto run = [&](size_t part) {
      const size_t first = rows * part / parts, last = rows * (part + 1) / parts;
      nonFinite[part] = glm::encodeSourceQ40Weighted(srcType_, src_ + first * cols_ * srcBytes, dst_ + first * rowBytes, last - first, cols_, importance_);
    };
    std::vector<std::thread> pool;
    for (size_t p = 1; p < parts; p++) pool.emplace_back(run, p);
    run(0);
    for (auto& t : pool) t.join();
    for (size_t count : nonFinite) nonFinite_ += count;
  }

  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Uint8Array> srcRef_;
  Napi::Reference<Napi::Uint8Array> dstRef_;
  const uint8_t* src_;
  uint8_t* dst_;
  glm::SourceType srcType_;
  glm::FloatType dstType_;
  size_t elements_;
  unsigned threads_;
  Napi::Reference<Napi::Float32Array> importanceRef_;
  const float* importance_ = nullptr;
  size_t cols_ = 0;
  size_t nonFinite_ = 0;
};

// encode(src, srcType, dst, dstType, elements, threads, importance?) -> Promise<count of NaN and infinite values>
// importance (q40 only): a Float32Array of one row's length, each value finite and >= 0; selects the
// importance-weighted search (quant.h) over rows of that length.
Napi::Value Encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array src = bytesArg(info, 0, "src");
  const glm::SourceType srcType = sourceTypeArg(info[1]);
  Napi::Uint8Array dst = bytesArg(info, 2, "dst");
  const glm::FloatType dstType = floatTypeArg(info[3]);
  const size_t elements = countArg(info, 4, "elements");
  const size_t threads = std::max<size_t>(1, countArg(info, 5, "threads"));
  checkBlocks(env, dstType, elements);
  if (src.ByteLength() < elements * glm::sourceElementBytes(srcType)) {
    throw Napi::RangeError::New(env, "src holds fewer than " + std::to_string(elements) + " elements");
  }
  if (dst.ByteLength() < glm::encodedBytes(dstType, elements)) {
    throw Napi::RangeError::New(env, "dst is smaller than the encoded size");
  }
  Napi::Float32Array importance;
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    if (!info[6].IsTypedArray() || info[6].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw Napi::TypeError::New(env, "importance must be a Float32Array");
    }
    importance = info[6].As<Napi::Float32Array>();
    const size_t cols = importance.ElementLength();
    if (dstType != glm::FloatType::Q40) throw Napi::RangeError::New(env, "importance weights apply to q40 only");
    if (cols == 0 || cols % glm::kBlockSize != 0 || elements % cols != 0) {
      throw Napi::RangeError::New(env, "importance length " + std::to_string(cols) + " must be a multiple of 32 dividing the element count " + std::to_string(elements));
    }
    for (size_t j = 0; j < cols; j++) {
      if (!(importance.Data()[j] >= 0.0f) || !std::isfinite(importance.Data()[j])) {
        throw Napi::RangeError::New(env, "importance[" + std::to_string(j) + "] = " + std::to_string(importance.Data()[j]) + " is not a finite value >= 0");
      }
    }
  }
  auto* worker = new EncodeWorker(env, src, srcType, dst, dstType, elements, static_cast<unsigned>(threads), importance);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// decode(src, type, elements) -> Float32Array
Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array src = bytesArg(info, 0, "src");
  const glm::FloatType type = floatTypeArg(info[1]);
  const size_t elements = countArg(info, 2, "elements");
  checkBlocks(env, type, elements);
  if (src.ByteLength() < glm::encodedBytes(type, elements)) {
    throw Napi::RangeError::New(env, "src is smaller than " + std::to_string(elements) + " encoded elements");
  }
  Napi::Float32Array out = Napi::Float32Array::New(env, elements);
  glm::decodeToF32(type, src.Data(), out.Data(), elements);
  return out;
}

Napi::Value F32ToF16(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), glm::f32ToF16(info[0].As<Napi::Number>().FloatValue()));
}

Napi::Value F16ToF32(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), glm::f16ToF32(static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value())));
}

// hmacSha256(key, data) -> Uint8Array(32): the handshake's MAC (net/crypto.h), for the tests against Node's crypto.
Napi::Value HmacSha256(const Napi::CallbackInfo& info) {
  Napi::Uint8Array key = bytesArg(info, 0, "key");
  Napi::Uint8Array data = bytesArg(info, 1, "data");
  const glm::Digest d = glm::hmacSha256(std::string(reinterpret_cast<const char*>(key.Data()), key.ByteLength()), data.Data(), data.ByteLength());
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), d.size());
  std::copy(d.begin(), d.end(), out.Data());
  return out;
}

// setSimd(enabled) -> name of the encoder path now in use ("avx2" or "scalar")
Napi::Value SetSimd(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), glm::setSimdEnabled(info[0].ToBoolean().Value()));
}

// { workers?: string[], sync?: 'q80' | 'f32', secret?: string, experts?: 'slice' | 'place', timeoutMs?: number }
glm::DistributedOptions distributedArg(Napi::Env env, const Napi::Value& value) {
  glm::DistributedOptions d;
  if (value.IsUndefined() || value.IsNull()) return d;
  if (!value.IsObject()) throw Napi::TypeError::New(env, "distributed options must be an object");
  Napi::Object o = value.As<Napi::Object>();
  if (o.Has("workers") && !o.Get("workers").IsUndefined()) {
    if (!o.Get("workers").IsArray()) throw Napi::TypeError::New(env, "workers must be an array of host:port strings");
    Napi::Array list = o.Get("workers").As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      if (!list.Get(i).IsString()) throw Napi::TypeError::New(env, "workers must be an array of host:port strings");
      d.workers.push_back(list.Get(i).As<Napi::String>().Utf8Value());
    }
  }
  auto text = [&](const char* key, const std::string& fallback) {
    const Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return fallback;
    if (!v.IsString()) throw Napi::TypeError::New(env, std::string(key) + " must be a string");
    return v.As<Napi::String>().Utf8Value();
  };
  const std::string sync = text("sync", "q80"), experts = text("experts", "slice");
  if (sync != "q80" && sync != "f32") throw Napi::RangeError::New(env, "sync must be q80 or f32, got " + sync);
  if (experts != "slice" && experts != "place") throw Napi::RangeError::New(env, "experts must be slice or place, got " + experts);
  d.sync = sync == "f32" ? glm::FloatType::F32 : glm::FloatType::Q80;
  d.experts = experts == "place" ? glm::ExpertSplit::Place : glm::ExpertSplit::Slice;
  d.secret = text("secret", "");
  if (o.Get("timeoutMs").IsNumber()) d.timeoutMs = std::max(1, o.Get("timeoutMs").As<Napi::Number>().Int32Value());
  return d;
}

Napi::Array trafficArray(Napi::Env env, const std::vector<glm::TokenTraffic>& nodes) {
  Napi::Array a = Napi::Array::New(env, nodes.size());
  for (size_t k = 0; k < nodes.size(); k++) {
    Napi::Object node = Napi::Object::New(env);
    node.Set("sent", nodes[k].sent);
    node.Set("received", nodes[k].received);
    a.Set(k, node);
  }
  return a;
}

// The device (cpu, vulkan, vulkan:N, auto; default auto) and --cpu-experts (all or a count; default none)
// as strings, resolved to a placement; the line saying why auto fell back to the CPU goes to stderr.
glm::Placement placementArg(Napi::Env env, const Napi::Value& device, const Napi::Value& cpuExperts) {
  try {
    glm::Placement p;
    if (cpuExperts.IsString()) p.cpuExpertLayers = glm::parseCpuExperts(cpuExperts.As<Napi::String>().Utf8Value());
    const glm::DeviceChoice choice = glm::parseDevice(device.IsString() ? device.As<Napi::String>().Utf8Value() : "auto");
    p.device = glm::resolveDevice(choice, [](const std::string& line) { std::fprintf(stderr, "glm-engine: %s\n", line.c_str()); });
    return p;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// A loaded model and its inference session: new Engine(path, threads, maxSeqLen, kvF16, distributed?, device?, cpuExperts?, mtp?, slots?).
class Engine : public Napi::ObjectWrap<Engine> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod("evaluate", &Engine::Evaluate), InstanceMethod("evaluateAsync", &Engine::EvaluateAsync),
                        InstanceMethod("reset", &Engine::Reset), InstanceMethod("evaluateSlotsAsync", &Engine::EvaluateSlotsAsync),
                        InstanceMethod("slotPosition", &Engine::SlotPosition), InstanceMethod("rewindSlot", &Engine::RewindSlot),
                        InstanceAccessor("slots", &Engine::Slots, nullptr),
                        InstanceMethod("perplexity", &Engine::Perplexity),
                        InstanceMethod("rewind", &Engine::Rewind), InstanceAccessor("position", &Engine::Position, nullptr),
                        InstanceAccessor("contextLength", &Engine::ContextLength, nullptr),
                        InstanceAccessor("threads", &Engine::Threads, nullptr), InstanceAccessor("header", &Engine::Header, nullptr),
                        InstanceAccessor("traffic", &Engine::Traffic, nullptr), InstanceMethod("close", &Engine::Close),
                        InstanceMethod("draft", &Engine::Draft), InstanceMethod("draftAsync", &Engine::DraftAsync),
                        InstanceMethod("draftGreedyAsync", &Engine::DraftGreedyAsync),
                        InstanceAccessor("mtpPosition", &Engine::MtpPosition, nullptr), InstanceAccessor("hasMtp", &Engine::HasMtp, nullptr),
                        InstanceMethod("collectActivations", &Engine::CollectActivations),
                        InstanceMethod("activationStats", &Engine::ActivationStatsOf)});
  }

  explicit Engine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Engine>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "Engine(path, threads, maxSeqLen): path must be a string");
    const int threads = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 1;
    const int maxSeqLen = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 0;
    const glm::FloatType kvType = info.Length() > 3 && info[3].ToBoolean().Value() ? glm::FloatType::F16 : glm::FloatType::F32;
    const glm::DistributedOptions distributed = distributedArg(env, info.Length() > 4 ? info[4] : env.Undefined());
    const glm::Placement placement =
        placementArg(env, info.Length() > 5 ? info[5] : env.Undefined(), info.Length() > 6 ? info[6] : env.Undefined());
    // mtp: true loads the MTP layer (an error when the file has none), "auto" loads it when present.
    const bool autoMtp = info.Length() > 7 && info[7].IsString() && info[7].As<Napi::String>().Utf8Value() == "auto";
    const bool askMtp = info.Length() > 7 && !info[7].IsString() && info[7].ToBoolean().Value();
    const int slots = info.Length() > 8 && info[8].IsNumber() ? info[8].As<Napi::Number>().Int32Value() : 1;
    try {
      model_ = std::make_unique<glm::Model>(info[0].As<Napi::String>().Utf8Value());
      const bool mtp = askMtp || (autoMtp && model_->header().mtpLayers > 0);
      session_ = std::make_unique<glm::Session>(*model_, std::max(1, threads), maxSeqLen, kvType, distributed, placement, mtp, slots);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

 private:
  // What the engine's workers share: the promise, the engine kept alive and marked busy until the work
  // ends, and logits resolved as a Float32Array; a native exception rejects the promise.
  class EngineWorker : public Napi::AsyncWorker {
   public:
    EngineWorker(Napi::Env env, Engine* engine, size_t logits)
        : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), self_(Napi::Persistent(engine->Value())), engine_(engine), logits_(logits) {}
    Napi::Promise Promise() { return deferred_.Promise(); }
    void Execute() override {
      try {
        run(*engine_->session_);
      } catch (const std::exception& e) {
        SetError(e.what());
      }
    }
    void OnOK() override {
      engine_->busy_ = false;
      Napi::Float32Array out = Napi::Float32Array::New(Env(), logits_.size());
      std::copy(logits_.begin(), logits_.end(), out.Data());
      deferred_.Resolve(out);
    }
    void OnError(const Napi::Error& e) override {
      engine_->busy_ = false;
      deferred_.Reject(e.Value());
    }

   protected:
    virtual void run(glm::Session& session) = 0;
    Napi::Promise::Deferred deferred_;
    Napi::ObjectReference self_;  // keeps the engine alive while the worker runs
    Engine* engine_;
    std::vector<float> logits_;
  };

  // Runs one evaluation (or an MTP draft) off the JavaScript thread; the session is busy until it settles.
  class EvaluateWorker : public EngineWorker {
   public:
    // greedyDrafts > 0: Session::draftGreedy with that many drafts below vocabLimit, resolving to their ids.
    EvaluateWorker(Napi::Env env, Engine* engine, std::vector<int32_t> tokens, bool all, bool draft = false, int greedyDrafts = 0, int vocabLimit = 0)
        : EngineWorker(env, engine, ((all && !draft) ? tokens.size() : 1) * static_cast<size_t>(engine->model_->header().vocabSize)),
          tokens_(std::move(tokens)),
          all_(all && !draft),
          draft_(draft),
          greedyDrafts_(greedyDrafts),
          vocabLimit_(vocabLimit),
          drafts_(static_cast<size_t>(greedyDrafts)) {}
    void OnOK() override {
      if (greedyDrafts_ == 0) return EngineWorker::OnOK();
      engine_->busy_ = false;
      Napi::Int32Array ids = Napi::Int32Array::New(Env(), drafts_.size());
      std::copy(drafts_.begin(), drafts_.end(), ids.Data());
      deferred_.Resolve(ids);
    }

   private:
    void run(glm::Session& session) override {
      const int n = static_cast<int>(tokens_.size());
      if (greedyDrafts_ > 0) {
        session.draftGreedy(tokens_.data(), n, greedyDrafts_, vocabLimit_, drafts_.data());
      } else if (draft_) {
        session.draft(tokens_.data(), n, logits_.data());
      } else {
        session.evaluate(tokens_.data(), n, logits_.data(), all_);
      }
    }
    std::vector<int32_t> tokens_;
    bool all_, draft_;
    int greedyDrafts_, vocabLimit_;
    std::vector<int32_t> drafts_;
  };

  // Runs one batched step (Session::evaluateSlots) off the JavaScript thread.
  class EvaluateSlotsWorker : public EngineWorker {
   public:
    EvaluateSlotsWorker(Napi::Env env, Engine* engine, std::vector<glm::Session::SlotTokens> entries, std::vector<std::vector<int32_t>> tokens,
                        size_t rows)
        : EngineWorker(env, engine, rows * static_cast<size_t>(engine->model_->header().vocabSize)), entries_(std::move(entries)), tokens_(std::move(tokens)) {
      for (size_t i = 0; i < entries_.size(); i++) entries_[i].tokens = tokens_[i].data();
    }

   private:
    void run(glm::Session& session) override { session.evaluateSlots(entries_, logits_.data()); }
    std::vector<glm::Session::SlotTokens> entries_;
    std::vector<std::vector<int32_t>> tokens_;
  };

  glm::Session& session(Napi::Env env) {
    if (!session_) throw Napi::Error::New(env, "the model was closed");
    return *session_;
  }

  // close(): ends the session now (a cluster's workers go back to listening) and frees the model.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (busy_) throw Napi::Error::New(info.Env(), "the model is busy with another evaluation; await it first");
    session_.reset();
    model_.reset();
    return info.Env().Undefined();
  }

  Napi::Int32Array tokensArg(const Napi::CallbackInfo& info, const char* call) {
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      throw Napi::TypeError::New(info.Env(), std::string(call) + "(tokens, allLogits): tokens must be an Int32Array");
    }
    if (busy_) throw Napi::Error::New(info.Env(), "the model is busy with another evaluation; await it first");
    session(info.Env());
    return info[0].As<Napi::Int32Array>();
  }

  // evaluate(tokens: Int32Array, allLogits: boolean) -> Float32Array of n x vocab (or vocab) logits
  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Int32Array tokens = tokensArg(info, "evaluate");
    const bool all = info.Length() > 1 && info[1].ToBoolean().Value();
    const int n = static_cast<int>(tokens.ElementLength());
    const size_t vocab = static_cast<size_t>(model_->header().vocabSize);
    Napi::Float32Array logits = Napi::Float32Array::New(env, (all ? n : 1) * vocab);
    try {
      session(env).evaluate(tokens.Data(), n, logits.Data(), all);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    return logits;
  }

  // evaluateAsync(tokens, allLogits) -> Promise<Float32Array>: the same on a worker thread.
  Napi::Value EvaluateAsync(const Napi::CallbackInfo& info) {
    Napi::Int32Array tokens = tokensArg(info, "evaluateAsync");
    const bool all = info.Length() > 1 && info[1].ToBoolean().Value();
    auto* worker = new EvaluateWorker(info.Env(), this, std::vector<int32_t>(tokens.Data(), tokens.Data() + tokens.ElementLength()), all);
    busy_ = true;
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }

  // draft(tokens: Int32Array) -> Float32Array of the MTP layer's vocab logits for its last row (Session::draft)
  Napi::Value Draft(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Int32Array tokens = tokensArg(info, "draft");
    Napi::Float32Array logits = Napi::Float32Array::New(env, static_cast<size_t>(model_->header().vocabSize));
    try {
      session(env).draft(tokens.Data(), static_cast<int>(tokens.ElementLength()), logits.Data());
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    return logits;
  }

  // draftAsync(tokens) -> Promise<Float32Array>: the same on a worker thread.
  Napi::Value DraftAsync(const Napi::CallbackInfo& info) {
    Napi::Int32Array tokens = tokensArg(info, "draftAsync");
    auto* worker = new EvaluateWorker(info.Env(), this, std::vector<int32_t>(tokens.Data(), tokens.Data() + tokens.ElementLength()), false, true);
    busy_ = true;
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }

  // evaluateSlotsAsync([{slot, tokens: Int32Array, allLogits}]) -> Promise<Float32Array>: one batched step;
  // the entries' logits one after the other (n x vocab for allLogits, else vocab).
  Napi::Value EvaluateSlotsAsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* usage = "evaluateSlotsAsync(entries): entries must be an array of {slot: number, tokens: Int32Array, allLogits: boolean}";
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, usage);
    if (busy_) throw Napi::Error::New(env, "the model is busy with another evaluation; await it first");
    session(env);
    Napi::Array list = info[0].As<Napi::Array>();
    std::vector<glm::Session::SlotTokens> entries;
    std::vector<std::vector<int32_t>> tokens;
    size_t rows = 0;
    for (uint32_t i = 0; i < list.Length(); i++) {
      if (!list.Get(i).IsObject()) throw Napi::TypeError::New(env, usage);
      Napi::Object o = list.Get(i).As<Napi::Object>();
      const Napi::Value ids = o.Get("tokens");
      if (!o.Get("slot").IsNumber() || !ids.IsTypedArray() || ids.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
        throw Napi::TypeError::New(env, usage);
      }
      Napi::Int32Array t = ids.As<Napi::Int32Array>();
      tokens.emplace_back(t.Data(), t.Data() + t.ElementLength());
      const bool all = o.Get("allLogits").ToBoolean().Value();
      entries.push_back({o.Get("slot").As<Napi::Number>().Int32Value(), nullptr, static_cast<int>(t.ElementLength()), all});
      rows += all ? t.ElementLength() : 1;
    }
    auto* worker = new EvaluateSlotsWorker(env, this, std::move(entries), std::move(tokens), rows);
    busy_ = true;
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }

  // draftGreedyAsync(tokens, k, vocabLimit) -> Promise<Int32Array> of k greedy drafts (Session::draftGreedy)
  Napi::Value DraftGreedyAsync(const Napi::CallbackInfo& info) {
    Napi::Int32Array tokens = tokensArg(info, "draftGreedyAsync");
    if (info.Length() < 3 || !info[1].IsNumber() || !info[2].IsNumber()) throw Napi::TypeError::New(info.Env(), "draftGreedyAsync(tokens, k, vocabLimit)");
    const int k = info[1].As<Napi::Number>().Int32Value(), limit = info[2].As<Napi::Number>().Int32Value();
    if (k < 1 || k > 64) throw Napi::RangeError::New(info.Env(), "draftGreedyAsync: k must be within 1..64");
    auto* worker = new EvaluateWorker(info.Env(), this, std::vector<int32_t>(tokens.Data(), tokens.Data() + tokens.ElementLength()), false, true, k, limit);
    busy_ = true;
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  }

  Napi::Value SlotPosition(const Napi::CallbackInfo& info) {
    try {
      return Napi::Number::New(info.Env(), session(info.Env()).slotPosition(info[0].As<Napi::Number>().Int32Value()));
    } catch (const std::invalid_argument& e) {
      throw Napi::RangeError::New(info.Env(), e.what());
    }
  }

  Napi::Value RewindSlot(const Napi::CallbackInfo& info) {
    if (busy_) throw Napi::Error::New(info.Env(), "the model is busy with another evaluation; await it first");
    try {
      session(info.Env()).rewindSlot(info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value());
    } catch (const std::invalid_argument& e) {
      throw Napi::RangeError::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  Napi::Value Slots(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), session(info.Env()).slots()); }

  // perplexity(ids: Int32Array, contextLength) -> [{start, tokens, nll}]
  Napi::Value Perplexity(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      throw Napi::TypeError::New(env, "perplexity(ids, contextLength): ids must be an Int32Array");
    }
    if (busy_) throw Napi::Error::New(env, "the model is busy with another evaluation; await it first");
    Napi::Int32Array ids = info[0].As<Napi::Int32Array>();
    std::vector<glm::ChunkNll> chunks;
    try {
      chunks = glm::chunkPerplexity(session(env), std::vector<int32_t>(ids.Data(), ids.Data() + ids.ElementLength()),
                                    info[1].As<Napi::Number>().Int32Value());
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    Napi::Array out = Napi::Array::New(env, chunks.size());
    for (size_t i = 0; i < chunks.size(); i++) {
      Napi::Object c = Napi::Object::New(env);
      c.Set("start", chunks[i].start);
      c.Set("tokens", chunks[i].tokens);
      c.Set("nll", chunks[i].nll);
      out.Set(i, c);
    }
    return out;
  }

  // collectActivations(): every later evaluation adds its matmul inputs to fresh statistics (imatrix).
  Napi::Value CollectActivations(const Napi::CallbackInfo& info) {
    if (busy_) throw Napi::Error::New(info.Env(), "the model is busy with another evaluation; await it first");
    glm::Session& s = session(info.Env());
    auto stats = std::make_unique<glm::ActivationStats>(s.weights());
    try {
      s.observe(stats.get());
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    stats_ = std::move(stats);
    return info.Env().Undefined();
  }

  // activationStats() -> [{name, sumSquares: Float64Array, tokens}] in the model's tensor order.
  Napi::Value ActivationStatsOf(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (busy_) throw Napi::Error::New(env, "the model is busy with another evaluation; await it first");
    if (!stats_) throw Napi::Error::New(env, "activation statistics are not being collected; call collectActivations() first");
    const auto& entries = stats_->entries();
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", entries[i].name);
      Napi::Float64Array sums = Napi::Float64Array::New(env, entries[i].sumSquares.size());
      std::copy(entries[i].sumSquares.begin(), entries[i].sumSquares.end(), sums.Data());
      o.Set("sumSquares", sums);
      o.Set("tokens", static_cast<double>(entries[i].tokens));
      out.Set(i, o);
    }
    return out;
  }

  Napi::Value Reset(const Napi::CallbackInfo& info) {
    if (busy_) throw Napi::Error::New(info.Env(), "the model is busy with another evaluation; await it first");
    session(info.Env()).reset();
    return info.Env().Undefined();
  }

  Napi::Value Rewind(const Napi::CallbackInfo& info) {
    if (busy_) throw Napi::Error::New(info.Env(), "the model is busy with another evaluation; await it first");
    try {
      session(info.Env()).rewind(info[0].As<Napi::Number>().Int32Value());
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  Napi::Value Position(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), session(info.Env()).position()); }
  Napi::Value ContextLength(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), session(info.Env()).maxSeqLen()); }
  Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), session(info.Env()).threads()); }
  Napi::Value MtpPosition(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), session(info.Env()).mtpPosition()); }
  Napi::Value HasMtp(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), session(info.Env()).hasMtp()); }

  // Bytes each node has sent and received so far ([] on one node); node 0 is this process.
  Napi::Value Traffic(const Napi::CallbackInfo& info) {
    std::vector<glm::TokenTraffic> nodes;
    if (const glm::Cluster* cluster = session(info.Env()).cluster()) {
      for (const glm::NodeTraffic& t : cluster->traffic()) nodes.push_back({static_cast<double>(t.sent), static_cast<double>(t.received)});
    }
    return trafficArray(info.Env(), nodes);
  }

  Napi::Value Header(const Napi::CallbackInfo& info) {
    session(info.Env());
    const glm::ModelHeader& h = model_->header();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("archType", static_cast<int>(h.arch));
    o.Set("weightType", static_cast<int>(h.weightType));
    o.Set("dim", h.dim);
    o.Set("nLayers", h.nLayers);
    o.Set("nHeads", h.nHeads);
    o.Set("nKvHeads", h.nKvHeads);
    o.Set("headDim", h.headDim);
    o.Set("vocabSize", h.vocabSize);
    o.Set("maxSeqLen", h.maxSeqLen);
    o.Set("nExperts", h.nExperts);
    o.Set("nActiveExperts", h.nActiveExperts);
    o.Set("mtpLayers", h.mtpLayers);
    return o;
  }

  std::unique_ptr<glm::Model> model_;
  std::unique_ptr<glm::Session> session_;
  std::unique_ptr<glm::ActivationStats> stats_;  // while collecting an imatrix
  bool busy_ = false;
};

Napi::Value KernelPath(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), glm::kernelPath()); }

// bench(path, {promptTokens?, genTokens?, threads, repeat, kvCache, distributed?, device?, cpuExperts?}) -> {prefillTps: number[], decodeTps: number[],
// peakRssBytes, threads, promptTokens, genTokens, contextLength, fittedToContext, prefillTraffic, decodeTraffic: [{sent, received}] bytes per token per node}
Napi::Value Bench(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsObject()) throw Napi::TypeError::New(env, "bench(path, options)");
  Napi::Object o = info[1].As<Napi::Object>();
  glm::BenchOptions options;
  if (o.Get("promptTokens").IsNumber()) options.promptTokens = o.Get("promptTokens").As<Napi::Number>().Int32Value();
  if (o.Get("genTokens").IsNumber()) options.genTokens = o.Get("genTokens").As<Napi::Number>().Int32Value();
  options.threads = o.Get("threads").As<Napi::Number>().Int32Value();
  options.repeat = o.Get("repeat").As<Napi::Number>().Int32Value();
  options.kvType = o.Get("kvCache").ToString().Utf8Value() == "f16" ? glm::FloatType::F16 : glm::FloatType::F32;
  options.distributed = distributedArg(env, o.Get("distributed"));
  options.placement = placementArg(env, o.Get("device"), o.Get("cpuExperts"));
  glm::BenchResult r;
  try {
    const glm::Model model(info[0].As<Napi::String>().Utf8Value());
    r = glm::runBench(model, options);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  auto list = [&](const std::vector<double>& v) {
    Napi::Array a = Napi::Array::New(env, v.size());
    for (size_t i = 0; i < v.size(); i++) a.Set(i, v[i]);
    return a;
  };
  Napi::Object out = Napi::Object::New(env);
  out.Set("prefillTps", list(r.prefillTps));
  out.Set("decodeTps", list(r.decodeTps));
  out.Set("peakRssBytes", static_cast<double>(r.peakRssBytes));
  out.Set("threads", r.threads);
  out.Set("promptTokens", r.promptTokens);
  out.Set("genTokens", r.genTokens);
  out.Set("contextLength", r.contextLength);
  out.Set("fittedToContext", r.fittedToContext);
  out.Set("prefillTraffic", trafficArray(env, r.prefillTraffic));
  out.Set("decodeTraffic", trafficArray(env, r.decodeTraffic));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", Engine::Define(env));
  exports.Set("kernelPath", Napi::Function::New(env, KernelPath));
  exports.Set("bench", Napi::Function::New(env, Bench));
  exports.Set("setSimd", Napi::Function::New(env, SetSimd));
  exports.Set("hmacSha256", Napi::Function::New(env, HmacSha256));
  exports.Set("encode", Napi::Function::New(env, Encode));
  exports.Set("decode", Napi::Function::New(env, Decode));
  exports.Set("f32ToF16", Napi::Function::New(env, F32ToF16));
  exports.Set("f16ToF32", Napi::Function::New(env, F16ToF32));
  return exports;
}

}  // namespace

NODE_API_MODULE(glm_engine, Init)
