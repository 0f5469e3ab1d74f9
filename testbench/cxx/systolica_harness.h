// systolica compiled-simulation harness: the C++ API that extra models use.
//
// A model is a C++ object that takes part in every simulated cycle, next to the generic stream
// sources and sinks: `drive` sets DUT inputs before the cycle's combinational settle, `sample`
// reads DUT outputs after it (before the clock edge). `run` ends once every stream and every model
// is `done`. A model reports a failure through `error()` (a non-empty string stops the run and
// is raised in Python). Models reach the DUT's ports by name through the functions below; port
// names are the flat Verilog names (`moving__payload`, `busy`, ...), values are little-endian
// 32-bit words.
//
// Register a model in a .cpp file passed to the build with `extra_sources=[...]`:
//
//     #include "systolica_harness.h"
//     struct Pulse : systolica::Model { ... };
//     static systolica::Model* make_pulse(systolica::Sim* sim, const char* args) {...}
//     SYSTOLICA_REGISTER_MODEL(pulse, make_pulse);
//
// and instantiate it from Python with `sim.add_model("pulse", "args")`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace systolica {

struct Sim;

// Port access by name: -1 when the DUT has no such port.
int port_index(Sim* sim, const char* name);
int port_width(Sim* sim, int index);
void port_set(Sim* sim, int index, const uint32_t* words);
void port_get(Sim* sim, int index, uint32_t* words);
void port_set_u64(Sim* sim, int index, uint64_t value);   // ports of up to 64 bits
uint64_t port_get_u64(Sim* sim, int index);
uint64_t current_cycle(Sim* sim);

class Model {
 public:
  virtual ~Model() {}
  virtual void drive(Sim*, uint64_t /*cycle*/) {}
  virtual void sample(Sim*, uint64_t /*cycle*/) {}
  virtual bool done(Sim*) { return true; }
  virtual std::string error() { return std::string(); }
};

typedef Model* (*ModelFactory)(Sim* sim, const char* args);
bool register_model(const char* name, ModelFactory factory);

}  // namespace systolica

#define SYSTOLICA_REGISTER_MODEL(NAME, FACTORY) \
  static bool systolica_registered_##NAME = ::systolica::register_model(#NAME, FACTORY)
