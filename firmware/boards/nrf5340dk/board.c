/* Nordic nRF5340 DK, application core (secure state, as it boots), register
 * level after the nRF5340 Product Specification:
 *   clock  HFCLK128M from HFXO, HFCLKCTRL = DIV1: 128 MHz core
 *   UART   UARTE0 (EasyDMA) on P0.20 (TX) / P0.22 (RX): the DK's VCOM0,
 *          115200 8N1; one-byte DMA receptions re-armed at once
 *   ticks  DWT cycle counter (128 MHz), extended to 64 bits (tvmq_cortexm.h)
 *   stamp  Arduino D7 = P1.08 (DK pinout), idle high, pulled low ~2 us
 * NOT VERIFIED ON HARDWARE: built and linked only. The VCOM pins, the D7 pin
 * and whether a byte can arrive between ENDRX and the next STARTRX (a gap of a
 * few cycles against 87 us per byte at 115200 baud) are from the documents. */
#include "tvmq_board.h"
#include "tvmq_cortexm.h"

#define CLOCK 0x50005000u
#define CLOCK_TASKS_HFCLKSTART TVMQ_REG(CLOCK + 0x000u)
#define CLOCK_EVENTS_HFCLKSTARTED TVMQ_REG(CLOCK + 0x100u)
#define CLOCK_HFCLKCTRL TVMQ_REG(CLOCK + 0x558u)
#define UARTE0 0x50008000u
#define UARTE_TASKS_STARTRX TVMQ_REG(UARTE0 + 0x000u)
#define UARTE_TASKS_STARTTX TVMQ_REG(UARTE0 + 0x008u)
#define UARTE_EVENTS_ENDRX TVMQ_REG(UARTE0 + 0x110u)
#define UARTE_EVENTS_ENDTX TVMQ_REG(UARTE0 + 0x120u)
#define UARTE_ENABLE TVMQ_REG(UARTE0 + 0x500u)
#define UARTE_PSEL_TXD TVMQ_REG(UARTE0 + 0x50Cu)
#define UARTE_PSEL_RXD TVMQ_REG(UARTE0 + 0x514u)
#define UARTE_BAUDRATE TVMQ_REG(UARTE0 + 0x524u)
#define UARTE_RXD_PTR TVMQ_REG(UARTE0 + 0x534u)
#define UARTE_RXD_MAXCNT TVMQ_REG(UARTE0 + 0x538u)
#define UARTE_TXD_PTR TVMQ_REG(UARTE0 + 0x544u)
#define UARTE_TXD_MAXCNT TVMQ_REG(UARTE0 + 0x548u)
#define UARTE_CONFIG TVMQ_REG(UARTE0 + 0x56Cu)
#define P1 0x50842800u
#define GPIO_OUTSET(port) TVMQ_REG((port) + 0x508u)
#define GPIO_OUTCLR(port) TVMQ_REG((port) + 0x50Cu)
#define GPIO_DIRSET(port) TVMQ_REG((port) + 0x518u)
#define CLOCK_HZ 128000000u
#define STAMP_PIN 8u

const char tvmq_board_name[] = "nrf5340dk";

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    TVMQ_SYSTEM_VECTORS};

void Reset_Handler(void) { tvmq_cortexm_start(); }

static volatile uint8_t rx_byte;
static uint8_t tx_buffer[64]; /* EasyDMA reads RAM only, not flash */

void tvmq_board_init(void) {
  CLOCK_HFCLKCTRL = 0; /* DIV1: 128 MHz */
  CLOCK_TASKS_HFCLKSTART = 1;
  while (!CLOCK_EVENTS_HFCLKSTARTED) {
  }
  tvmq_cortexm_faults_init();
  GPIO_OUTSET(P1) = 1u << STAMP_PIN;
  GPIO_DIRSET(P1) = 1u << STAMP_PIN;
  UARTE_PSEL_TXD = 20u; /* P0.20, connected */
  UARTE_PSEL_RXD = 22u; /* P0.22 */
  UARTE_BAUDRATE = 0x01D7E000u; /* 115200 */
  UARTE_CONFIG = 0;             /* 8N1, no flow control */
  UARTE_ENABLE = 8u;
  UARTE_RXD_PTR = (uint32_t)(uintptr_t)&rx_byte;
  UARTE_RXD_MAXCNT = 1;
  UARTE_TASKS_STARTRX = 1;
  tvmq_cortexm_ticks_init();
}

void tvmq_board_write(const uint8_t *data, size_t n) {
  while (n) {
    size_t chunk = n < sizeof tx_buffer ? n : sizeof tx_buffer;
    memcpy(tx_buffer, data, chunk);
    UARTE_TXD_PTR = (uint32_t)(uintptr_t)tx_buffer;
    UARTE_TXD_MAXCNT = chunk;
    UARTE_EVENTS_ENDTX = 0;
    UARTE_TASKS_STARTTX = 1;
    while (!UARTE_EVENTS_ENDTX) {
    }
    data += chunk;
    n -= chunk;
  }
}

int tvmq_board_read_byte(void) {
  while (!UARTE_EVENTS_ENDRX) {
  }
  UARTE_EVENTS_ENDRX = 0;
  int c = rx_byte;
  UARTE_TASKS_STARTRX = 1;
  return c;
}

uint64_t tvmq_board_ticks(void) { return tvmq_cortexm_ticks(); }

uint32_t tvmq_board_tick_hz(void) { return CLOCK_HZ; }

void tvmq_board_tick_align(void) {}

void tvmq_board_timestamp(void) {
  GPIO_OUTCLR(P1) = 1u << STAMP_PIN;
  uint64_t until = tvmq_cortexm_ticks() + CLOCK_HZ / 500000u; /* 2 us */
  while (tvmq_cortexm_ticks() < until) {
  }
  GPIO_OUTSET(P1) = 1u << STAMP_PIN;
}

void tvmq_board_reset(void) { tvmq_cortexm_reset(); } /* writes end at ENDTX */

void tvmq_board_exit(int status) {
  (void)status;
  tvmq_cortexm_halt();
}
