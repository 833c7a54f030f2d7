// The motor pin map: Arduino Uno/Nano pin numbers of the five L298N channels, in wire order (Channel enum).
// Plain C so the simavr harness (arduino_bridge/firmware/simavr/harness.c) reads the same map.
// EN pins are the PWM pins 5, 6 (Timer0), 9, 10 (Timer1) and 3 (Timer2); 0/1 are the UART and 13 is left alone
// because the bootloader blinks its LED at reset.
#ifndef RAMUDROID_PINS_H
#define RAMUDROID_PINS_H

#define RD_CHANNELS 5

// {IN1, IN2, EN} per channel: drive left, drive right, brush left, brush right, brush comb.
#define RD_MOTOR_PINS \
  {                   \
    {2, 4, 5},        \
    {7, 8, 6},        \
    {11, 12, 9},      \
    {14, 15, 10},     \
    {16, 17, 3},      \
  }

#define RD_BAUD 115200UL

#endif
