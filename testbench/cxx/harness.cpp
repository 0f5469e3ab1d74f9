// systolica compiled-simulation harness: generic stream sources/sinks and a cycle loop around a
// Verilated DUT. Nothing here depends on the DUT: the generated glue (dut_glue.cpp) provides the
// port table and the model's lifecycle. Python drives it through the C functions at the bottom
// (see systolica/testbench/compiled.py); extra C++ models plug in through systolica_harness.h.
//
// Cycle semantics (identical to systolica.testbench.streams under the Amaranth simulator):
// in cycle c, sources/sinks/models drive inputs, the DUT settles, handshakes are sampled, then
// the clock edge ends cycle c. A source offers its next payload in cycle c unless its stall mask
// marks c; once offered, it is held until accepted. A sink is ready in cycle c unless its mask
// marks c. Stall masks and the recorded acceptance cycles count from the cycle in which the
// stream was added (0 for a fresh simulation), like StreamSource.send's. `run` returns at the start of the first cycle in which every source and sink is done,
// every model is done and the optional wait port reads 0 -- the cycle count is then the number of
// clock edges simulated, like run_simulation's watchdog count.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "systolica_harness.h"

namespace systolica {
namespace glue {
struct PortDesc {
  const char* name;
  int is_output;
  int width;
  void (*set)(void* dut, const uint32_t* words);
  void (*get)(void* dut, uint32_t* words);
};
extern const PortDesc ports[];
extern const int num_ports;
struct MemoryDesc {
  const char* name;
  int width;
  int depth;
  int elem_bytes;      // bytes per word in the model (Verilator's CData .. VlWide<N>)
  void* (*ptr)(void* dut);
};
extern const MemoryDesc memories[];
extern const int num_memories;
void* dut_new(bool trace);
void dut_delete(void* dut);
void dut_eval(void* dut);
void dut_clock(void* dut, int level);
bool trace_supported();
bool trace_open(void* dut, const char* path);
void trace_dump(void* dut, uint64_t time_ps);
void trace_close(void* dut);
}  // namespace glue

static const uint64_t kPeriodPs = 10000;  // 100 MHz, as run_simulation's CLOCK_PERIOD

static inline int words_of(int width) { return (width + 31) / 32; }

// What sources and sinks have in common: their ports and their stall mask.
struct StreamEnd {
  int payload, valid, ready, words;
  const uint8_t* mask;
  int64_t mask_len;
  bool mask_more;       // the mask continues past mask_len: ask Python for more (sys_run -> 3)
  uint64_t base;        // the cycle the stream was added: its cycle 0
  bool stalls(uint64_t cycle) const {
    return (int64_t)(cycle - base) < mask_len && mask[cycle - base];
  }
  bool mask_ended(uint64_t cycle) const {
    return mask_more && (int64_t)(cycle - base) >= mask_len;
  }
};

struct Source : StreamEnd {
  const uint32_t* data;
  int64_t n;
  int64_t* accept;
  int64_t next;
  bool holding;
  int cur_valid;
};

struct Sink : StreamEnd {
  uint32_t* data;
  int64_t count;
  int64_t* cycles;
  int64_t received;
  bool cur_ready;
  bool pending;
  std::vector<uint32_t> held;
  std::string name;
};

struct Sim {
  void* dut;
  uint64_t cycle;
  bool dirty;
  bool tracing;
  std::vector<Source> sources;
  std::vector<Sink> sinks;
  std::vector<Model*> models;
  bool models_driven;   // the models have driven the current cycle's inputs
  std::string error;
  std::vector<uint32_t> scratch;
};

static std::map<std::string, ModelFactory>& registry() {
  static std::map<std::string, ModelFactory> r;
  return r;
}

bool register_model(const char* name, ModelFactory factory) {
  registry()[name] = factory;
  return true;
}

int port_index(Sim*, const char* name) {
  for (int i = 0; i < glue::num_ports; i++)
    if (!std::strcmp(glue::ports[i].name, name)) return i;
  return -1;
}
int port_width(Sim*, int index) { return glue::ports[index].width; }
void port_set(Sim* sim, int index, const uint32_t* words) {
  glue::ports[index].set(sim->dut, words);
  sim->dirty = true;
}
static inline void settle(Sim* sim) {
  if (sim->dirty) {
    glue::dut_eval(sim->dut);
    sim->dirty = false;
  }
}
void port_get(Sim* sim, int index, uint32_t* words) {
  settle(sim);
  glue::ports[index].get(sim->dut, words);
}
void port_set_u64(Sim* sim, int index, uint64_t value) {
  uint32_t w[2] = {(uint32_t)value, (uint32_t)(value >> 32)};
  if (words_of(glue::ports[index].width) > 2) {
    std::vector<uint32_t> wide(words_of(glue::ports[index].width), 0);
    wide[0] = w[0];
    wide[1] = w[1];
    port_set(sim, index, wide.data());
  } else {
    port_set(sim, index, w);
  }
}
uint64_t port_get_u64(Sim* sim, int index) {
  std::vector<uint32_t>& w = sim->scratch;
  port_get(sim, index, w.data());
  uint64_t v = w[0];
  if (glue::ports[index].width > 32) v |= (uint64_t)w[1] << 32;
  return v;
}
uint64_t current_cycle(Sim* sim) { return sim->cycle; }

static void drive_models(Sim* sim) {
  if (sim->models_driven) return;
  for (Model* m : sim->models) m->drive(sim, sim->cycle);
  sim->models_driven = true;
}

// The models' half of a cycle before its clock edge; false (and sim->error) on a model error.
static bool sample_models(Sim* sim) {
  for (Model* m : sim->models) {
    m->sample(sim, sim->cycle);
    std::string e = m->error();
    if (!e.empty()) {
      sim->error = e;
      return false;
    }
  }
  return true;
}

static void clock_edge(Sim* sim) {
  settle(sim);
  if (sim->tracing) glue::trace_dump(sim->dut, sim->cycle * kPeriodPs);
  glue::dut_clock(sim->dut, 1);
  glue::dut_eval(sim->dut);
  if (sim->tracing) glue::trace_dump(sim->dut, sim->cycle * kPeriodPs + kPeriodPs / 2);
  glue::dut_clock(sim->dut, 0);
  sim->dirty = true;
  sim->cycle++;
  sim->models_driven = false;
}

}  // namespace systolica

using namespace systolica;

extern "C" {

int sys_num_ports() { return glue::num_ports; }
const char* sys_port_name(int i) { return glue::ports[i].name; }
int sys_port_width(int i) { return glue::ports[i].width; }
int sys_port_is_output(int i) { return glue::ports[i].is_output; }
int sys_trace_supported() { return glue::trace_supported(); }
int sys_num_memories() { return glue::num_memories; }
const char* sys_memory_name(int i) { return glue::memories[i].name; }
int sys_memory_width(int i) { return glue::memories[i].width; }
int sys_memory_depth(int i) { return glue::memories[i].depth; }
int sys_memory_elem_bytes(int i) { return glue::memories[i].elem_bytes; }
// Where memory i's words are (depth words of elem_bytes, little-endian, above-width bits 0).
void* sys_memory_ptr(void* h, int i) { return glue::memories[i].ptr(((Sim*)h)->dut); }
// After a write through sys_memory_ptr: combinational reads must be evaluated again.
void sys_memory_written(void* h) { ((Sim*)h)->dirty = true; }

void* sys_new(const char* trace_path) {
  bool trace = trace_path && trace_path[0];
  if (trace && !glue::trace_supported()) return nullptr;
  Sim* sim = new Sim();
  sim->dut = glue::dut_new(trace);
  sim->cycle = 0;
  sim->dirty = true;
  sim->tracing = false;
  sim->models_driven = false;
  int max_words = 2;
  for (int i = 0; i < glue::num_ports; i++)
    if (words_of(glue::ports[i].width) > max_words) max_words = words_of(glue::ports[i].width);
  sim->scratch.assign(max_words, 0);
  glue::dut_clock(sim->dut, 0);
  if (trace) {
    if (!glue::trace_open(sim->dut, trace_path)) {
      glue::dut_delete(sim->dut);
      delete sim;
      return nullptr;
    }
    sim->tracing = true;
  }
  return sim;
}

void sys_delete(void* h) {
  Sim* sim = (Sim*)h;
  for (Model* m : sim->models) delete m;
  if (sim->tracing) {
    settle(sim);
    glue::trace_dump(sim->dut, sim->cycle * kPeriodPs);
    glue::trace_close(sim->dut);
  }
  glue::dut_delete(sim->dut);
  delete sim;
}

void sys_set(void* h, int port, const uint32_t* words) { port_set((Sim*)h, port, words); }
void sys_get(void* h, int port, uint32_t* words) { port_get((Sim*)h, port, words); }
int64_t sys_cycle(void* h) { return (int64_t)((Sim*)h)->cycle; }
const char* sys_error(void* h) { return ((Sim*)h)->error.c_str(); }

// n clock edges; the models take part in every cycle (drive, sample), as in sys_run. Returns 0,
// or 2 on a model error (see sys_error; the edge of the failing cycle is not taken).
int sys_tick(void* h, int64_t n) {
  Sim* sim = (Sim*)h;
  for (int64_t i = 0; i < n; i++) {
    if (!sim->models.empty()) {
      drive_models(sim);
      settle(sim);
      if (!sample_models(sim)) return 2;
    }
    clock_edge(sim);
    if (!sim->models.empty()) drive_models(sim);
  }
  return 0;
}

static void init_end(Sim* sim, StreamEnd& e, int payload, int valid, int ready,
                     const uint8_t* mask, int64_t mask_len) {
  e.payload = payload;
  e.valid = valid;
  e.ready = ready;
  e.words = words_of(glue::ports[payload].width);
  e.mask = mask;
  e.mask_len = mask_len;
  e.mask_more = false;
  e.base = sim->cycle;
}

int sys_add_source(void* h, int payload, int valid, int ready, const uint32_t* data, int64_t n,
                   const uint8_t* mask, int64_t mask_len, int64_t* accept) {
  Sim* sim = (Sim*)h;
  Source s;
  init_end(sim, s, payload, valid, ready, mask, mask_len);
  s.data = data;
  s.n = n;
  s.accept = accept;
  s.next = 0;
  s.holding = false;
  s.cur_valid = -1;
  sim->sources.push_back(s);
  return (int)sim->sources.size() - 1;
}

int sys_add_sink(void* h, const char* name, int payload, int valid, int ready, uint32_t* data,
                 int64_t count, const uint8_t* mask, int64_t mask_len, int64_t* cycles) {
  Sim* sim = (Sim*)h;
  Sink s;
  init_end(sim, s, payload, valid, ready, mask, mask_len);
  s.data = data;
  s.count = count;
  s.cycles = cycles;
  s.received = 0;
  s.cur_ready = false;
  s.pending = false;
  s.held.assign(s.words, 0);
  s.name = name;
  sim->sinks.push_back(s);
  return (int)sim->sinks.size() - 1;
}

int sys_add_model(void* h, const char* name, const char* args) {
  Sim* sim = (Sim*)h;
  auto it = registry().find(name);
  if (it == registry().end()) return -1;
  Model* m = it->second(sim, args ? args : "");
  if (!m) return -2;
  sim->models.push_back(m);
  if (sim->models_driven) m->drive(sim, sim->cycle);   // the others already drove this cycle
  else drive_models(sim);
  return (int)sim->models.size() - 1;
}

int64_t sys_source_progress(void* h, int i) { return ((Sim*)h)->sources[i].next; }
int64_t sys_sink_progress(void* h, int i) { return ((Sim*)h)->sinks[i].received; }

// Replaces the stall mask of source (kind 0) or sink (kind 1) `i`; `more`: the mask goes on
// past `len` (the run stops with status 3 when it gets there, to be given a longer one).
void sys_set_mask(void* h, int kind, int i, const uint8_t* mask, int64_t len, int more) {
  Sim* sim = (Sim*)h;
  StreamEnd& e = kind == 0 ? (StreamEnd&)sim->sources[i] : (StreamEnd&)sim->sinks[i];
  e.mask = mask;
  e.mask_len = len;
  e.mask_more = more;
}

// Drops the streams (not the models) so that a later run can use new ones.
void sys_clear_streams(void* h) {
  Sim* sim = (Sim*)h;
  uint32_t zero[1] = {0};
  for (Source& s : sim->sources) port_set(sim, s.valid, zero);
  for (Sink& s : sim->sinks)
    if (s.ready >= 0) port_set(sim, s.ready, zero);
  sim->sources.clear();
  sim->sinks.clear();
}

// Runs until done (returns 0), the watchdog fires (1: more than max_cycles clock edges in all),
// a protocol/model error (2, see sys_error) or a stall mask needs extending (3: call
// sys_set_mask for the streams whose mask ends at the current cycle, then sys_run again).
int sys_run(void* h, int64_t max_cycles, int wait_port) {
  Sim* sim = (Sim*)h;
  static const uint32_t one[1] = {1}, zero[1] = {0};
  std::vector<uint32_t>& scratch = sim->scratch;
  for (;;) {
    const uint64_t c = sim->cycle;
    for (Source& s : sim->sources)
      if (s.mask_ended(c)) return 3;
    for (Sink& s : sim->sinks)
      if (s.mask_ended(c)) return 3;
    // 1. drive
    for (Source& s : sim->sources) {
      if (s.holding) continue;
      int v = 0;
      if (s.next < s.n && !s.stalls(c)) {
        port_set(sim, s.payload, s.data + (size_t)s.next * s.words);
        v = 1;
        s.holding = true;
      }
      if (v != s.cur_valid) {
        port_set(sim, s.valid, v ? one : zero);
        s.cur_valid = v;
      }
    }
    for (Sink& s : sim->sinks) {
      bool r = s.received < s.count && !s.stalls(c);
      if (s.ready >= 0 && (r != s.cur_ready || c == 0)) port_set(sim, s.ready, r ? one : zero);
      s.cur_ready = r;
    }
    drive_models(sim);
    settle(sim);
    // 2. done?
    bool done = true;
    for (Source& s : sim->sources) done = done && s.next == s.n;
    for (Sink& s : sim->sinks) done = done && s.received == s.count;
    for (Model* m : sim->models) done = done && m->done(sim);
    if (done && wait_port >= 0) done = port_get_u64(sim, wait_port) == 0;
    if (done) return 0;
    if ((int64_t)c >= max_cycles) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "cycle watchdog: simulation did not finish within %lld cycles",
                    (long long)max_cycles);
      sim->error = buf;
      return 1;
    }
    // 3. sample handshakes
    for (Source& s : sim->sources) {
      if (!s.holding) continue;
      if (s.ready < 0 || port_get_u64(sim, s.ready)) {
        s.accept[s.next++] = (int64_t)(c - s.base);
        s.holding = false;
      }
    }
    for (Sink& s : sim->sinks) {
      bool v = port_get_u64(sim, s.valid) != 0;
      if (s.pending) {
        if (!v) {
          sim->error = s.name + ": valid dropped before the payload was accepted (cycle " +
                       std::to_string(c) + ")";
          return 2;
        }
        port_get(sim, s.payload, scratch.data());
        if (std::memcmp(scratch.data(), s.held.data(), s.words * sizeof(uint32_t))) {
          sim->error = s.name + ": payload changed while waiting for ready (cycle " +
                       std::to_string(c) + ")";
          return 2;
        }
      }
      bool take = v && s.cur_ready;
      s.pending = v && !s.cur_ready;
      if (take || s.pending) port_get(sim, s.payload, scratch.data());
      if (s.pending) std::memcpy(s.held.data(), scratch.data(), s.words * sizeof(uint32_t));
      if (take) {
        std::memcpy(s.data + (size_t)s.received * s.words, scratch.data(),
                    s.words * sizeof(uint32_t));
        s.cycles[s.received++] = (int64_t)(c - s.base);
      }
    }
    if (!sample_models(sim)) return 2;
    // 4. clock edge
    clock_edge(sim);
  }
}

}  // extern "C"
