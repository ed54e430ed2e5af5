/* The host "board": the harness as a Linux process, for tests and fuzzing.
 * The link is stdin/stdout, or with TVMQ_HOST_PORT=N a TCP connection accepted
 * on 127.0.0.1:N (0: any free port, printed on stderr as "listening on PORT").
 * A reset re-executes the program, keeping the connection (TVMQ_HOST_FD), so
 * that RAM state is lost as on a board; SIGUSR1 resets it from outside, which is
 * how the fault proxy resets the board mid-run. Ticks are CLOCK_MONOTONIC ns. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tvmq_board.h"

const char tvmq_board_name[] = "host";

static int in_fd = 0, out_fd = 1;
static char self_path[4096];

static void on_reset_signal(int signal_number) {
  (void)signal_number;
  tvmq_board_reset();
}

static int accept_one(const char *port_text) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
  struct sockaddr_in address = {0};
  socklen_t size = sizeof address;
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons((uint16_t)atoi(port_text));
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 ||
      listen(listener, 1) != 0 || getsockname(listener, (struct sockaddr *)&address, &size) != 0) {
    perror("tvmq host board");
    exit(2);
  }
  fprintf(stderr, "listening on %d\n", ntohs(address.sin_port));
  int connection = accept(listener, NULL, NULL);
  close(listener);
  if (connection < 0) {
    perror("tvmq host board: accept");
    exit(2);
  }
  setsockopt(connection, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return connection;
}

void tvmq_board_init(void) {
  const char *fd = getenv("TVMQ_HOST_FD"), *port = getenv("TVMQ_HOST_PORT");
  signal(SIGPIPE, SIG_IGN);
  ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  self_path[n > 0 ? n : 0] = 0;
  if (fd || port) {
    in_fd = out_fd = fd ? atoi(fd) : accept_one(port);
    char text[16];
    snprintf(text, sizeof text, "%d", in_fd);
    setenv("TVMQ_HOST_FD", text, 1);
  }
  /* exec keeps the signal mask, and a reset from the handler has SIGUSR1 blocked */
  sigset_t reset_signal;
  sigemptyset(&reset_signal);
  sigaddset(&reset_signal, SIGUSR1);
  sigprocmask(SIG_UNBLOCK, &reset_signal, NULL);
  signal(SIGUSR1, on_reset_signal);
}

void tvmq_board_write(const uint8_t *data, size_t n) {
  while (n) {
    ssize_t done = write(out_fd, data, n);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) _exit(0); /* the host went away */
    data += done;
    n -= (size_t)done;
  }
}

int tvmq_board_read_byte(void) {
  static uint8_t buffer[4096];
  static size_t at, filled;
  while (at == filled) {
    ssize_t n = read(in_fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    at = 0;
    filled = (size_t)n;
  }
  return buffer[at++];
}

uint64_t tvmq_board_ticks(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

uint32_t tvmq_board_tick_hz(void) { return 1000000000u; }

void tvmq_board_tick_align(void) {}

void tvmq_board_timestamp(void) {}

void tvmq_board_reset(void) {
  char *const arguments[] = {self_path, NULL};
  execv(self_path, arguments);
  _exit(4);
}

void tvmq_board_exit(int status) { exit(status); }
