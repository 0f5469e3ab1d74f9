// One DRAM shared by N AXI4 masters, for the compiled backend (testbench/dram_compiled.py).
//
// The memory is a byte array owned by Python (a NumPy array: loading and reading back DRAM is
// free). Every master port gets its own slave with the cycle behaviour of hdl/axi_ram.py's
// AxiRam, LFSR stalls and read jitter included, so the same settings give the same cycles on
// both backends: 2-deep AR and AW queues, one read and one write burst served at a time per
// port, R beats after `latency` (+ jitter) cycles, B after the last W beat, DECERR beyond the
// memory. In each cycle every port's reads see the memory as it was before any port's writes
// of that cycle (the RAM's read-before-write), ports in index order.
//
// It also checks the master side of the protocol (valid held and payload stable until ready on
// AR/AW/W, INCR bursts of the bus size, no 4 KiB crossing, WLAST on the burst's last beat): a
// violation stops the run with an error naming the port.
//
// Args: "MEM BYTES STATS NPORTS" then per port
//       "PREFIX ID_W ADDR_W DATA_W LATENCY  AR_LFSR AR_THR R.. AW.. W.. B..  JIT_LFSR JIT_BITS"
// MEM: address of the bytes, STATS: address of 4 * NPORTS int64 counters per port
// (read bursts, read beats, write bursts, write beats), or 0.
#include <cstdio>
#include <cstring>
#include <deque>
#include <sstream>
#include <string>
#include <vector>

#include "systolica_harness.h"

namespace {

using systolica::Sim;

enum { AR, R, AW, W, B, CHANNELS };

inline uint64_t get_field(const uint32_t* w, int off, int width) {
  uint64_t v = 0;
  for (int got = 0; got < width;) {
    int word = (off + got) >> 5, bit = (off + got) & 31, n = 32 - bit;
    if (n > width - got) n = width - got;
    uint64_t chunk = (w[word] >> bit) & (n == 32 ? 0xFFFFFFFFull : ((1ull << n) - 1));
    v |= chunk << got;
    got += n;
  }
  return v;
}

inline void set_field(uint32_t* w, int off, int width, uint64_t v) {
  for (int put = 0; put < width;) {
    int word = (off + put) >> 5, bit = (off + put) & 31, n = 32 - bit;
    if (n > width - put) n = width - put;
    uint32_t mask = (n == 32 ? 0xFFFFFFFFu : ((1u << n) - 1)) << bit;
    w[word] = (w[word] & ~mask) | ((uint32_t)(v >> put) << bit & mask);
    put += n;
  }
}

struct Lfsr {
  uint32_t value = 0, threshold = 0;
  bool stalls() const { return threshold && (value & 0xFF) < threshold; }
  void step() {
    uint32_t fb = ((value >> 15) ^ (value >> 13) ^ (value >> 12) ^ (value >> 10)) & 1;
    value = ((value << 1) | fb) & 0xFFFF;
  }
};

struct Burst {
  uint64_t id, addr, len;
};

// The master-side ports of one channel: valid, ready, payload (flat Verilog names).
struct Channel {
  int valid = -1, ready = -1, payload = -1, words = 0;
};

struct Port {
  std::string name;
  int id_w, addr_w, data_w, bytes, low, latency;
  uint64_t depth, word_mask;
  Channel ch[CHANNELS];
  Lfsr stall[CHANNELS], jitter;
  int jitter_bits;
  // AxiRam state
  std::deque<Burst> arq, awq;
  bool r_active = false, r_valid = false, r_last = false, r_bad = false;
  uint64_t r_word = 0, r_left = 0, r_id = 0, r_wait = 0, r_id_out = 0;
  std::vector<uint8_t> r_data;
  bool w_active = false, w_bad = false, b_pending = false, b_valid = false, b_bad = false;
  uint64_t w_word = 0, w_id = 0, w_beats = 0, w_len = 0, b_id = 0;
  // what this cycle drove (ports are written only on change)
  int drove[CHANNELS] = {-1, -1, -1, -1, -1};
  bool payload_dirty[CHANNELS] = {true, true, true, true, true};
  // protocol check: the beat offered and refused last cycle
  bool pending[CHANNELS] = {false, false, false, false, false};
  std::vector<uint32_t> held[CHANNELS];
  std::vector<uint32_t> scratch;
  int64_t* stats = nullptr;
};

class AxiDram : public systolica::Model {
 public:
  AxiDram(uint8_t* mem, uint64_t bytes, int64_t* stats) : mem_(mem), bytes_(bytes), stats_(stats) {}

  bool add_port(Sim* sim, std::istringstream& in, int index) {
    Port p;
    uint32_t lfsr[CHANNELS], thr[CHANNELS];
    if (!(in >> p.name >> p.id_w >> p.addr_w >> p.data_w >> p.latency)) return false;
    for (int c = 0; c < CHANNELS; c++)
      if (!(in >> lfsr[c] >> thr[c])) return false;
    uint32_t jl;
    if (!(in >> jl >> p.jitter_bits)) return false;
    if (p.data_w < 8 || p.data_w % 8 || p.latency < 1) return false;
    for (int c = 0; c < CHANNELS; c++) {
      p.stall[c].value = lfsr[c];
      p.stall[c].threshold = thr[c];
    }
    p.jitter.value = jl;
    p.bytes = p.data_w / 8;
    p.low = 0;
    while ((1 << p.low) < p.bytes) p.low++;
    p.depth = bytes_ / p.bytes;
    p.word_mask = p.addr_w - p.low >= 64 ? ~0ull : (1ull << (p.addr_w - p.low)) - 1;
    static const char* names[CHANNELS] = {"ar", "r", "aw", "w", "b"};
    for (int c = 0; c < CHANNELS; c++) {
      std::string base = p.name + "__" + names[c] + "__";
      p.ch[c].valid = systolica::port_index(sim, (base + "valid").c_str());
      p.ch[c].ready = systolica::port_index(sim, (base + "ready").c_str());
      p.ch[c].payload = systolica::port_index(sim, (base + "payload").c_str());
      if (p.ch[c].valid < 0 || p.ch[c].ready < 0 || p.ch[c].payload < 0) return false;
      p.ch[c].words = (systolica::port_width(sim, p.ch[c].payload) + 31) / 32;
      p.held[c].assign(p.ch[c].words, 0);
    }
    int max_words = 0;
    for (int c = 0; c < CHANNELS; c++)
      if (p.ch[c].words > max_words) max_words = p.ch[c].words;
    p.scratch.assign(max_words, 0);
    p.r_data.assign(p.bytes, 0);
    if (stats_) p.stats = stats_ + 4 * index;
    ports_.push_back(std::move(p));
    return true;
  }

  void drive(Sim* sim, uint64_t) override {
    for (Port& p : ports_) {
      set_bit(sim, p, AR, p.ch[AR].ready, p.arq.size() < 2 && !p.stall[AR].stalls());
      set_bit(sim, p, AW, p.ch[AW].ready, p.awq.size() < 2 && !p.stall[AW].stalls());
      set_bit(sim, p, W, p.ch[W].ready, p.w_active && !p.stall[W].stalls());
      set_bit(sim, p, R, p.ch[R].valid, p.r_valid);
      set_bit(sim, p, B, p.ch[B].valid, p.b_valid);
      if (p.payload_dirty[R]) {
        std::vector<uint32_t>& w = p.scratch;
        std::fill(w.begin(), w.begin() + p.ch[R].words, 0);
        if (p.id_w) set_field(w.data(), 0, p.id_w, p.r_id_out);
        int off = p.id_w;
        if (!p.r_bad)
          for (int i = 0; i < p.bytes; i++) set_field(w.data(), off + 8 * i, 8, p.r_data[i]);
        off += p.data_w;
        set_field(w.data(), off, 2, p.r_bad ? 3 : 0);
        set_field(w.data(), off + 2, 1, p.r_last);
        systolica::port_set(sim, p.ch[R].payload, w.data());
        p.payload_dirty[R] = false;
      }
      if (p.payload_dirty[B]) {
        std::vector<uint32_t>& w = p.scratch;
        std::fill(w.begin(), w.begin() + p.ch[B].words, 0);
        if (p.id_w) set_field(w.data(), 0, p.id_w, p.b_id);
        set_field(w.data(), p.id_w, 2, p.b_bad ? 3 : 0);
        systolica::port_set(sim, p.ch[B].payload, w.data());
        p.payload_dirty[B] = false;
      }
    }
  }

  void sample(Sim* sim, uint64_t cycle) override {
    writes_.clear();
    for (size_t i = 0; i < ports_.size() && error_.empty(); i++) step(sim, ports_[i], cycle);
    for (const Write& w : writes_) {
      uint8_t* dst = mem_ + w.word * w.bytes;
      for (int i = 0; i < w.bytes; i++)
        if (w.strb[i]) dst[i] = w.data[i];
    }
  }

  std::string error() override { return error_; }

 private:
  struct Write {
    uint64_t word;
    int bytes;
    uint8_t strb[128], data[128];
  };

  // Each channel has one bit the slave drives (ready of AR/AW/W, valid of R/B).
  static void set_bit(Sim* sim, Port& p, int c, int port, int v) {
    if (p.drove[c] != v) {
      systolica::port_set_u64(sim, port, v);
      p.drove[c] = v;
    }
  }

  void fail(Port& p, const char* channel, const std::string& what, uint64_t cycle) {
    if (error_.empty())
      error_ = p.name + "." + channel + ": " + what + " (cycle " + std::to_string(cycle) + ")";
  }

  // The protocol check of a master-driven channel; returns whether valid is high.
  bool offered(Sim* sim, Port& p, int c, bool ready, const char* name, uint64_t cycle) {
    bool v = systolica::port_get_u64(sim, p.ch[c].valid) != 0;
    if (p.pending[c]) {
      if (!v) {
        fail(p, name, "valid dropped before ready", cycle);
        return false;
      }
      systolica::port_get(sim, p.ch[c].payload, p.scratch.data());
      if (std::memcmp(p.scratch.data(), p.held[c].data(), p.ch[c].words * 4)) {
        fail(p, name, "payload changed before ready", cycle);
        return false;
      }
    }
    p.pending[c] = v && !ready;
    if (v) {
      systolica::port_get(sim, p.ch[c].payload, p.scratch.data());
      if (p.pending[c]) std::memcpy(p.held[c].data(), p.scratch.data(), p.ch[c].words * 4);
    }
    return v;
  }

  bool address_ok(Port& p, const char* name, const Burst& b, uint64_t size, uint64_t burst,
                  uint64_t cycle) {
    if (burst != 1) {
      fail(p, name, "burst type " + std::to_string(burst) + " (only INCR is served)", cycle);
      return false;
    }
    if (size != (uint64_t)p.low) {
      fail(p, name, "size " + std::to_string(size) + " is not the bus width", cycle);
      return false;
    }
    uint64_t first = b.addr & ~(uint64_t)(p.bytes - 1), end = first + (b.len + 1) * p.bytes - 1;
    if ((first >> 12) != (end >> 12)) {
      fail(p, name, "burst crosses a 4 KiB boundary", cycle);
      return false;
    }
    return true;
  }

  static Burst address(Port& p, uint64_t* size, uint64_t* burst) {
    const uint32_t* w = p.scratch.data();
    Burst b;
    b.id = p.id_w ? get_field(w, 0, p.id_w) : 0;
    int off = p.id_w;
    b.addr = get_field(w, off, p.addr_w);
    off += p.addr_w;
    b.len = get_field(w, off, 8);
    *size = get_field(w, off + 8, 3);
    *burst = get_field(w, off + 11, 2);
    return b;
  }

  void step(Sim* sim, Port& p, uint64_t cycle) {
    const bool st_ar = p.stall[AR].stalls(), st_r = p.stall[R].stalls(),
               st_aw = p.stall[AW].stalls(), st_w = p.stall[W].stalls(),
               st_b = p.stall[B].stalls();
    const uint64_t jit = p.jitter_bits ? (p.jitter.value >> 4) & ((1u << p.jitter_bits) - 1) : 0;
    // --- AR into its queue (pushed at the edge: served from the next cycle)
    bool ar_ready = p.arq.size() < 2 && !st_ar;
    bool ar_push = false;
    Burst ar_burst{};
    if (offered(sim, p, AR, ar_ready, "ar", cycle) && ar_ready) {
      uint64_t size, burst;
      ar_burst = address(p, &size, &burst);
      if (!address_ok(p, "ar", ar_burst, size, burst, cycle)) return;
      ar_push = true;
    }
    // --- the read engine (old state in, new state out)
    bool r_ready = systolica::port_get_u64(sim, p.ch[R].ready) != 0;
    bool issue = p.r_active && p.r_wait == 0 && (!p.r_valid || r_ready) && !st_r;
    if (!p.r_active && !p.arq.empty()) {
      const Burst& b = p.arq.front();
      p.r_active = true;
      p.r_word = (b.addr >> p.low) & p.word_mask;
      p.r_left = b.len + 1;
      p.r_id = b.id;
      p.r_wait = p.latency - 1 + jit;
      p.arq.pop_front();
      if (p.stats) p.stats[0]++;
    } else if (p.r_active && p.r_wait) {
      p.r_wait--;
    }
    if (issue) {
      p.r_valid = true;
      p.r_last = p.r_left == 1;
      p.r_bad = p.r_word >= p.depth;
      if (!p.r_bad) std::memcpy(p.r_data.data(), mem_ + p.r_word * p.bytes, p.bytes);
      p.r_id_out = p.r_id;
      p.r_word = (p.r_word + 1) & p.word_mask;
      if (--p.r_left == 0) p.r_active = false;
      p.payload_dirty[R] = true;
      if (p.stats) p.stats[1]++;
    } else if (r_ready) {
      p.r_valid = false;
    }
    if (ar_push) p.arq.push_back(ar_burst);
    // --- AW into its queue
    bool aw_ready = p.awq.size() < 2 && !st_aw;
    bool aw_push = false;
    Burst aw_burst{};
    if (offered(sim, p, AW, aw_ready, "aw", cycle) && aw_ready) {
      uint64_t size, burst;
      aw_burst = address(p, &size, &burst);
      if (!address_ok(p, "aw", aw_burst, size, burst, cycle)) return;
      aw_push = true;
    }
    // --- B (from the state before this cycle's W beat)
    bool b_ready = systolica::port_get_u64(sim, p.ch[B].ready) != 0;
    const bool b_pending = p.b_pending;
    if (p.b_pending && !p.b_valid && !st_b) {
      p.b_valid = true;
      p.b_bad = p.w_bad;
      p.b_id = p.w_id;
      p.payload_dirty[B] = true;
    } else if (p.b_valid && b_ready) {
      p.b_valid = false;
      p.b_pending = false;
    }
    // --- the write engine
    bool w_ready = p.w_active && !st_w;
    bool w_valid = offered(sim, p, W, w_ready, "w", cycle);
    if (!p.w_active && !b_pending && !p.awq.empty()) {
      const Burst& b = p.awq.front();
      p.w_active = true;
      p.w_word = (b.addr >> p.low) & p.word_mask;
      p.w_bad = false;
      p.w_id = b.id;
      p.w_len = b.len;
      p.w_beats = 0;
      p.awq.pop_front();
      if (p.stats) p.stats[2]++;
    } else if (w_valid && w_ready) {
      const uint32_t* w = p.scratch.data();
      bool good = p.w_word < p.depth;
      bool last = get_field(w, p.data_w + p.bytes, 1) != 0;
      if (last != (p.w_beats == p.w_len)) {
        fail(p, "w", last ? "WLAST before the burst's last beat" : "no WLAST on the burst's "
             "last beat", cycle);
        return;
      }
      if (good) {
        Write wr;
        wr.word = p.w_word;
        wr.bytes = p.bytes;
        for (int i = 0; i < p.bytes; i++) {
          wr.data[i] = (uint8_t)get_field(w, 8 * i, 8);
          wr.strb[i] = (uint8_t)get_field(w, p.data_w + i, 1);
        }
        writes_.push_back(wr);
      }
      p.w_word = (p.w_word + 1) & p.word_mask;
      p.w_bad = p.w_bad || !good;
      p.w_beats++;
      if (last) {
        p.w_active = false;
        p.b_pending = true;
      }
      if (p.stats) p.stats[3]++;
    }
    if (aw_push) p.awq.push_back(aw_burst);
    for (int c = 0; c < CHANNELS; c++) p.stall[c].step();
    p.jitter.step();
  }

  uint8_t* mem_;
  uint64_t bytes_;
  int64_t* stats_;
  std::vector<Port> ports_;
  std::vector<Write> writes_;
  std::string error_;
};

systolica::Model* make_axi_dram(Sim* sim, const char* args) {
  std::istringstream in(args);
  unsigned long long mem, bytes, stats;
  int nports;
  if (!(in >> mem >> bytes >> stats >> nports) || nports < 1 || !mem) return nullptr;
  AxiDram* d = new AxiDram(reinterpret_cast<uint8_t*>(mem), bytes,
                           reinterpret_cast<int64_t*>(stats));
  for (int i = 0; i < nports; i++)
    if (!d->add_port(sim, in, i)) {
      delete d;
      return nullptr;
    }
  return d;
}

}  // namespace

SYSTOLICA_REGISTER_MODEL(axi_dram, make_axi_dram);
