/* ST NUCLEO-L4R5ZI (STM32L4R5ZI), register level after RM0432:
 *   clock  HSI16 -> PLL (M=1, N=15, R=2) = 120 MHz, range 1 boost mode, 5 flash
 *          wait states, through AHB /2 for the switch as RM0432 asks above 80 MHz
 *   UART   LPUART1 on PG7 (TX) / PG8 (RX), AF8: the ST-LINK virtual COM port;
 *          port G needs VDDIO2 (PWR_CR2.IOSV); 115200 8N1 from PCLK1 = 120 MHz
 *   ticks  DWT cycle counter (120 MHz), extended to 64 bits (tvmq_cortexm.h)
 *   stamp  Arduino D7 = PF13 (NUCLEO-144 pinout), idle high, pulled low ~2 us
 * NOT VERIFIED ON HARDWARE: built and linked only. In particular the D7 pin,
 * the boost-mode sequence and the VCP wiring (solder bridges) are from the
 * manuals, not from a board on the desk. */
#include "tvmq_board.h"
#include "tvmq_cortexm.h"

#define RCC 0x40021000u
#define RCC_CR TVMQ_REG(RCC + 0x00u)
#define RCC_CFGR TVMQ_REG(RCC + 0x08u)
#define RCC_PLLCFGR TVMQ_REG(RCC + 0x0Cu)
#define RCC_AHB2ENR TVMQ_REG(RCC + 0x4Cu)
#define RCC_APB1ENR1 TVMQ_REG(RCC + 0x58u)
#define RCC_APB1ENR2 TVMQ_REG(RCC + 0x5Cu)
#define PWR_CR2 TVMQ_REG(0x40007004u)
#define PWR_CR5 TVMQ_REG(0x40007080u)
#define FLASH_ACR TVMQ_REG(0x40022000u)
#define GPIOF 0x48001400u
#define GPIOG 0x48001800u
#define GPIO_MODER(port) TVMQ_REG((port) + 0x00u)
#define GPIO_OSPEEDR(port) TVMQ_REG((port) + 0x08u)
#define GPIO_BSRR(port) TVMQ_REG((port) + 0x18u)
#define GPIO_AFRL(port) TVMQ_REG((port) + 0x20u)
#define GPIO_AFRH(port) TVMQ_REG((port) + 0x24u)
#define LPUART1 0x40008000u
#define UART_CR1 TVMQ_REG(LPUART1 + 0x00u)
#define UART_BRR TVMQ_REG(LPUART1 + 0x0Cu)
#define UART_ISR TVMQ_REG(LPUART1 + 0x1Cu)
#define UART_RDR TVMQ_REG(LPUART1 + 0x24u)
#define UART_TDR TVMQ_REG(LPUART1 + 0x28u)
#define ISR_RXNE (1u << 5)
#define ISR_TC (1u << 6)
#define ISR_TXE (1u << 7)
#define ISR_ORE (1u << 3)
#define CLOCK_HZ 120000000u
#define STAMP_PIN 13u

const char tvmq_board_name[] = "nucleo-l4r5zi";

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    TVMQ_SYSTEM_VECTORS};

void Reset_Handler(void) { tvmq_cortexm_start(); }

static void clock_120mhz(void) {
  RCC_APB1ENR1 |= 1u << 28; /* PWREN */
  PWR_CR5 &= ~(1u << 8);    /* R1MODE = 0: range 1 boost */
  RCC_CR |= 1u << 8;        /* HSION */
  while (!(RCC_CR & (1u << 10))) {
  }
  FLASH_ACR = (FLASH_ACR & ~0xFu) | 5u;
  while ((FLASH_ACR & 0xFu) != 5u) {
  }
  RCC_PLLCFGR = 2u /* HSI16 */ | (0u << 4) /* M=1 */ | (15u << 8) /* N */ | (0u << 25) /* R=2 */ |
                (1u << 24) /* PLLREN */;
  RCC_CR |= 1u << 24; /* PLLON */
  while (!(RCC_CR & (1u << 25))) {
  }
  RCC_CFGR = (RCC_CFGR & ~0xF3u) | (8u << 4) /* AHB /2 */ | 3u /* PLL */;
  while ((RCC_CFGR & 0xCu) != 0xCu) {
  }
  for (volatile int i = 0; i < 200; i++) { /* >= 1 us at /2 before full speed */
  }
  RCC_CFGR &= ~0xF0u; /* AHB /1 */
}

void tvmq_board_init(void) {
  clock_120mhz();
  tvmq_cortexm_faults_init();
  RCC_AHB2ENR |= (1u << 5) | (1u << 6); /* GPIOF, GPIOG */
  PWR_CR2 |= 1u << 9;                    /* IOSV: VDDIO2 valid, port G usable */
  GPIO_AFRL(GPIOG) = (GPIO_AFRL(GPIOG) & ~(0xFu << 28)) | (8u << 28); /* PG7 AF8 */
  GPIO_AFRH(GPIOG) = (GPIO_AFRH(GPIOG) & ~0xFu) | 8u;                 /* PG8 AF8 */
  GPIO_MODER(GPIOG) = (GPIO_MODER(GPIOG) & ~(0xFu << 14)) | (0xAu << 14);
  GPIO_BSRR(GPIOF) = 1u << STAMP_PIN; /* idle high */
  GPIO_OSPEEDR(GPIOF) |= 3u << (2 * STAMP_PIN);
  GPIO_MODER(GPIOF) = (GPIO_MODER(GPIOF) & ~(3u << (2 * STAMP_PIN))) | (1u << (2 * STAMP_PIN));
  RCC_APB1ENR2 |= 1u; /* LPUART1EN, clocked by PCLK1 */
  UART_BRR = (uint32_t)(256ull * CLOCK_HZ / 115200u);
  UART_CR1 = (1u << 3) | (1u << 2) | 1u; /* TE, RE, UE */
  tvmq_cortexm_ticks_init();
}

void tvmq_board_write(const uint8_t *data, size_t n) {
  for (size_t i = 0; i < n; i++) {
    while (!(UART_ISR & ISR_TXE)) {
    }
    UART_TDR = data[i];
  }
}

int tvmq_board_read_byte(void) {
  for (;;) {
    uint32_t isr = UART_ISR;
    if (isr & ISR_RXNE) return (int)(UART_RDR & 0xFFu);
    if (isr & ISR_ORE) TVMQ_REG(LPUART1 + 0x20u) = ISR_ORE; /* ICR: the frame CRC will tell */
  }
}

uint64_t tvmq_board_ticks(void) { return tvmq_cortexm_ticks(); }

uint32_t tvmq_board_tick_hz(void) { return CLOCK_HZ; }

void tvmq_board_tick_align(void) {}

void tvmq_board_timestamp(void) {
  GPIO_BSRR(GPIOF) = 1u << (16 + STAMP_PIN);
  uint64_t until = tvmq_cortexm_ticks() + CLOCK_HZ / 500000u; /* 2 us */
  while (tvmq_cortexm_ticks() < until) {
  }
  GPIO_BSRR(GPIOF) = 1u << STAMP_PIN;
}

void tvmq_board_reset(void) {
  while (!(UART_ISR & ISR_TC)) {
  }
  tvmq_cortexm_reset();
}

void tvmq_board_exit(int status) {
  (void)status;
  while (!(UART_ISR & ISR_TC)) {
  }
  tvmq_cortexm_halt();
}
