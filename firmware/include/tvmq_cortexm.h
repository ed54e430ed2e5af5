/* Shared Cortex-M pieces for the board ports: core registers, the reset
 * handler, the fault handler, and a 64-bit tick counter.
 *
 * Header-only on purpose: `tvmq compile` copies include/, harness/ and one
 * boards/<board>/ directory, so code shared by several boards lives here. Each
 * board's board.c includes it once and builds its vector table from these
 * handlers. Two tick sources:
 *   - SysTick clocked by the core (TVMQ_TICKS_SYSTICK): works in QEMU, where it
 *     is deterministic under -icount; the 24-bit counter is extended to 64 bits
 *     by its wrap interrupt.
 *   - DWT CYCCNT (TVMQ_TICKS_DWT): the cycle counter of real silicon (it reads 0
 *     in QEMU), extended to 64 bits by a SysTick interrupt every 2^24 cycles,
 *     well inside the 2^32-cycle wrap.
 */
#ifndef TVMQ_CORTEXM_H
#define TVMQ_CORTEXM_H

#include <stdint.h>
#include <string.h>

#include "tvmq_board.h"

#define TVMQ_REG(address) (*(volatile uint32_t *)(address))

#define SYST_CSR TVMQ_REG(0xE000E010u)
#define SYST_RVR TVMQ_REG(0xE000E014u)
#define SYST_CVR TVMQ_REG(0xE000E018u)
#define SCB_VTOR TVMQ_REG(0xE000ED08u)
#define SCB_AIRCR TVMQ_REG(0xE000ED0Cu)
#define SCB_CFSR TVMQ_REG(0xE000ED28u)
#define SCB_HFSR TVMQ_REG(0xE000ED2Cu)
#define SCB_MMFAR TVMQ_REG(0xE000ED34u)
#define SCB_BFAR TVMQ_REG(0xE000ED38u)
#define SCB_CPACR TVMQ_REG(0xE000ED88u)
#define CORE_DEMCR TVMQ_REG(0xE000EDFCu)
#define DWT_CTRL TVMQ_REG(0xE0001000u)
#define DWT_CYCCNT TVMQ_REG(0xE0001004u)

#define SYSTICK_PERIOD (1u << 24)

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);

static inline void tvmq_dsb_isb(void) { __asm volatile("dsb\n\tisb" ::: "memory"); }

/* Copy .data, zero .bss, give the FPU access rights, then main(). */
__attribute__((noreturn)) static inline void tvmq_cortexm_start(void) {
  memcpy(&_sdata, &_sidata, (size_t)((char *)&_edata - (char *)&_sdata));
  memset(&_sbss, 0, (size_t)((char *)&_ebss - (char *)&_sbss));
#if defined(__ARM_FP)
  SCB_CPACR |= 0xFu << 20; /* CP10, CP11: full access */
  tvmq_dsb_isb();
#endif
  tvmq_board_exit(main());
}

static volatile uint32_t tvmq_tick_high; /* SysTick wraps, or CYCCNT wraps */

#if defined(TVMQ_TICKS_DWT)
static volatile uint32_t tvmq_cyccnt_last;

/* CYCCNT extended to 64 bits; also called from the SysTick interrupt so that a
 * wrap is never missed. Interrupts are masked while the two halves update. */
static inline uint64_t tvmq_cortexm_ticks(void) {
  uint32_t primask;
  __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
  uint32_t now = DWT_CYCCNT;
  if (now < tvmq_cyccnt_last) tvmq_tick_high++;
  tvmq_cyccnt_last = now;
  uint64_t result = ((uint64_t)tvmq_tick_high << 32) | now;
  __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
  return result;
}

static inline void tvmq_cortexm_ticks_init(void) {
  CORE_DEMCR |= 1u << 24; /* TRCENA */
  DWT_CYCCNT = 0;
  DWT_CTRL |= 1u; /* CYCCNTENA */
  SYST_RVR = SYSTICK_PERIOD - 1;
  SYST_CVR = 0;
  SYST_CSR = 7; /* core clock, interrupt, enable */
}

void SysTick_Handler(void) { (void)tvmq_cortexm_ticks(); }
#else
/* SysTick counts down at the core clock and interrupts when it reaches 0, which
 * is where a period of 2^24 ticks starts here: 0 -> 0, 2^24-1 -> 1, ... 1 -> 2^24-1.
 * Reading the wrap count again catches an interrupt taken in between. */
static inline uint64_t tvmq_cortexm_ticks(void) {
  uint32_t high, value;
  do {
    high = tvmq_tick_high;
    value = SYST_CVR;
  } while (high != tvmq_tick_high);
  return ((uint64_t)high << 24) + ((SYSTICK_PERIOD - value) & (SYSTICK_PERIOD - 1u));
}

static inline void tvmq_cortexm_ticks_init(void) {
  SYST_RVR = SYSTICK_PERIOD - 1;
  SYST_CVR = 0;
  SYST_CSR = 7; /* core clock, interrupt, enable */
}

void SysTick_Handler(void) { tvmq_tick_high++; }
#endif

/* The fault handlers find the stacked exception frame and report it. */
__attribute__((used)) static void tvmq_fault_frame(const uint32_t *frame, uint32_t kind) {
  static const char *const names[] = {"hardfault", "memmanage", "busfault", "usagefault"};
  uint32_t cfsr = SCB_CFSR;
  uint32_t address = (cfsr & 0x80u) ? SCB_MMFAR : (cfsr & 0x8000u) ? SCB_BFAR : 0u;
  tvmq_harness_fault(names[kind & 3u], frame[6], frame[5], cfsr | (SCB_HFSR & 0x40000002u),
                     address);
}

#define TVMQ_FAULT_HANDLER(name, kind)                                   \
  __attribute__((naked)) void name(void) {                               \
    __asm volatile("tst lr, #4\n\t"                                      \
                   "ite eq\n\t"                                          \
                   "mrseq r0, msp\n\t"                                   \
                   "mrsne r0, psp\n\t"                                   \
                   "movs r1, #" #kind "\n\t"                             \
                   "b tvmq_fault_frame\n\t");                            \
  }

TVMQ_FAULT_HANDLER(HardFault_Handler, 0)
TVMQ_FAULT_HANDLER(MemManage_Handler, 1)
TVMQ_FAULT_HANDLER(BusFault_Handler, 2)
TVMQ_FAULT_HANDLER(UsageFault_Handler, 3)

static void tvmq_default_handler(void) {
  tvmq_harness_fault("unexpected-interrupt", 0, 0, 0, 0);
}

void Reset_Handler(void);

/* The 16 system exception vectors; no external interrupt is enabled. */
#define TVMQ_SYSTEM_VECTORS                                                          \
  (void (*)(void))(uintptr_t)&_estack, Reset_Handler, tvmq_default_handler,          \
      HardFault_Handler, MemManage_Handler, BusFault_Handler, UsageFault_Handler,    \
      tvmq_default_handler, 0, 0, 0, tvmq_default_handler, tvmq_default_handler, 0,  \
      tvmq_default_handler, SysTick_Handler

/* Enable the configurable faults so that they are reported by name. */
#define SCB_SHCSR TVMQ_REG(0xE000ED24u)
static inline void tvmq_cortexm_faults_init(void) { SCB_SHCSR |= 7u << 16; }

/* SYSRESETREQ, keeping the priority grouping. */
__attribute__((noreturn)) static inline void tvmq_cortexm_reset(void) {
  tvmq_dsb_isb();
  SCB_AIRCR = (0x5FAu << 16) | (SCB_AIRCR & 0x700u) | (1u << 2);
  tvmq_dsb_isb();
  for (;;) {
  }
}

/* Real boards: wait for the UART to drain, then sleep for good. */
__attribute__((noreturn)) static inline void tvmq_cortexm_halt(void) {
  for (;;) __asm volatile("wfi");
}

/* Semihosting SYS_EXIT_EXTENDED: ends QEMU (-semihosting-config enable=on) with
 * this status. Only for emulated boards: on silicon without a debugger the
 * BKPT would fault. */
__attribute__((noreturn)) static inline void tvmq_semihosting_exit(int status) {
  uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
  register uint32_t r0 __asm("r0") = 0x20u;
  register uint32_t r1 __asm("r1") = (uint32_t)(uintptr_t)block;
  __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  for (;;) {
  }
}

#endif /* TVMQ_CORTEXM_H */
