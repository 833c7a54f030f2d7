// The Arduino link protocol (docs/protocol.md) in plain C++: no Arduino headers, no heap, so it also compiles
// with g++/clang++ on the host, where it is tested against tests/vectors/protocol.json and fuzzed.
#ifndef RAMUDROID_PROTOCOL_H
#define RAMUDROID_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifndef RD_TX_SIZE
#define RD_TX_SIZE 128  // reply ring; a reply that does not fit whole is dropped (never sent truncated)
#endif

#if RD_TX_SIZE > 128 || (256 % RD_TX_SIZE) != 0
#error "RD_TX_SIZE must divide 256 and be at most 128"
#endif

#ifndef RD_BUILD_ID
#define RD_BUILD_ID 0UL  // firmware_build.py passes the hash of these sources; 0 = a build without an id
#endif

namespace rd {

const uint8_t PROTOCOL_VERSION = 1;
const uint8_t FW_MAJOR = 1;
const uint8_t FW_MINOR = 1;
const uint8_t FW_PATCH = 0;

const uint8_t CHANNELS = 5;
const uint8_t HEADER_LEN = 5;  // version, type, seq (u16 LE), payload length
const uint8_t CRC_LEN = 2;
const uint8_t MAX_PAYLOAD = 48;
const uint8_t MAX_FRAME = HEADER_LEN + MAX_PAYLOAD + CRC_LEN;
const uint8_t MAX_ENCODED = MAX_FRAME + 1;
const uint16_t MAX_WATCHDOG_MS = 1000;
const uint16_t DEFAULT_WATCHDOG_MS = 300;
const uint16_t NO_SEQ = 0xFFFF;

enum MsgType {
  MSG_HELLO = 0x01,
  MSG_SET_MOTORS = 0x02,
  MSG_HEARTBEAT = 0x03,
  MSG_GET_STATUS = 0x04,
  MSG_GET_INFO = 0x05,
  MSG_ACK = 0x80,
  MSG_HELLO_REPLY = 0x81,
  MSG_STATUS = 0x82,
  MSG_ERROR = 0x83,
  MSG_INFO = 0x84,
};

enum ErrorCode {
  ERR_NONE = 0,
  ERR_CRC = 1,
  ERR_FRAME = 2,
  ERR_OVERFLOW = 3,
  ERR_VERSION = 4,
  ERR_TYPE = 5,
  ERR_LENGTH = 6,
  ERR_VALUE = 7,
  ERR_NOT_READY = 8,
};

// The safe state of every channel: IN1 = IN2 = 0 with EN high is the L298N's active brake (EN low would let
// the motor coast, and a robot on a slope roll). Boot, HELLO and the watchdog all set it.
const uint8_t BRAKE_EN = 255;

const uint8_t FLAG_TRIPPED = 0x01;
const uint8_t FLAG_SESSION = 0x02;

struct PinState {
  uint8_t in1;
  uint8_t in2;
  uint8_t en;
};

uint16_t crc16(const uint8_t* data, size_t len);
// Encodes len bytes into out (room for len + len / 254 + 1); returns the encoded length. No delimiter.
size_t cobsEncode(const uint8_t* in, size_t len, uint8_t* out);
// Decodes one block (no delimiter) into out (room for len); returns the decoded length or -1 if malformed.
int cobsDecode(const uint8_t* in, size_t len, uint8_t* out);

// The device side: feed it bytes and time; it keeps the applied pins, the watchdog and the replies to send.
class MotorProtocol {
 public:
  void begin(uint32_t nowMs);
  // Advance the clock; brakes everything (IN1 = IN2 = 0, EN high) when no valid frame came within the
  // watchdog timeout.
  void tick(uint32_t nowMs);
  // One received byte; a complete frame is handled at once (at the time of the last tick).
  void rxByte(uint8_t b);

  const PinState* pins() const { return pins_; }
  // True once after every change of the applied pins, so the sketch writes the outputs only then.
  bool takePinsChanged();
  bool session() const { return session_; }
  bool watchdogTripped() const { return tripped_; }
  uint16_t crcErrors() const { return crcErrors_; }
  uint16_t badFrames() const { return badFrames_; }
  uint16_t overflows() const { return overflows_; }
  uint16_t txDropped() const { return txDropped_; }
  // The last frame that changed the pins (decoded bytes), for the fuzzer's invariants.
  const uint8_t* lastApplied(uint8_t* len) const {
    *len = appliedLen_;
    return applied_;
  }

  size_t txAvailable() const { return (size_t)(uint8_t)(txHead_ - txTail_); }
  uint8_t txPop();

 private:
  void handleBlock();
  void handleFrame(const uint8_t* f, uint8_t len);
  void reject(uint8_t code, uint16_t refSeq, uint8_t detail);
  void reply(uint8_t type, const uint8_t* payload, uint8_t len);
  void brakeAll();
  static void inc(uint16_t* counter) {
    if (*counter != 0xFFFF) ++*counter;
  }

  PinState pins_[CHANNELS];
  bool pinsChanged_;
  bool session_;
  bool tripped_;
  uint16_t watchdogMs_;
  uint32_t bootMs_;
  uint32_t nowMs_;
  uint32_t lastValidMs_;
  uint16_t crcErrors_;
  uint16_t badFrames_;
  uint16_t overflows_;
  uint16_t txDropped_;
  uint16_t txSeq_;
  uint8_t rx_[MAX_ENCODED];
  uint8_t rxLen_;
  bool rxOverflow_;
  uint8_t applied_[MAX_FRAME];
  uint8_t appliedLen_;
  // Ring indexes wrap at 256, so RD_TX_SIZE must divide 256.
  uint8_t tx_[RD_TX_SIZE];
  uint8_t txHead_;
  uint8_t txTail_;
};

}  // namespace rd

#endif
