// A simulated serial line for the compiled harness: the host end of an 8N1 UART on the DUT's
// `uart_rx` (driven) and `uart_tx` (sampled) ports, `divisor` clock cycles per bit.
//
// Args: "CTRL" -- the address of an int64 control block shared with Python
// (systolica/board/simulated.py, which documents the fields):
//   [0] tx buffer address  [1] tx length  [2] tx position (C++ advances it)
//   [3] rx buffer address  [4] rx capacity [5] rx length (C++ appends)  [6] rx wanted
//   [7] divisor            [8] gap probability (per mille, after each host byte)
//   [9] longest gap in bit times  [10] LFSR seed  [11] framing errors seen (C++ counts)
// The model is done when every host byte has been sent and `rx wanted` bytes have arrived.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "systolica_harness.h"

namespace {

class UartLine : public systolica::Model {
 public:
  UartLine(int rx_port, int tx_port, int64_t* ctrl)
      : rx_port_(rx_port), tx_port_(tx_port), ctrl_(ctrl) {
    lfsr_ = static_cast<uint32_t>(ctrl_[10]) | 1u;
  }

  void drive(systolica::Sim* sim, uint64_t) override {
    const int64_t divisor = ctrl_[7];
    if (send_bit_ < 0) {                                   // between bytes
      if (gap_ > 0) {
        --gap_;
      } else if (ctrl_[2] < ctrl_[1]) {
        const uint8_t* tx = reinterpret_cast<const uint8_t*>(ctrl_[0]);
        frame_ = (1u << 9) | (static_cast<uint32_t>(tx[ctrl_[2]]) << 1);   // stop, data, start
        send_bit_ = 0;
        send_timer_ = divisor;
      }
    }
    int level = 1;
    if (send_bit_ >= 0) {
      level = (frame_ >> send_bit_) & 1;
      if (--send_timer_ == 0) {
        send_timer_ = divisor;
        if (++send_bit_ == 10) {
          send_bit_ = -1;
          ++ctrl_[2];
          if (random_below(1000) < static_cast<uint32_t>(ctrl_[8]) && ctrl_[9] > 0)
            gap_ = divisor * (1 + random_below(static_cast<uint32_t>(ctrl_[9])));
        }
      }
    }
    systolica::port_set_u64(sim, rx_port_, level);
  }

  void sample(systolica::Sim* sim, uint64_t) override {
    const int64_t divisor = ctrl_[7];
    const int level = static_cast<int>(systolica::port_get_u64(sim, tx_port_) & 1);
    if (recv_bit_ < 0) {
      if (level == 0) {                                    // start bit: sample mid-bit
        recv_bit_ = 0;
        recv_timer_ = divisor / 2;
        shift_ = 0;
      }
      return;
    }
    if (--recv_timer_ > 0) return;
    recv_timer_ = divisor;
    if (recv_bit_ == 0) {
      if (level != 0) { recv_bit_ = -1; return; }          // a glitch
    } else if (recv_bit_ <= 8) {
      shift_ |= static_cast<uint32_t>(level) << (recv_bit_ - 1);
    } else {
      if (level == 1) {
        uint8_t* rx = reinterpret_cast<uint8_t*>(ctrl_[3]);
        if (ctrl_[5] < ctrl_[4]) rx[ctrl_[5]++] = static_cast<uint8_t>(shift_);
        else error_ = "uart_line: receive buffer full";
      } else {
        ++ctrl_[11];
      }
      recv_bit_ = -1;
      return;
    }
    ++recv_bit_;
  }

  bool done(systolica::Sim*) override {
    return ctrl_[2] >= ctrl_[1] && send_bit_ < 0 && ctrl_[5] >= ctrl_[6];
  }

  std::string error() override { return error_; }

 private:
  uint32_t random_below(uint32_t n) {
    for (int i = 0; i < 16; ++i) {                         // 32-bit Galois LFSR
      lfsr_ = (lfsr_ >> 1) ^ (static_cast<uint32_t>(-(static_cast<int32_t>(lfsr_ & 1u))) &
                              0x80200003u);
    }
    return n ? (lfsr_ % n) : 0;
  }

  int rx_port_, tx_port_;
  int64_t* ctrl_;
  uint32_t lfsr_;
  uint32_t frame_ = 0;
  int send_bit_ = -1;
  int64_t send_timer_ = 0;
  int64_t gap_ = 0;
  int recv_bit_ = -1;
  int64_t recv_timer_ = 0;
  uint32_t shift_ = 0;
  std::string error_;
};

systolica::Model* make_uart_line(systolica::Sim* sim, const char* args) {
  char* end = nullptr;
  unsigned long long address = std::strtoull(args, &end, 0);
  if (end == args || address == 0) return nullptr;
  int rx = systolica::port_index(sim, "uart_rx");
  int tx = systolica::port_index(sim, "uart_tx");
  int64_t* ctrl = reinterpret_cast<int64_t*>(address);
  if (rx < 0 || tx < 0 || ctrl[7] < 4) return nullptr;
  return new UartLine(rx, tx, ctrl);
}

}  // namespace

SYSTOLICA_REGISTER_MODEL(uart_line, make_uart_line);
