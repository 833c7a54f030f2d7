// libFuzzer target for the firmware's protocol core (built and run by tests/test_bridge_firmware_host.py).
// Invariants: no crash or sanitizer report; the pins move only for a SET_MOTORS frame whose CRC, length and
// values are right (checked here by an independent bitwise CRC); garbage never half-applies a command.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static uint16_t refCrc(const uint8_t* d, size_t n) {
  uint16_t crc = 0xFFFF;
  for (size_t i = 0; i < n; ++i)
    for (int bit = 7; bit >= 0; --bit) {
      bool top = ((crc >> 15) & 1) ^ ((d[i] >> bit) & 1);
      crc = (uint16_t)(crc << 1);
      if (top) crc ^= 0x1021;
    }
  return crc;
}

static bool braked(const rd::PinState* p) {
  for (int c = 0; c < rd::CHANNELS; ++c)
    if (p[c].in1 || p[c].in2 || p[c].en != rd::BRAKE_EN) return false;
  return true;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rd::MotorProtocol dev;
  dev.begin(0);
  uint32_t now = 0;
  if (size > 0 && (data[0] & 1)) {
    // Half the inputs start from an open session, so SET_MOTORS paths are reachable.
    static const uint8_t hello[] = {0x04, 0x01, 0x01, 0x01, 0x06, 0x02, 0xe8, 0x03, 0x94, 0x8f, 0x00};
    for (uint8_t b : hello) dev.rxByte(b);
    while (dev.txAvailable()) dev.txPop();
  }
  rd::PinState before[rd::CHANNELS];
  memcpy(before, dev.pins(), sizeof(before));
  uint8_t lastLen = 0;
  for (size_t i = 1; i < size; ++i) {
    if (data[i] == 0xFE && i + 1 < size) now += data[++i];  // let time pass now and then
    dev.tick(now);
    dev.rxByte(data[i]);
    size_t tx = dev.txAvailable();
    if (tx > RD_TX_SIZE) abort();
    while (dev.txAvailable()) dev.txPop();
    uint8_t len;
    const uint8_t* f = dev.lastApplied(&len);
    bool changed = memcmp(before, dev.pins(), sizeof(before)) != 0;
    if (changed && !braked(dev.pins())) {
      // Something moved: it must be a fully valid SET_MOTORS frame.
      if (len != 7 + 20 || f[0] != rd::PROTOCOL_VERSION || f[1] != rd::MSG_SET_MOTORS || f[4] != 20) abort();
      if (refCrc(f, len - 2) != (uint16_t)(f[len - 2] | f[len - 1] << 8)) abort();
      bool seen[5] = {false, false, false, false, false};
      for (int k = 0; k < 5; ++k) {
        const uint8_t* e = f + 5 + 4 * k;
        if (e[0] > 4 || seen[e[0]] || e[1] > 1 || e[2] > 1) abort();
        seen[e[0]] = true;
        const rd::PinState& p = dev.pins()[e[0]];
        if (p.in1 != e[1] || p.in2 != e[2] || p.en != e[3]) abort();  // applied whole, exactly
      }
      if (!dev.session()) abort();
    }
    (void)lastLen;
    memcpy(before, dev.pins(), sizeof(before));
  }
  return 0;
}
