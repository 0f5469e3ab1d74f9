// The AxiRam backdoor (a word port: addr, data, we; read data the cycle after addr) driven from
// C++ for testbench/tile_compiled.py, so DRAM is loaded and read back at cycle-loop speed.
//   "load PORT PTR COUNT":   drive the packed port values PTR[i] (COUNT rows of
//                            ceil(width/32) uint32 words, we set by Python) in cycles 0..COUNT-1
//   "read PORT RDATA PTR COUNT ADDR_BITS": drive addr = i in cycle i, store the 64-bit rdata
//                            of word i into PTR[i] (uint64) one cycle later
// A model drives the port only while it works (and zero once after), so they run one at a time.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "systolica_harness.h"

namespace {

class Backdoor : public systolica::Model {
 public:
  Backdoor(systolica::Sim* sim, bool read, int port, int rdata, void* ptr, uint64_t count)
      : read_(read), port_(port), rdata_(rdata), ptr_(ptr), count_(count) {
    words_ = (systolica::port_width(sim, port) + 31) / 32;
    zero_.assign(words_, 0);
  }
  void drive(systolica::Sim* sim, uint64_t) override {
    if (i_ < count_) {
      if (read_) {
        std::vector<uint32_t> v(words_, 0);
        v[0] = static_cast<uint32_t>(i_);         // addr is the low field (< 32 bits)
        systolica::port_set(sim, port_, v.data());
      } else {
        systolica::port_set(sim, port_, static_cast<uint32_t*>(ptr_) + i_ * words_);
      }
    } else if (!released_) {
      systolica::port_set(sim, port_, zero_.data());
      released_ = true;
    }
  }
  void sample(systolica::Sim* sim, uint64_t) override {
    if (read_ && i_ >= 1 && i_ <= count_)
      static_cast<uint64_t*>(ptr_)[i_ - 1] = systolica::port_get_u64(sim, rdata_);
    if (i_ <= count_) i_++;
  }
  bool done(systolica::Sim*) override { return i_ > count_; }

 private:
  bool read_;
  int port_, rdata_;
  void* ptr_;
  uint64_t count_, i_ = 0;
  int words_;
  bool released_ = false;
  std::vector<uint32_t> zero_;
};

systolica::Model* make_backdoor(systolica::Sim* sim, const char* args) {
  char mode[16], port[128], rdata[128];
  unsigned long long ptr, count;
  if (std::sscanf(args, "%15s", mode) != 1) return nullptr;
  if (std::strcmp(mode, "load") == 0) {
    if (std::sscanf(args, "%15s %127s %llu %llu", mode, port, &ptr, &count) != 4) return nullptr;
    int p = systolica::port_index(sim, port);
    if (p < 0) return nullptr;
    return new Backdoor(sim, false, p, -1, reinterpret_cast<void*>(ptr), count);
  }
  if (std::sscanf(args, "%15s %127s %127s %llu %llu", mode, port, rdata, &ptr, &count) != 5)
    return nullptr;
  int p = systolica::port_index(sim, port), r = systolica::port_index(sim, rdata);
  if (p < 0 || r < 0) return nullptr;
  return new Backdoor(sim, true, p, r, reinterpret_cast<void*>(ptr), count);
}

}  // namespace

SYSTOLICA_REGISTER_MODEL(backdoor, make_backdoor);
