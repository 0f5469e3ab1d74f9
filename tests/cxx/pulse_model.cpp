// A test model for the compiled harness (tests/test_backends.py): drives input port PORT high
// during cycle CYCLE only and is done once that cycle has passed. Args: "PORT CYCLE".
#include <cstdio>
#include <cstdlib>
#include <string>

#include "systolica_harness.h"

namespace {

class Pulse : public systolica::Model {
 public:
  Pulse(int port, uint64_t at) : port_(port), at_(at) {}
  void drive(systolica::Sim* sim, uint64_t cycle) override {
    systolica::port_set_u64(sim, port_, cycle == at_ ? 1 : 0);
  }
  void sample(systolica::Sim*, uint64_t cycle) override { passed_ = cycle >= at_; }
  bool done(systolica::Sim*) override { return passed_; }

 private:
  int port_;
  uint64_t at_;
  bool passed_ = false;
};

systolica::Model* make_pulse(systolica::Sim* sim, const char* args) {
  char name[128];
  unsigned long long at;
  if (std::sscanf(args, "%127s %llu", name, &at) != 2) return nullptr;
  int port = systolica::port_index(sim, name);
  if (port < 0) return nullptr;
  return new Pulse(port, at);
}

}  // namespace

SYSTOLICA_REGISTER_MODEL(pulse, make_pulse);
