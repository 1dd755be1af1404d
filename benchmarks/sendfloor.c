/* sendfloor - the physical floor for fan-out on this machine.
 *
 * Opens N loopback TCP connections between two processes: the sender
 * (playing the server) writes the same WebSocket frame bytes to every
 * connection in back-to-back rounds, one send() per frame, and the receiver
 * (playing the viewers) drains them with epoll. Reports frames/s and the
 * sender's CPU time per frame (getrusage): what one small write per viewer
 * per tick costs at best, loopback delivery on the sender's core included.
 *
 * With --tick-ms T a round starts every T ms (back to back when a round takes
 * longer), as a coalescing server writes; the receiver then sleeps between
 * rounds and each write pays for waking it, as with a real client. With
 * --tick-ms 0 rounds run back to back and the receiver hardly ever sleeps.
 *
 * usage: sendfloor [--connections N] [--duration S] [--tick-ms T]
 *                  [--sender-cpu C] [--receiver-cpu C] [--source-ips A-B]
 *                  [--json FILE]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A tick update as clapsd writes it: header + one counts item. */
static const char payload[] =
    "{\"type\":\"counts\",\"counts\":[{\"article\":\"a0\",\"total\":123456,\"viewers\":19900}]}";

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rusage_s(int who) {
  struct rusage u;
  getrusage(who, &u);
  return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
         u.ru_stime.tv_usec / 1e6;
}

static void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sendfloor: sched_setaffinity");
}

static void die(const char* what) {
  perror(what);
  exit(1);
}

static int write_all(int fd, const void* buf, size_t len) {
  const char* p = buf;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int read_all(int fd, void* buf, size_t len) {
  char* p = buf;
  while (len) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

struct receiver_report {
  uint64_t bytes;
  double cpu_s;
};

/* The viewers: connect N sockets, say ready, drain until every one is closed. */
static void run_receiver(int n, int port, uint32_t ip_first, uint32_t ip_last, int ready_fd, int report_fd) {
  int* fds = calloc((size_t)n, sizeof *fds);
  int ep = epoll_create1(0);
  if (!fds || ep < 0) die("sendfloor receiver");
  struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < n; ++i) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (fds[i] < 0) die("sendfloor: socket");
    if (ip_first) {
      int one = 1;
      setsockopt(fds[i], IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      struct sockaddr_in src = {.sin_family = AF_INET};
      src.sin_addr.s_addr = htonl(ip_first + (uint32_t)i % (ip_last - ip_first + 1));
      if (bind(fds[i], (struct sockaddr*)&src, sizeof src) != 0) die("sendfloor: bind");
    }
    if (connect(fds[i], (struct sockaddr*)&server, sizeof server) != 0) die("sendfloor: connect");
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) die("sendfloor: epoll_ctl");
  }
  char ok = 1;
  if (write_all(ready_fd, &ok, 1) != 0) die("sendfloor: ready pipe");
  static char buf[1 << 16];
  struct epoll_event events[1024];
  uint64_t bytes = 0;
  int open_fds = n;
  while (open_fds > 0) {
    int k = epoll_wait(ep, events, 1024, 1000);
    if (k < 0 && errno == EINTR) continue;
    for (int e = 0; e < k; ++e) {
      int fd = fds[events[e].data.u32];
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r > 0) {
        bytes += (uint64_t)r;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
        --open_fds;
      }
    }
  }
  struct receiver_report report = {bytes, rusage_s(RUSAGE_SELF)};
  write_all(report_fd, &report, sizeof report);
  exit(0);
}

static int parse_ip(const char* s, uint32_t* out) {
  struct in_addr a;
  if (inet_pton(AF_INET, s, &a) != 1) return -1;
  *out = ntohl(a.s_addr);
  return 0;
}

int main(int argc, char** argv) {
  int n = 1000, sender_cpu = -1, receiver_cpu = -1;
  double duration = 5, tick_ms = 0;
  const char* json = NULL;
  uint32_t ip_first = 0, ip_last = 0;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--connections") && v) n = atoi(argv[++i]);
    else if (!strcmp(a, "--duration") && v) duration = atof(argv[++i]);
    else if (!strcmp(a, "--tick-ms") && v) tick_ms = atof(argv[++i]);
    else if (!strcmp(a, "--sender-cpu") && v) sender_cpu = atoi(argv[++i]);
    else if (!strcmp(a, "--receiver-cpu") && v) receiver_cpu = atoi(argv[++i]);
    else if (!strcmp(a, "--json") && v) json = argv[++i];
    else if (!strcmp(a, "--source-ips") && v) {
      char range[64];
      snprintf(range, sizeof range, "%s", argv[++i]);
      char* dash = strchr(range, '-');
      if (dash) *dash = 0;
      if (parse_ip(range, &ip_first) != 0 || parse_ip(dash ? dash + 1 : range, &ip_last) != 0 ||
          ip_last < ip_first) {
        fprintf(stderr, "sendfloor: --source-ips takes A.B.C.D-A.B.C.E\n");
        return 2;
      }
    } else {
      fprintf(stderr,
              "usage: sendfloor [--connections N] [--duration S] [--tick-ms T] [--sender-cpu C]\n"
              "                 [--receiver-cpu C] [--source-ips A-B] [--json FILE]\n");
      return 2;
    }
  }
  if (n < 1) n = 1;
  struct rlimit limit;
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);

  /* The frame: FIN + text opcode, unmasked (server to client), 7-bit length. */
  char frame[256];
  size_t payload_len = sizeof payload - 1;
  frame[0] = (char)0x81;
  frame[1] = (char)payload_len;
  memcpy(frame + 2, payload, payload_len);
  size_t frame_len = payload_len + 2;

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listener < 0 || bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0 ||
      listen(listener, 4096) != 0)
    die("sendfloor: listen");
  socklen_t addr_len = sizeof addr;
  getsockname(listener, (struct sockaddr*)&addr, &addr_len);

  int ready_pipe[2], report_pipe[2];
  if (pipe(ready_pipe) != 0 || pipe(report_pipe) != 0) die("sendfloor: pipe");
  pid_t child = fork();
  if (child < 0) die("sendfloor: fork");
  if (child == 0) {
    close(listener);
    pin(receiver_cpu);
    run_receiver(n, ntohs(addr.sin_port), ip_first, ip_last, ready_pipe[1], report_pipe[1]);
  }
  pin(sender_cpu);
  int* fds = calloc((size_t)n, sizeof *fds);
  if (!fds) die("sendfloor: calloc");
  for (int i = 0; i < n; ++i) {
    fds[i] = accept(listener, NULL, NULL);
    if (fds[i] < 0) die("sendfloor: accept");
    int one = 1;
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  char ok;
  if (read_all(ready_pipe[0], &ok, 1) != 0) die("sendfloor: receiver failed");

  uint64_t frames = 0, eagain = 0, rounds = 0;
  double cpu0 = rusage_s(RUSAGE_SELF);
  double t0 = now_s(), t = t0, next_round = t0;
  while (t - t0 < duration) {
    if (tick_ms > 0) {
      /* Sleep to the next tick; a late round starts at once and resets the schedule. */
      if (next_round > t) {
        struct timespec ts = {(time_t)(next_round - t),
                              (long)((next_round - t - (double)(time_t)(next_round - t)) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        next_round += tick_ms / 1000.0;
      } else {
        next_round = t + tick_ms / 1000.0;
      }
      if (now_s() - t0 >= duration) break;
    }
    for (int i = 0; i < n; ++i) {
      ssize_t w = send(fds[i], frame, frame_len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w == (ssize_t)frame_len) ++frames;
      else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ++eagain;
      else die("sendfloor: send");
    }
    ++rounds;
    t = now_s();
  }
  double cpu = rusage_s(RUSAGE_SELF) - cpu0;
  double elapsed = t - t0;
  for (int i = 0; i < n; ++i) close(fds[i]);
  struct receiver_report report = {0, 0};
  if (read_all(report_pipe[0], &report, sizeof report) != 0)
    fprintf(stderr, "sendfloor: no receiver report\n");
  waitpid(child, NULL, 0);

  double fps = frames / elapsed;
  double us_per_frame = frames ? cpu * 1e6 / (double)frames : 0;
  printf(
      "sendfloor: %d connections, %zu-byte frames, tick %.0f ms, %.1f s: %.0f frames/s, %.2f us CPU per frame "
      "(%.0f%% of a core), %llu rounds, %llu EAGAIN, receiver got %llu frames\n",
      n, frame_len, tick_ms, elapsed, fps, us_per_frame, cpu / elapsed * 100, (unsigned long long)rounds,
      (unsigned long long)eagain, (unsigned long long)(report.bytes / frame_len));
  if (json) {
    FILE* f = fopen(json, "w");
    if (!f) die("sendfloor: json");
    fprintf(
        f,
        "{\n  \"connections\": %d,\n  \"frame_bytes\": %zu,\n  \"tick_ms\": %.1f,\n  \"duration_s\": %.3f,\n  \"frames\": %llu,\n"
        "  \"frames_per_s\": %.1f,\n  \"cpu_s\": %.3f,\n  \"cpu_pct\": %.1f,\n  \"cpu_us_per_frame\": %.3f,\n"
        "  \"rounds\": %llu,\n  \"eagain\": %llu,\n  \"frames_received\": %llu,\n  \"receiver_cpu_s\": %.3f\n}\n",
        n, frame_len, tick_ms, elapsed, (unsigned long long)frames, fps, cpu, cpu / elapsed * 100,
        us_per_frame, (unsigned long long)rounds, (unsigned long long)eagain,
        (unsigned long long)(report.bytes / frame_len), report.cpu_s);
    fclose(f);
  }
  return 0;
}
