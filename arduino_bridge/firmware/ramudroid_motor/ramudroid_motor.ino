// Ramudroid motor controller: five L298N channels driven from the Pi over a CRC-checked serial protocol.
// Safety: every motor actively braked (IN1 = IN2 = LOW, EN = HIGH) from the first instructions of setup(), again
// when no valid frame arrives within the watchdog timeout (set by the host's HELLO, at most 1000 ms, 300 ms by
// default), and the AVR hardware watchdog resets a hung sketch into that same safe state. EN low would only let
// a motor coast. The protocol itself lives in protocol.cpp (plain C++, host-tested).
#include <avr/wdt.h>

#include "pins.h"
#include "protocol.h"

static const uint8_t MOTOR_PINS[RD_CHANNELS][3] = RD_MOTOR_PINS;
static rd::MotorProtocol proto;
static rd::PinState written[RD_CHANNELS];

// A watchdog reset leaves the watchdog running with its shortest timeout: stop it before the core's init code.
uint8_t resetCause __attribute__((section(".noinit")));
void earlyWatchdogOff(void) __attribute__((naked, used, section(".init3")));
void earlyWatchdogOff(void) {
  resetCause = MCUSR;
  MCUSR = 0;
  wdt_disable();
}

// Declared before use: this file is compiled as plain C++ by firmware_build.py (no generated prototypes).
void setup();
void loop();
static void applyPins(bool force);

// The link watchdog's clock. millis() steps by 1.024 ms and now and then skips a count, so "300 ms by millis()"
// can be 301 ms of real silence; this counts whole milliseconds from micros() (4 us resolution) instead, and
// stays right across micros()' 71-minute wrap because only differences are added.
static uint32_t clockMs() {
  static uint32_t lastUs = 0, pendingUs = 0, ms = 0;
  const uint32_t nowUs = micros();
  pendingUs += nowUs - lastUs;
  lastUs = nowUs;
  while (pendingUs >= 1000) {  // called every loop pass, so this runs once or not at all
    pendingUs -= 1000;
    ++ms;
  }
  return ms;
}

// Arduino's analogWrite(pin, 0 or 255) calls digitalWrite, which disconnects the timer before it sets the PORT bit:
// for those cycles (longer if an interrupt lands between them) the pin shows the old PORT level. On a braking
// wheel that old level is LOW, a coast glitch. Set the level first so the pin never shows another.
static void writeEnable(uint8_t pin, uint8_t duty) {
  if (duty == 0 || duty == 255) {
    volatile uint8_t* out = portOutputRegister(digitalPinToPort(pin));
    const uint8_t mask = digitalPinToBitMask(pin);
    const uint8_t sreg = SREG;
    cli();
    if (duty) *out |= mask;
    else *out &= (uint8_t)~mask;
    SREG = sreg;
  }
  analogWrite(pin, duty);
}

void setup() {
  // PORT is written before DDR makes each pin an output, so no pin ever shows another level: IN1 and IN2 come
  // up low, EN comes up high, and the channel is braked from its first output instant.
  for (uint8_t c = 0; c < RD_CHANNELS; ++c) {
    for (uint8_t k = 0; k < 2; ++k) {
      digitalWrite(MOTOR_PINS[c][k], LOW);
      pinMode(MOTOR_PINS[c][k], OUTPUT);
    }
    digitalWrite(MOTOR_PINS[c][2], HIGH);
    pinMode(MOTOR_PINS[c][2], OUTPUT);
  }
  Serial.begin(RD_BAUD);
  proto.begin(clockMs());
  applyPins(true);
  wdt_enable(WDTO_250MS);
}

static void applyPins(bool force) {
  const rd::PinState* want = proto.pins();
  for (uint8_t c = 0; c < RD_CHANNELS; ++c) {
    const rd::PinState& w = want[c];
    rd::PinState& h = written[c];
    if (!force && w.in1 == h.in1 && w.in2 == h.in2 && w.en == h.en) continue;
    if (force || w.in1 != h.in1 || w.in2 != h.in2) {
      // Never switch into a driving direction with the bridge enabled. Into the brake (IN1 == IN2) EN stays
      // as it is: dropping it would let the motor coast for that instant.
      if (w.in1 != w.in2) writeEnable(MOTOR_PINS[c][2], 0);
      digitalWrite(MOTOR_PINS[c][0], w.in1 ? HIGH : LOW);
      digitalWrite(MOTOR_PINS[c][1], w.in2 ? HIGH : LOW);
    }
    writeEnable(MOTOR_PINS[c][2], w.en);
    h = w;
  }
}

void loop() {
  wdt_reset();
  proto.tick(clockMs());
  // Never block: read only what has arrived, write only what the transmit buffer takes now.
  for (int n = Serial.available(); n > 0; --n) {
    int c = Serial.read();
    if (c < 0) break;
    proto.rxByte((uint8_t)c);
    if (proto.takePinsChanged()) applyPins(false);  // apply each command as soon as it is accepted
  }
  if (proto.takePinsChanged()) applyPins(false);
  while (proto.txAvailable() > 0 && Serial.availableForWrite() > 0) Serial.write(proto.txPop());
}
