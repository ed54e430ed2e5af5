/* ST NUCLEO-H7A3ZI-Q (STM32H7A3ZIT6Q), register level after RM0455:
 *   power  direct SMPS supply (the -Q board's configuration), VOS0
 *   clock  HSI 64 MHz /4 -> PLL1 x35 = 560 MHz VCO, /2 = 280 MHz core,
 *          AHB 140 MHz, APB1..4 70 MHz, 6 flash wait states
 *   caches I-cache and D-cache on (no DMA is used, so no maintenance needed)
 *   UART   USART3 on PD8 (TX) / PD9 (RX), AF7: the ST-LINK virtual COM port,
 *          115200 8N1 from PCLK1 = 70 MHz
 *   ticks  DWT cycle counter (280 MHz), extended to 64 bits (tvmq_cortexm.h)
 *   stamp  Arduino D7 = PG12 (NUCLEO-144 H7 pinout), idle high, low ~2 us
 * NOT VERIFIED ON HARDWARE: built and linked only. A wrong supply
 * configuration can lock the chip until it is erased under reset; check
 * PWR_CR3 against the board's solder bridges before flashing. The flash
 * latency / WRHIGHFREQ pair for 280 MHz and the D7 pin are from the manuals. */
#include "tvmq_board.h"
#include "tvmq_cortexm.h"

#define RCC 0x58024400u
#define RCC_CR TVMQ_REG(RCC + 0x00u)
#define RCC_CFGR TVMQ_REG(RCC + 0x10u)
#define RCC_CDCFGR1 TVMQ_REG(RCC + 0x18u)
#define RCC_CDCFGR2 TVMQ_REG(RCC + 0x1Cu)
#define RCC_SRDCFGR TVMQ_REG(RCC + 0x20u)
#define RCC_PLLCKSELR TVMQ_REG(RCC + 0x28u)
#define RCC_PLLCFGR TVMQ_REG(RCC + 0x2Cu)
#define RCC_PLL1DIVR TVMQ_REG(RCC + 0x30u)
#define RCC_AHB4ENR TVMQ_REG(RCC + 0x140u)
#define RCC_APB1LENR TVMQ_REG(RCC + 0xE8u)
#define PWR_CSR1 TVMQ_REG(0x58024804u)
#define PWR_CR3 TVMQ_REG(0x5802480Cu)
#define PWR_SRDCR TVMQ_REG(0x58024818u)
#define FLASH_ACR TVMQ_REG(0x52002000u)
#define SCB_CCR TVMQ_REG(0xE000ED14u)
#define SCB_CSSELR TVMQ_REG(0xE000ED84u)
#define SCB_CCSIDR TVMQ_REG(0xE000ED80u)
#define SCB_ICIALLU TVMQ_REG(0xE000EF50u)
#define SCB_DCISW TVMQ_REG(0xE000EF60u)
#define GPIOD 0x58020C00u
#define GPIOG 0x58021800u
#define GPIO_MODER(port) TVMQ_REG((port) + 0x00u)
#define GPIO_OSPEEDR(port) TVMQ_REG((port) + 0x08u)
#define GPIO_BSRR(port) TVMQ_REG((port) + 0x18u)
#define GPIO_AFRH(port) TVMQ_REG((port) + 0x24u)
#define USART3 0x40004800u
#define UART_CR1 TVMQ_REG(USART3 + 0x00u)
#define UART_BRR TVMQ_REG(USART3 + 0x0Cu)
#define UART_ISR TVMQ_REG(USART3 + 0x1Cu)
#define UART_ICR TVMQ_REG(USART3 + 0x20u)
#define UART_RDR TVMQ_REG(USART3 + 0x24u)
#define UART_TDR TVMQ_REG(USART3 + 0x28u)
#define ISR_ORE (1u << 3)
#define ISR_RXNE (1u << 5)
#define ISR_TC (1u << 6)
#define ISR_TXE (1u << 7)
#define CLOCK_HZ 280000000u
#define PCLK1_HZ 70000000u
#define STAMP_PIN 12u

const char tvmq_board_name[] = "nucleo-h7a3zi";

__attribute__((section(".isr_vector"), used)) static void (*const vectors[16])(void) = {
    TVMQ_SYSTEM_VECTORS};

void Reset_Handler(void) { tvmq_cortexm_start(); }

static void caches_on(void) {
  SCB_ICIALLU = 0;
  tvmq_dsb_isb();
  SCB_CCR |= 1u << 17; /* IC */
  SCB_CSSELR = 0;      /* level 1 data cache */
  tvmq_dsb_isb();
  uint32_t ccsidr = SCB_CCSIDR;
  uint32_t sets = (ccsidr >> 13) & 0x7FFFu, ways = (ccsidr >> 3) & 0x3FFu;
  for (uint32_t set = 0; set <= sets; set++)
    for (uint32_t way = 0; way <= ways; way++) SCB_DCISW = (way << 30) | (set << 5);
  tvmq_dsb_isb();
  SCB_CCR |= 1u << 16; /* DC */
  tvmq_dsb_isb();
}

static void clock_280mhz(void) {
  PWR_CR3 = (PWR_CR3 & ~0x7u) | (1u << 2); /* SMPSEN, LDOEN = 0, BYPASS = 0 */
  while (!(PWR_CSR1 & (1u << 13))) {       /* ACTVOSRDY */
  }
  PWR_SRDCR |= 3u << 14; /* VOS0 */
  while (!(PWR_SRDCR & (1u << 13))) { /* VOSRDY */
  }
  FLASH_ACR = 6u | (3u << 4); /* LATENCY 6, WRHIGHFREQ 3 */
  while ((FLASH_ACR & 0xFu) != 6u) {
  }
  RCC_PLLCKSELR = (RCC_PLLCKSELR & ~0x3F3u) | (4u << 4); /* HSI, DIVM1 = 4: 16 MHz */
  RCC_PLLCFGR = (RCC_PLLCFGR & ~0xFu) | (3u << 2) | (1u << 16); /* 8-16 MHz in, wide VCO, P on */
  RCC_PLL1DIVR = (34u << 0) | (1u << 9) | (1u << 16) | (1u << 24); /* N=35, P=Q=R=2 */
  RCC_CR |= 1u << 24; /* PLL1ON */
  while (!(RCC_CR & (1u << 25))) {
  }
  RCC_CDCFGR1 = 8u /* HPRE /2 */ | (4u << 4) /* CDPPRE /2 */;
  RCC_CDCFGR2 = (4u << 4) | (4u << 8); /* CDPPRE1, CDPPRE2 /2 */
  RCC_SRDCFGR = 4u << 4;               /* SRDPPRE /2 */
  RCC_CFGR = (RCC_CFGR & ~0x7u) | 3u;  /* system clock = PLL1 P */
  while (((RCC_CFGR >> 3) & 0x7u) != 3u) {
  }
}

void tvmq_board_init(void) {
  clock_280mhz();
  caches_on();
  tvmq_cortexm_faults_init();
  RCC_AHB4ENR |= (1u << 3) | (1u << 6); /* GPIOD, GPIOG */
  GPIO_AFRH(GPIOD) = (GPIO_AFRH(GPIOD) & ~0xFFu) | 0x77u; /* PD8, PD9 AF7 */
  GPIO_MODER(GPIOD) = (GPIO_MODER(GPIOD) & ~(0xFu << 16)) | (0xAu << 16);
  GPIO_BSRR(GPIOG) = 1u << STAMP_PIN;
  GPIO_OSPEEDR(GPIOG) |= 3u << (2 * STAMP_PIN);
  GPIO_MODER(GPIOG) = (GPIO_MODER(GPIOG) & ~(3u << (2 * STAMP_PIN))) | (1u << (2 * STAMP_PIN));
  RCC_APB1LENR |= 1u << 18; /* USART3EN, kernel clock PCLK1 */
  UART_BRR = (PCLK1_HZ + 57600u) / 115200u;
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
    if (isr & ISR_ORE) UART_ICR = ISR_ORE; /* lost bytes: the frame CRC will tell */
  }
}

uint64_t tvmq_board_ticks(void) { return tvmq_cortexm_ticks(); }

uint32_t tvmq_board_tick_hz(void) { return CLOCK_HZ; }

void tvmq_board_tick_align(void) {}

void tvmq_board_timestamp(void) {
  GPIO_BSRR(GPIOG) = 1u << (16 + STAMP_PIN);
  uint64_t until = tvmq_cortexm_ticks() + CLOCK_HZ / 500000u; /* 2 us */
  while (tvmq_cortexm_ticks() < until) {
  }
  GPIO_BSRR(GPIOG) = 1u << STAMP_PIN;
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
