/* What the harness needs from a board, and nothing more: one port per board in
 * firmware/boards/<board>/ implements it (register level, no vendor SDK). */
#ifndef TVMQ_BOARD_H
#define TVMQ_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Board name, reported by HELLO and `name%`. */
extern const char tvmq_board_name[];

/* Clocks, UART, tick counter and timestamp pin; called once, first thing in main(). */
void tvmq_board_init(void);

/* Blocking write of n bytes to the host link. */
void tvmq_board_write(const uint8_t *data, size_t n);

/* Blocking read of one byte (0..255); -1 only where the link can end (host board). */
int tvmq_board_read_byte(void);

/* Monotonic 64-bit tick counter and its frequency in Hz. */
uint64_t tvmq_board_ticks(void);
uint32_t tvmq_board_tick_hz(void);

/* Returns at a fixed phase of the tick counter, so that the same code measures
 * the same ticks (QEMU -icount: sleep until the next SysTick interrupt; other
 * boards: nothing to do). */
void tvmq_board_tick_align(void);

/* EEMBC energy mode: a falling edge held >= 1 us on the timestamp pin.
 * A no-op on boards without one (emulated and host boards). */
void tvmq_board_timestamp(void);

/* Restart the board as from power-on (all RAM state is lost). */
void tvmq_board_reset(void) __attribute__((noreturn));

/* Stop: ends the emulator (semihosting) or the host process with this status;
 * real boards halt (sleep forever) so that a fault report stays the last word. */
void tvmq_board_exit(int status) __attribute__((noreturn));

/* Implemented by the harness, called by a board's fault handler: reports the
 * fault to the host in the current protocol, then exits with status 3. */
void tvmq_harness_fault(const char *what, uint32_t pc, uint32_t lr, uint32_t cfsr,
                        uint32_t address) __attribute__((noreturn));

#endif /* TVMQ_BOARD_H */
