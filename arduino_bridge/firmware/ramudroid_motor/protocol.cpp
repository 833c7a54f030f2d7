// The device side of the link protocol; see protocol.h and docs/protocol.md. Must match arduino_bridge/codec.py
// and sim_arduino.py byte for byte (tests/vectors/protocol.json).
#include "protocol.h"

#include <string.h>

namespace rd {

uint16_t crc16(const uint8_t* data, size_t len) {
  // CRC-16/CCITT-FALSE bitwise: a 512-byte table would cost a quarter of the Uno's RAM.
  uint16_t crc = 0xFFFF;
  for (size_t i = 0; i < len; ++i) {
    crc ^= (uint16_t)data[i] << 8;
    for (uint8_t bit = 0; bit < 8; ++bit) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
  }
  return crc;
}

size_t cobsEncode(const uint8_t* in, size_t len, uint8_t* out) {
  size_t codeAt = 0;
  size_t o = 1;
  uint8_t code = 1;
  for (size_t i = 0; i < len; ++i) {
    if (code == 0xFF) {  // block full: close it without an implied zero
      out[codeAt] = code;
      codeAt = o++;
      code = 1;
    }
    if (in[i] == 0) {
      out[codeAt] = code;
      codeAt = o++;
      code = 1;
    } else {
      out[o++] = in[i];
      ++code;
    }
  }
  out[codeAt] = code;
  return o;
}

int cobsDecode(const uint8_t* in, size_t len, uint8_t* out) {
  size_t i = 0;
  size_t o = 0;
  while (i < len) {
    uint8_t code = in[i];
    if (code == 0) return -1;
    size_t end = i + code;
    if (end > len) return -1;
    for (size_t k = i + 1; k < end; ++k) {
      if (in[k] == 0) return -1;
      out[o++] = in[k];
    }
    i = end;
    if (code != 0xFF && i < len) out[o++] = 0;
  }
  return (int)o;
}

void MotorProtocol::begin(uint32_t nowMs) {
  memset(this, 0, sizeof(*this));  // plain data only: no session, counters zero
  watchdogMs_ = DEFAULT_WATCHDOG_MS;
  bootMs_ = nowMs;
  nowMs_ = nowMs;
  lastValidMs_ = nowMs;
  brakeAll();  // and make the sketch write the braked state once
}

void MotorProtocol::brakeAll() {
  for (uint8_t c = 0; c < CHANNELS; ++c) {
    pins_[c].in1 = 0;
    pins_[c].in2 = 0;
    pins_[c].en = BRAKE_EN;
  }
  pinsChanged_ = true;
}

bool MotorProtocol::takePinsChanged() {
  bool changed = pinsChanged_;
  pinsChanged_ = false;
  return changed;
}

void MotorProtocol::tick(uint32_t nowMs) {
  // Unsigned subtraction keeps this right across the 49-day wrap of the millisecond clock.
  if ((int32_t)(nowMs - nowMs_) > 0) nowMs_ = nowMs;
  if (session_ && (uint32_t)(nowMs_ - lastValidMs_) >= watchdogMs_) {
    brakeAll();
    session_ = false;
    tripped_ = true;
  }
}

void MotorProtocol::rxByte(uint8_t b) {
  if (b != 0) {
    if (rxOverflow_) return;
    if (rxLen_ == MAX_ENCODED) {
      rxOverflow_ = true;  // dropped whole at the next delimiter, never delivered truncated
      return;
    }
    rx_[rxLen_++] = b;
    return;
  }
  if (rxOverflow_) {
    reject(ERR_OVERFLOW, NO_SEQ, 0xFF);
  } else if (rxLen_ > 0) {
    handleBlock();
  }
  rxLen_ = 0;
  rxOverflow_ = false;
}

void MotorProtocol::handleBlock() {
  uint8_t f[MAX_ENCODED];
  int n = cobsDecode(rx_, rxLen_, f);
  if (n < 0 || n < HEADER_LEN + CRC_LEN) {
    reject(ERR_FRAME, NO_SEQ, 0xFF);
    return;
  }
  if (n > MAX_FRAME) {
    reject(ERR_OVERFLOW, NO_SEQ, 0xFF);
    return;
  }
  uint16_t crc = (uint16_t)(f[n - 2] | (f[n - 1] << 8));
  if (crc16(f, (size_t)n - CRC_LEN) != crc) {
    reject(ERR_CRC, NO_SEQ, 0xFF);
    return;
  }
  if (f[4] != n - HEADER_LEN - CRC_LEN) {
    reject(ERR_FRAME, NO_SEQ, 0xFF);
    return;
  }
  handleFrame(f, (uint8_t)n);
}

static uint8_t expectedLength(uint8_t type) {
  switch (type) {
    case MSG_HELLO:
      return 2;
    case MSG_SET_MOTORS:
      return 4 * CHANNELS;
    case MSG_HEARTBEAT:
    case MSG_GET_STATUS:
    case MSG_GET_INFO:
      return 0;
    default:
      return 0xFF;
  }
}

void MotorProtocol::handleFrame(const uint8_t* f, uint8_t len) {
  uint8_t type = f[1];
  uint16_t seq = (uint16_t)(f[2] | (f[3] << 8));
  const uint8_t* p = f + HEADER_LEN;
  uint8_t plen = f[4];
  if (f[0] != PROTOCOL_VERSION) {
    reject(ERR_VERSION, seq, PROTOCOL_VERSION);
    return;
  }
  uint8_t want = expectedLength(type);
  if (want == 0xFF) {  // unknown, or a device -> host type
    reject(ERR_TYPE, seq, 0xFF);
    return;
  }
  if (plen != want) {
    reject(ERR_LENGTH, seq, 0xFF);
    return;
  }

  if (type == MSG_HELLO) {
    uint16_t ms = (uint16_t)(p[0] | (p[1] << 8));
    if (ms < 1 || ms > MAX_WATCHDOG_MS) {
      reject(ERR_VALUE, seq, 0);
      return;
    }
    brakeAll();  // a new session starts from rest
    session_ = true;
    tripped_ = false;
    watchdogMs_ = ms;
    lastValidMs_ = nowMs_;
    uint8_t r[8] = {(uint8_t)seq, (uint8_t)(seq >> 8), PROTOCOL_VERSION, FW_MAJOR, FW_MINOR, FW_PATCH,
                    (uint8_t)ms, (uint8_t)(ms >> 8)};
    reply(MSG_HELLO_REPLY, r, sizeof(r));
    return;
  }

  if (type == MSG_GET_STATUS) {
    if (session_) lastValidMs_ = nowMs_;
    uint8_t r[34];
    r[0] = (uint8_t)seq;
    r[1] = (uint8_t)(seq >> 8);
    for (uint8_t c = 0; c < CHANNELS; ++c) {
      r[2 + 3 * c] = pins_[c].in1;
      r[3 + 3 * c] = pins_[c].in2;
      r[4 + 3 * c] = pins_[c].en;
    }
    r[17] = (uint8_t)((tripped_ ? FLAG_TRIPPED : 0) | (session_ ? FLAG_SESSION : 0));
    uint32_t up = nowMs_ - bootMs_;
    for (uint8_t k = 0; k < 4; ++k) r[18 + k] = (uint8_t)(up >> (8 * k));
    const uint16_t words[4] = {watchdogMs_, crcErrors_, badFrames_, overflows_};
    for (uint8_t k = 0; k < 4; ++k) {
      r[22 + 2 * k] = (uint8_t)words[k];
      r[23 + 2 * k] = (uint8_t)(words[k] >> 8);
    }
    r[30] = FW_MAJOR;
    r[31] = FW_MINOR;
    r[32] = FW_PATCH;
    r[33] = PROTOCOL_VERSION;
    reply(MSG_STATUS, r, sizeof(r));
    return;
  }

  if (type == MSG_GET_INFO) {
    if (session_) lastValidMs_ = nowMs_;
    const uint32_t build = RD_BUILD_ID;
    uint8_t r[6] = {(uint8_t)seq, (uint8_t)(seq >> 8), (uint8_t)build, (uint8_t)(build >> 8),
                    (uint8_t)(build >> 16), (uint8_t)(build >> 24)};
    reply(MSG_INFO, r, sizeof(r));
    return;
  }

  if (type == MSG_SET_MOTORS) {
    // Validate everything first: a bad command is rejected whole, never half-applied.
    bool seen[CHANNELS] = {false, false, false, false, false};
    for (uint8_t i = 0; i < CHANNELS; ++i) {
      const uint8_t* e = p + 4 * i;
      if (e[0] >= CHANNELS || seen[e[0]]) {
        reject(ERR_VALUE, seq, (uint8_t)(4 * i));
        return;
      }
      seen[e[0]] = true;
      if (e[1] > 1) {
        reject(ERR_VALUE, seq, (uint8_t)(4 * i + 1));
        return;
      }
      if (e[2] > 1) {
        reject(ERR_VALUE, seq, (uint8_t)(4 * i + 2));
        return;
      }
    }
    if (!session_) {
      reject(ERR_NOT_READY, seq, 0xFF);
      return;
    }
    for (uint8_t i = 0; i < CHANNELS; ++i) {
      const uint8_t* e = p + 4 * i;
      pins_[e[0]].in1 = e[1];
      pins_[e[0]].in2 = e[2];
      pins_[e[0]].en = e[3];
    }
    pinsChanged_ = true;
    memcpy(applied_, f, len);
    appliedLen_ = len;
    lastValidMs_ = nowMs_;
  } else {  // MSG_HEARTBEAT
    if (!session_) {
      reject(ERR_NOT_READY, seq, 0xFF);
      return;
    }
    lastValidMs_ = nowMs_;
  }
  uint8_t r[2] = {(uint8_t)seq, (uint8_t)(seq >> 8)};
  reply(MSG_ACK, r, sizeof(r));
}

void MotorProtocol::reject(uint8_t code, uint16_t refSeq, uint8_t detail) {
  if (code == ERR_CRC) {
    inc(&crcErrors_);
  } else if (code == ERR_OVERFLOW) {
    inc(&overflows_);
  } else if (code != ERR_NOT_READY) {
    inc(&badFrames_);
  }
  uint8_t r[4] = {code, (uint8_t)refSeq, (uint8_t)(refSeq >> 8), detail};
  reply(MSG_ERROR, r, sizeof(r));
}

void MotorProtocol::reply(uint8_t type, const uint8_t* payload, uint8_t len) {
  uint8_t raw[HEADER_LEN + 34 + CRC_LEN];
  raw[0] = PROTOCOL_VERSION;
  raw[1] = type;
  raw[2] = (uint8_t)txSeq_;
  raw[3] = (uint8_t)(txSeq_ >> 8);
  raw[4] = len;
  memcpy(raw + HEADER_LEN, payload, len);
  uint16_t crc = crc16(raw, HEADER_LEN + len);
  raw[HEADER_LEN + len] = (uint8_t)crc;
  raw[HEADER_LEN + len + 1] = (uint8_t)(crc >> 8);
  ++txSeq_;  // counted even when dropped, so the host sees the gap
  uint8_t enc[sizeof(raw) + 2];
  size_t n = cobsEncode(raw, HEADER_LEN + len + CRC_LEN, enc);
  enc[n++] = 0;
  if (RD_TX_SIZE - txAvailable() < n) {
    inc(&txDropped_);
    return;
  }
  for (size_t i = 0; i < n; ++i) tx_[(uint8_t)(txHead_++) % RD_TX_SIZE] = enc[i];
}

uint8_t MotorProtocol::txPop() {
  if (txHead_ == txTail_) return 0;
  return tx_[(uint8_t)(txTail_++) % RD_TX_SIZE];
}

}  // namespace rd
