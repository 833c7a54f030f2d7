// Drives the firmware's protocol core (protocol.cpp) from stdin for tests/test_bridge_firmware_host.py.
// Commands, one per line; each answers one line:
//   F <ms> <hex|->  tick(ms), feed the bytes   -> "R <reply hex|-> <15 pin values> <session> <tripped> <crc> <bad> <ovf>"
//   C <hex|->       CRC-16 of the bytes         -> "<crc decimal>"
//   E <hex|->       COBS-encode                  -> "<hex|->"
//   D <hex|->       COBS-decode                  -> "<hex|->" or "ERR"
//   N               fresh device at time 0       -> "OK"
#include <stdio.h>
#include <string.h>

#include <string>
#include <vector>

#include "protocol.h"

static std::vector<uint8_t> unhex(const char* s) {
  std::vector<uint8_t> out;
  if (!s || strcmp(s, "-") == 0) return out;
  for (size_t i = 0; s[i] && s[i + 1]; i += 2) {
    unsigned v = 0;
    sscanf(s + i, "%2x", &v);
    out.push_back((uint8_t)v);
  }
  return out;
}

static void puthex(const uint8_t* d, size_t n) {
  if (n == 0) fputs("-", stdout);
  for (size_t i = 0; i < n; ++i) printf("%02x", d[i]);
}

int main() {
  static rd::MotorProtocol dev;
  dev.begin(0);
  static char line[70000];
  while (fgets(line, sizeof(line), stdin)) {
    char cmd = line[0];
    char* arg = strtok(line + 1, " \r\n");
    if (cmd == 'N') {
      dev.begin(0);
      puts("OK");
    } else if (cmd == 'F') {
      unsigned long ms = strtoul(arg, NULL, 10);
      std::vector<uint8_t> in = unhex(strtok(NULL, " \r\n"));
      std::vector<uint8_t> out;
      dev.tick((uint32_t)ms);
      for (uint8_t b : in) {
        dev.rxByte(b);
        while (dev.txAvailable()) out.push_back(dev.txPop());  // the sketch drains the ring every loop
      }
      fputs("R ", stdout);
      puthex(out.data(), out.size());
      for (int c = 0; c < rd::CHANNELS; ++c)
        printf(" %d %d %d", dev.pins()[c].in1, dev.pins()[c].in2, dev.pins()[c].en);
      printf(" %d %d %u %u %u\n", dev.session(), dev.watchdogTripped(), dev.crcErrors(), dev.badFrames(),
             dev.overflows());
    } else if (cmd == 'C') {
      std::vector<uint8_t> in = unhex(arg);
      printf("%u\n", rd::crc16(in.data(), in.size()));
    } else if (cmd == 'E') {
      std::vector<uint8_t> in = unhex(arg);
      std::vector<uint8_t> out(in.size() + in.size() / 254 + 2);
      size_t n = rd::cobsEncode(in.data(), in.size(), out.data());
      puthex(out.data(), n);
      putchar('\n');
    } else if (cmd == 'D') {
      std::vector<uint8_t> in = unhex(arg);
      std::vector<uint8_t> out(in.size() + 1);
      int n = rd::cobsDecode(in.data(), in.size(), out.data());
      if (n < 0) {
        puts("ERR");
      } else {
        puthex(out.data(), (size_t)n);
        putchar('\n');
      }
    } else {
      puts("?");
    }
    fflush(stdout);
  }
  return 0;
}
