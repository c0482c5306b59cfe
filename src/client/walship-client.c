/*
 * walship-client: what `walship archive-push` and `walship archive-fetch` run first. It forwards
 * the call (its working directory, its arguments and the WALSHIP_*, AWS_*, PG*, HOME and
 * XDG_STATE_HOME variables) to the data directory's agent (src/agent/agent.ts) over a unix socket, and exits
 * with the agent's answer. It decides nothing: when there is no agent, when the agent is not
 * this user's (SO_PEERCRED) or of another build, when it declines the call or goes away before
 * answering, the call runs in node exactly as it does without an agent (exec, same arguments,
 * same environment). The protocol is src/agent/protocol.ts; the socket's place, src/agent/place.ts.
 *
 * Built by `npm run build` (scripts/build-native.mjs) with the build's id (WALSHIP_BUILD_ID) and
 * the node that built walship (WALSHIP_NODE) compiled in; Linux only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;
static int g_argc;
static char **g_argv;

/* The call in node: <root>/dist/walship-client -> <root>/bin/walship.js. Never returns. */
static void run_node(void) __attribute__((noreturn));
static void run_node(void) {
  char exe[PATH_MAX], script[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    for (int up = 0; up < 2; up++) {
      char *slash = strrchr(exe, '/');
      if (slash) *slash = '\0';
    }
    snprintf(script, sizeof script, "%s/bin/walship.js", exe);
    char **args = calloc((size_t)g_argc + 2, sizeof *args);
    if (args) {
      args[0] = "node";
      args[1] = script;
      for (int i = 1; i < g_argc; i++) args[i + 1] = g_argv[i];
      if (WALSHIP_NODE[0] == '/') execv(WALSHIP_NODE, args);
      execvp("node", args);
    }
  }
  /* A failure, never "not in the archive" nor "archived": PostgreSQL must not go on as if. */
  fprintf(stderr, "walship ERROR [%s] cannot start node: %s code=INTERNAL\n", g_argc > 1 ? g_argv[1] : "walship", strerror(errno));
  exit(255);
}

/*
 * run_node, saying why (WALSHIP_CLIENT_FALLBACK, which node reads and removes): no agent listened
 * ("absent"), or one did not answer the call ("declined": another user's or build's, it declined,
 * or it went away). Node starts the helpers of a call it runs accordingly; nothing else.
 */
static void fall_back(const char *why) __attribute__((noreturn));
static void fall_back(const char *why) {
  setenv("WALSHIP_CLIENT_FALLBACK", why, 1);
  run_node();
}

static int write_all(int fd, const void *p, size_t len) {
  const char *c = p;
  while (len > 0) {
    ssize_t w = write(fd, c, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    len -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t len) {
  char *c = p;
  while (len > 0) {
    ssize_t r = read(fd, c, len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    c += r;
    len -= (size_t)r;
  }
  return 0;
}

static int put_u32(int fd, uint32_t v) {
  unsigned char b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
  return write_all(fd, b, 4);
}

static int get_u32(int fd, uint32_t *v) {
  unsigned char b[4];
  if (read_all(fd, b, 4) != 0) return -1;
  *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
  return 0;
}

static int put_str(int fd, const char *s) {
  size_t len = strlen(s);
  return put_u32(fd, (uint32_t)len) == 0 && write_all(fd, s, len) == 0 ? 0 : -1;
}

static int forwarded(const char *e) {
  if (strncmp(e, "WALSHIP_CLIENT_FALLBACK=", 24) == 0) return 0;
  return strncmp(e, "WALSHIP_", 8) == 0 || strncmp(e, "AWS_", 4) == 0 || strncmp(e, "PG", 2) == 0 || strncmp(e, "HOME=", 5) == 0 ||
         strncmp(e, "XDG_STATE_HOME=", 15) == 0;
}

int main(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
  if (argc < 2 || (strcmp(argv[1], "archive-push") != 0 && strcmp(argv[1], "archive-fetch") != 0)) run_node();
  const char *off = getenv("WALSHIP_AGENT");
  if (off && strcmp(off, "off") == 0) run_node();

  /* The socket beside the working directory (the data directory): <parent>/walship-agent.<name>/agent.sock */
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, "/") == 0) run_node();
  char *slash = strrchr(cwd, '/');
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  *slash = '\0';
  int len = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/walship-agent.%s/agent.sock", cwd, slash + 1);
  *slash = '/';
  if (len < 0 || (size_t)len >= sizeof addr.sun_path) run_node();

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) fall_back("absent");
  /* The agent must be this user's. */
  struct ucred cred;
  socklen_t cl = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cred.uid != geteuid()) fall_back("declined");
  /* ... and of this build: its hello, within a second. */
  struct timeval tv = {.tv_sec = 1};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const char *want = "WSA1 " WALSHIP_BUILD_ID;
  char hello[128];
  uint32_t hl;
  if (get_u32(fd, &hl) != 0 || hl != strlen(want) || read_all(fd, hello, hl) != 0 || memcmp(hello, want, hl) != 0) fall_back("declined");
  tv.tv_sec = 0;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  /* The request: working directory, arguments, forwarded environment. */
  uint32_t n = 2 + (uint32_t)(argc - 1);
  for (char **e = environ; *e; e++) n += forwarded(*e);
  char count[16];
  snprintf(count, sizeof count, "%d", argc - 1);
  int bad = put_u32(fd, n) || put_str(fd, cwd) || put_str(fd, count);
  for (int i = 1; i < argc && !bad; i++) bad = put_str(fd, argv[i]);
  for (char **e = environ; *e && !bad; e++) bad = forwarded(*e) && put_str(fd, *e);
  if (bad) fall_back("declined");

  /* The answer: 'A', exit code, stderr; or 'D' (declined), or nothing (the agent went away). */
  char kind;
  uint32_t code, errlen;
  if (read_all(fd, &kind, 1) != 0 || kind != 'A' || get_u32(fd, &code) != 0 || get_u32(fd, &errlen) != 0) fall_back("declined");
  char buf[65536];
  while (errlen > 0) {
    size_t chunk = errlen < sizeof buf ? errlen : sizeof buf;
    if (read_all(fd, buf, chunk) != 0) break;
    write_all(2, buf, chunk);
    errlen -= (uint32_t)chunk;
  }
  return (int)(code & 0xff);
}
