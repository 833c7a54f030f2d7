/* Runs the motor firmware in simavr (ATmega328P, 16 MHz) with UART0 joined to a pseudo-terminal.
 *
 * Usage: simavr_harness FIRMWARE.elf [--realtime] [--max-ms N]
 * Prints, one line each, flushed at once (times are simulated nanoseconds since reset):
 *   PTY <slave path>                      the pseudo-terminal to open (the /tmp/simavr-uart0 symlink is shared
 *                                          by every run, so use this name instead)
 *   PIN <ns> <channel> <in1> <in2> <en>    a motor channel's effective pins changed (en: 0..255 PWM duty)
 *   RX <ns>                                the firmware read a 0x00 frame delimiter from UDR0 (its UART)
 *   TX <ns>                                the firmware sent a 0x00 frame delimiter
 *   END <reason>                           the simulation stopped
 * --realtime keeps simulated time from running ahead of the wall clock, so host timeouts and the firmware's
 * watchdog see the same time. Pin changes are caught by IO-port IRQ hooks; PWM duty lives in timer registers,
 * so those are also sampled every 10 us of simulated time.
 * No SIGINT handler on purpose: uart_pty stops its thread with SIGINT.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "avr_ioport.h"
#include "avr_uart.h"
#include "pins.h"
#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_irq.h"
#include "uart_pty.h"

/* ATmega328P data-space addresses of the registers we read. */
enum { PORTB_ = 0x25, DDRB_ = 0x24, PORTC_ = 0x28, DDRC_ = 0x27, PORTD_ = 0x2B, DDRD_ = 0x2A };
enum { TCCR0A_ = 0x44, OCR0A_ = 0x47, OCR0B_ = 0x48, TCCR1A_ = 0x80, OCR1AL_ = 0x88, OCR1BL_ = 0x8A };
enum { TCCR2A_ = 0xB0, OCR2A_ = 0xB3, OCR2B_ = 0xB4 };

static avr_t *avr;
static uart_pty_t uart_pty;
static const uint8_t motor_pins[RD_CHANNELS][3] = RD_MOTOR_PINS;
static int last[RD_CHANNELS][3];
static int have_last;

static uint64_t now_ns(void) { return (uint64_t)((double)avr->cycle * 1e9 / (double)avr->frequency); }

/* Uno pin number -> PORT/DDR address and bit. */
static void pin_regs(int pin, int *port, int *ddr, int *bit) {
  if (pin < 8) {
    *port = PORTD_, *ddr = DDRD_, *bit = pin;
  } else if (pin < 14) {
    *port = PORTB_, *ddr = DDRB_, *bit = pin - 8;
  } else {
    *port = PORTC_, *ddr = DDRC_, *bit = pin - 14;
  }
}

static int digital_level(int pin) {
  int port, ddr, bit;
  pin_regs(pin, &port, &ddr, &bit);
  return (avr->data[ddr] >> bit & 1) && (avr->data[port] >> bit & 1);
}

/* Effective EN duty: the timer's OCR while its compare output drives the pin, else the digital level. */
static int en_duty(int pin) {
  int tccr = 0, com = 0, ocr = 0;
  switch (pin) {
    case 3: tccr = TCCR2A_, com = 0x20, ocr = OCR2B_; break;
    case 5: tccr = TCCR0A_, com = 0x20, ocr = OCR0B_; break;
    case 6: tccr = TCCR0A_, com = 0x80, ocr = OCR0A_; break;
    case 9: tccr = TCCR1A_, com = 0x80, ocr = OCR1AL_; break;
    case 10: tccr = TCCR1A_, com = 0x20, ocr = OCR1BL_; break;
    case 11: tccr = TCCR2A_, com = 0x80, ocr = OCR2A_; break;
  }
  int port, ddr, bit;
  pin_regs(pin, &port, &ddr, &bit);
  if (!(avr->data[ddr] >> bit & 1)) return 0;
  if (tccr && (avr->data[tccr] & com)) return avr->data[ocr];
  return digital_level(pin) ? 255 : 0;
}

static void evaluate(void) {
  for (int c = 0; c < RD_CHANNELS; ++c) {
    int now[3] = {digital_level(motor_pins[c][0]), digital_level(motor_pins[c][1]), en_duty(motor_pins[c][2])};
    if (!have_last || memcmp(now, last[c], sizeof(now)) != 0) {
      memcpy(last[c], now, sizeof(now));
      printf("PIN %llu %d %d %d %d\n", (unsigned long long)now_ns(), c, now[0], now[1], now[2]);
    }
  }
  have_last = 1;
}

static void port_hook(struct avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq, (void)value, (void)param;
  evaluate();
}

/* simavr refuses a second read handler on UDR0, so wrap the UART's own to see when the firmware reads a byte. */
enum { UDR0_ = 0xC6 };
static avr_io_read_t uart_read;
static void *uart_read_param;

static uint8_t udr_read_hook(struct avr_t *a, avr_io_addr_t addr, void *param) {
  (void)param;
  uint8_t v = uart_read(a, addr, uart_read_param);
  if (v == 0) printf("RX %llu\n", (unsigned long long)now_ns());
  return v;
}

static void uart_out_hook(struct avr_irq_t *irq, uint32_t value, void *param) {
  (void)irq, (void)param;
  if ((value & 0xFF) == 0) printf("TX %llu\n", (unsigned long long)now_ns());
}

static uint64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FIRMWARE.elf [--realtime] [--max-ms N]\n", argv[0]);
    return 2;
  }
  int realtime = 0;
  double max_ms = 0;
  for (int i = 2; i < argc; ++i) {
    if (!strcmp(argv[i], "--realtime")) realtime = 1;
    else if (!strcmp(argv[i], "--max-ms") && i + 1 < argc) max_ms = atof(argv[++i]);
  }
  setvbuf(stdout, NULL, _IOLBF, 0);

  elf_firmware_t fw;
  memset(&fw, 0, sizeof(fw));
  if (elf_read_firmware(argv[1], &fw) != 0) {
    fprintf(stderr, "simavr harness: cannot read firmware %s\n", argv[1]);
    return 1;
  }
  avr = avr_make_mcu_by_name("atmega328p");
  if (!avr) {
    fprintf(stderr, "simavr harness: simavr lacks the atmega328p core\n");
    return 1;
  }
  avr_init(avr);
  avr_load_firmware(avr, &fw);
  avr->frequency = 16000000;
  avr->log = LOG_ERROR;

  uart_pty_init(avr, &uart_pty);
  uart_pty_connect(&uart_pty, '0');
  printf("PTY %s\n", uart_pty.port[0].slavename);

  const char ports[3] = {'B', 'C', 'D'};
  for (int i = 0; i < 3; ++i)
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ(ports[i]), IOPORT_IRQ_PIN_ALL), port_hook,
                            NULL);
  int udr = AVR_DATA_TO_IO(UDR0_);
  uart_read = avr->io[udr].r.c;
  uart_read_param = avr->io[udr].r.param;
  if (!uart_read) {
    fprintf(stderr, "simavr harness: no UART read handler on UDR0\n");
    return 1;
  }
  avr->io[udr].r.c = udr_read_hook;
  avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), uart_out_hook, NULL);
  evaluate();

  const uint64_t sample_cycles = avr->frequency / 100000;   /* 10 us */
  const uint64_t throttle_cycles = avr->frequency / 1000;   /* 1 ms */
  uint64_t next_sample = sample_cycles, next_throttle = throttle_cycles;
  uint64_t wall0 = wall_ns();
  const uint64_t max_cycles = max_ms > 0 ? (uint64_t)(max_ms * avr->frequency / 1000.0) : 0;
  for (;;) {
    int state = avr_run(avr);
    if (state == cpu_Done || state == cpu_Crashed) {
      printf("END %s\n", state == cpu_Done ? "done" : "crashed");
      break;
    }
    if (avr->cycle >= next_sample) {
      next_sample = avr->cycle + sample_cycles;
      evaluate();
    }
    if (max_cycles && avr->cycle >= max_cycles) {
      printf("END max-ms\n");
      break;
    }
    if (realtime && avr->cycle >= next_throttle) {
      next_throttle = avr->cycle + throttle_cycles;
      uint64_t sim = now_ns(), wall = wall_ns() - wall0;
      if (sim > wall + 1000000) {
        uint64_t ahead = sim - wall;
        struct timespec ts = {(time_t)(ahead / 1000000000ull), (long)(ahead % 1000000000ull)};
        nanosleep(&ts, NULL);
      }
    }
  }
  fflush(stdout);
  _exit(0); /* not uart_pty_stop(): it signals its thread with SIGINT */
}
