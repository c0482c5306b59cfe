/*
 * What the compiled entries (walship-fetch.c, walship-push.c) share: handing a call to node,
 * reading walship's key=value files (src/archive/key-values.ts), finding and matching a ticket
 * (src/archive/ticket.ts), and writing a log line as walship's logger does (src/log.ts).
 * Header only: each entry is one program built from one file.
 */
#ifndef WALSHIP_NATIVE_COMMON_H
#define WALSHIP_NATIVE_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef WALSHIP_NODE
#define WALSHIP_NODE "node"
#endif

#define TICKET_FORMAT "1"
#define STALE_NS (15LL * 1000000000LL)
#define MAX_PAIRS 512
#define MAX_FLAGS 256
#define LIVE_CHECK_NS (500LL * 1000000LL)

extern char **environ;

static int g_argc;
static char **g_argv;

/* Runs the full walship in node with this call's arguments. Never returns. */
static void run_node(void) __attribute__((noreturn));
static void run_node(void) {
  char exe[PATH_MAX];
  char script[PATH_MAX + 32];
  const char *cmd = g_argc > 1 ? g_argv[1] : "walship";
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    fprintf(stderr, "walship ERROR [%s] cannot find walship's own directory (/proc/self/exe): %s code=INTERNAL\n", cmd, strerror(errno));
    exit(255);
  }
  exe[n] = '\0';
  /* <root>/dist/walship-<entry> -> <root>/bin/walship.js */
  for (int up = 0; up < 2; up++) {
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
  }
  snprintf(script, sizeof script, "%s/bin/walship.js", exe);
  char **args = calloc((size_t)g_argc + 2, sizeof *args);
  if (!args) exit(255);
  args[0] = "node";
  args[1] = script;
  for (int i = 1; i < g_argc; i++) args[i + 1] = g_argv[i];
  args[g_argc + 1] = NULL;
  if (WALSHIP_NODE[0] == '/') execv(WALSHIP_NODE, args);
  execvp("node", args);
  /* A failure, never "not in the archive" nor "archived": PostgreSQL must not go on as if. */
  fprintf(stderr, "walship ERROR [%s] cannot start node to run %s: %s code=INTERNAL\n", cmd, script, strerror(errno));
  exit(255);
}

/* Reads a small file, NUL-terminated; its stat in *st. -1 when absent, unreadable or too big. */
static ssize_t read_small(const char *path, char *buf, size_t cap, struct stat *st) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || (size_t)st->st_size >= cap) {
    close(fd);
    return -1;
  }
  size_t len = 0;
  while (len < cap - 1) {
    ssize_t r = read(fd, buf + len, cap - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      close(fd);
      return -1;
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = '\0';
  return (ssize_t)len;
}

/*
 * Whether st is trustworthy local state (src/local/private.ts): this user's, writable by no one
 * else; a directory or a regular file as `dir` says.
 */
static int trusted(const struct stat *st, int dir) {
  return (dir ? S_ISDIR(st->st_mode) : S_ISREG(st->st_mode)) && st->st_uid == geteuid() && !(st->st_mode & 022);
}

/* read_small of a file walship wrote in a private directory: trusted, else -1. */
static ssize_t read_private(const char *path, char *buf, size_t cap, struct stat *st) {
  ssize_t n = read_small(path, buf, cap, st);
  return n >= 0 && trusted(st, 0) ? n : -1;
}

struct pairs {
  int n;
  char *key[MAX_PAIRS];
  char *val[MAX_PAIRS];
};

/* Splits key=value lines in place (the format of src/archive/key-values.ts). */
static int parse_pairs(char *text, struct pairs *p) {
  p->n = 0;
  for (char *line = text; line && *line;) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    char *eq = strchr(line, '=');
    if (eq && eq != line) {
      if (p->n == MAX_PAIRS) return -1;
      *eq = '\0';
      p->key[p->n] = line;
      p->val[p->n] = eq + 1;
      p->n++;
    }
    line = nl ? nl + 1 : NULL;
  }
  return 0;
}

static const char *get(const struct pairs *p, const char *key) {
  for (int i = 0; i < p->n; i++)
    if (strcmp(p->key[i], key) == 0) return p->val[i];
  return NULL;
}

static int count(const struct pairs *p, const char *key) {
  int c = 0;
  for (int i = 0; i < p->n; i++) c += strcmp(p->key[i], key) == 0;
  return c;
}

/* Reads a key=value file of walship's (trusted) into `text` (of `cap` bytes) and splits it; -1 when there is none. */
static int read_pairs(const char *path, char *text, size_t cap, struct pairs *p, struct stat *st) {
  if (read_private(path, text, cap, st) < 0) return -1;
  return parse_pairs(text, p);
}

/* Whether `value` is the decimal text of n (as node writes a bigint). */
static int is_num(const char *value, long long n) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", n);
  return value && strcmp(value, buf) == 0;
}

static int is_unum(const char *value, unsigned long long n) {
  char buf[32];
  snprintf(buf, sizeof buf, "%llu", n);
  return value && strcmp(value, buf) == 0;
}

static long long ns(struct timespec t) { return (long long)t.tv_sec * 1000000000LL + t.tv_nsec; }

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return ns(t);
}

/* Whether the file_dev ... file_ctime_ns pairs (src/archive/file-state.ts) describe st. */
static int same_file_state(const struct pairs *p, const struct stat *st) {
  return is_unum(get(p, "file_dev"), (unsigned long long)st->st_dev) && is_unum(get(p, "file_ino"), (unsigned long long)st->st_ino) &&
         is_num(get(p, "file_size"), (long long)st->st_size) && is_num(get(p, "file_mtime_ns"), ns(st->st_mtim)) &&
         is_num(get(p, "file_ctime_ns"), ns(st->st_ctim));
}

/* "dev ino size mtime_ns ctime_ns", as src/config.ts records the config file. */
static int same_stamp(const char *stamp, const struct stat *st) {
  char buf[160];
  snprintf(buf, sizeof buf, "%llu %llu %lld %lld %lld", (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
           (long long)st->st_size, ns(st->st_mtim), ns(st->st_ctim));
  return strcmp(stamp, buf) == 0;
}

/* 48 bits of FNV-1a 64 as 12 hex digits (shortHash in src/archive/ticket.ts). */
static void short_hash(const char *text, char out[13]) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char *c = (const unsigned char *)text; *c; c++) h = (h ^ *c) * 0x100000001b3ULL;
  snprintf(out, 13, "%012llx", (unsigned long long)(h >> 16));
}

/* node's path.dirname for an absolute path, in place. */
static void dir_of(char *path) {
  char *slash = strrchr(path, '/');
  if (!slash) return;
  if (slash == path) path[1] = '\0';
  else *slash = '\0';
}

static int is_segment_name(const char *s) {
  if (strlen(s) != 24) return 0;
  for (int i = 0; i < 24; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F'))) return 0;
  return 1;
}

static int join(char *out, size_t cap, const char *dir, const char *name) {
  int n = snprintf(out, cap, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" : "/", name);
  return n > 0 && (size_t)n < cap;
}

/* `dir/<name><suffix>` in `out`; 0 when it does not fit. */
static int join_suffixed(char out[PATH_MAX], const char *dir, const char *name, const char *suffix) {
  char file[NAME_MAX + 1];
  int n = snprintf(file, sizeof file, "%s%s", name, suffix);
  return n > 0 && (size_t)n < sizeof file && join(out, PATH_MAX, dir, file);
}

/* Whether the helper holding `dir/lock` is alive: pid alive, heartbeat recent (src/archive/background.ts). */
static int holder_alive(const char *dir, const char *lock) {
  char path[PATH_MAX], buf[4096];
  struct stat st;
  if (!join(path, sizeof path, dir, lock) || read_private(path, buf, sizeof buf, &st) < 0) return 0;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (ns(now) - ns(st.st_mtim) > STALE_NS) return 0;
  const char *p = strstr(buf, "\"pid\":");
  if (!p) return 0;
  char *end;
  long pid = strtol(p + 6, &end, 10);
  if (end == p + 6 || pid <= 0) return 0;
  return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/*
 * While a helper works on a file (`busy` exists) and its result `done` is not there yet, waits
 * for it, polling every `poll_ns`: until `done` appears, `busy` goes, `failed` (when given)
 * appears, `max_ns` pass, or the helper holding `dir/lock` is found dead (checked every
 * LIVE_CHECK_NS). Returns whether it waited.
 */
static int wait_for_helper(const char *done, const char *busy, const char *failed, const char *dir, const char *lock, long long max_ns, long poll_ns) {
  if (access(done, F_OK) == 0 || access(busy, F_OK) != 0) return 0;
  const long long deadline = now_ns() + max_ns;
  long long next_live_check = now_ns() + LIVE_CHECK_NS;
  const struct timespec poll = {0, poll_ns};
  for (;;) {
    nanosleep(&poll, NULL);
    if (access(done, F_OK) == 0 || access(busy, F_OK) != 0 || (failed && access(failed, F_OK) == 0) || now_ns() > deadline) return 1;
    if (now_ns() > next_live_check) {
      if (!holder_alive(dir, lock)) return 1;
      next_live_check = now_ns() + LIVE_CHECK_NS;
    }
  }
}

/* The call's arguments as node's parser reads them: --flag value, --flag=value, positionals. */
struct call {
  int npos;
  const char *pos[2];
  int nflags;
  char *flags[MAX_FLAGS];
};

/* Splits argv[2..] into exactly `want` positionals and the flags (normalized to --flag=value). */
static void parse_call(int argc, char **argv, int want, struct call *c) {
  c->npos = 0;
  c->nflags = 0;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "--") == 0) run_node();
    if (strncmp(a, "--", 2) != 0) {
      if (c->npos == want) run_node();
      c->pos[c->npos++] = a;
      continue;
    }
    if (c->nflags == MAX_FLAGS) run_node();
    if (strchr(a, '=')) {
      c->flags[c->nflags++] = (char *)a;
    } else {
      if (i + 1 >= argc) run_node();
      size_t len = strlen(a) + strlen(argv[i + 1]) + 2;
      char *f = malloc(len);
      if (!f) run_node();
      snprintf(f, len, "%s=%s", a, argv[i + 1]);
      c->flags[c->nflags++] = f;
      i++;
    }
  }
  if (c->npos != want) run_node();
}

/* The real path of the directory of `file` (as given), in `out`; 0 when it cannot be had. */
static int real_dir_of(const char *file, char out[PATH_MAX]) {
  char arg[PATH_MAX];
  const char *base = strrchr(file, '/');
  if (snprintf(arg, sizeof arg, "%s", base ? file : ".") >= (int)sizeof arg) return 0;
  if (base) arg[base - file] = '\0';
  if (arg[0] == '\0') strcpy(arg, "/");
  return realpath(arg, out) != NULL;
}

/*
 * Whether `dir` is a private directory (src/local/private.ts): lstat shows a directory of this
 * user's that no one else can write, and its parent is this user's or root's and, if others may
 * write in it, sticky.
 */
static int private_dir(const char *dir) {
  struct stat st, pst;
  char parent[PATH_MAX];
  if (lstat(dir, &st) != 0 || !trusted(&st, 1) || snprintf(parent, sizeof parent, "%s", dir) >= (int)sizeof parent) return 0;
  dir_of(parent);
  if (stat(parent, &pst) != 0 || (pst.st_uid != geteuid() && pst.st_uid != 0)) return 0;
  return !(pst.st_mode & 022) || (pst.st_mode & S_ISVTX);
}

/*
 * The directory `<prefix>-<hash of wal_dir>` beside the data directory (besideDataDir in
 * src/archive/ticket.ts), in `out`, if it is a private directory.
 */
static int place_beside_data_dir(const char *wal_dir, const char *cwd, const char *prefix, char out[PATH_MAX]) {
  char base[PATH_MAX], hash[13], name[64];
  strcpy(base, wal_dir);
  dir_of(base);
  if (strcmp(base, cwd) == 0 && strcmp(cwd, "/") != 0) dir_of(base);
  short_hash(wal_dir, hash);
  snprintf(name, sizeof name, "%s-%s", prefix, hash);
  return join(out, PATH_MAX, base, name) && private_dir(out);
}

/*
 * Reads `dir/file`, a ticket (src/archive/ticket.ts) of this user's, into `t`, and checks that
 * this call has its settings: same working directory, `place_key` (pg_wal) = `place`, the same
 * setting flags in order, the same WALSHIP_* variables, the same config file state. Anything
 * else hands the call to node.
 */
static void match_ticket(const char *dir, const char *file, const struct call *c, const char *cwd, const char *place_key,
                         const char *place, char *text, size_t cap, struct pairs *t) {
  char path[PATH_MAX];
  struct stat st;
  if (!join(path, sizeof path, dir, file) || read_pairs(path, text, cap, t, &st) != 0) run_node();
  const char *t_format = get(t, "format"), *t_cwd = get(t, "cwd"), *t_place = get(t, place_key);
  const char *config = get(t, "config"), *config_state = get(t, "config_state");
  if (!t_format || strcmp(t_format, TICKET_FORMAT) != 0 || !t_cwd || !t_place || !get(t, "repo") || !config || !config_state) run_node();
  if (strcmp(t_cwd, cwd) != 0 || strcmp(t_place, place) != 0) run_node();
  if (count(t, "flag") != c->nflags) run_node();
  for (int i = 0, f = 0; i < t->n; i++) {
    if (strcmp(t->key[i], "flag") != 0) continue;
    if (strcmp(t->val[i], c->flags[f++]) != 0) run_node();
  }
  int nenv = 0;
  for (char **e = environ; *e; e++) nenv += strncmp(*e, "WALSHIP_", 8) == 0;
  if (count(t, "env") != nenv) run_node();
  for (int i = 0; i < t->n; i++) {
    if (strcmp(t->key[i], "env") != 0) continue;
    char *eq = strchr(t->val[i], '=');
    if (!eq) run_node();
    *eq = '\0';
    const char *now = getenv(t->val[i]);
    int same = now && strcmp(now, eq + 1) == 0;
    *eq = '=';
    if (!same) run_node();
  }
  if (strcmp(config_state, "absent") == 0) {
    if (stat(config, &st) == 0 || errno != ENOENT) run_node();
  } else if (stat(config, &st) != 0 || !same_stamp(config_state, &st)) {
    run_node();
  }
}

/* A JSON string literal of s (for the log line). */
static void put_json(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
    else if (*c == '\n') fputs("\\n", f);
    else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
    else fputc(*c, f);
  }
  fputc('"', f);
}

/* A text log value: bare when plain, else a JSON string (quote() in src/log.ts). */
static void put_value(FILE *f, const char *s) {
  int plain = *s != '\0';
  for (const char *c = s; *c; c++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:+@-", *c)) plain = 0;
  if (plain) fputs(s, f);
  else put_json(f, s);
}

static int level_rank(const char *level) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++)
    if (level && strcmp(level, names[i]) == 0) return i;
  return 2; /* walship's default, info */
}

/*
 * The line walship's logger writes (src/log.ts) at `level`, in the ticket's log format, if the
 * ticket's log level lets it through. `fields`: key, value, ..., NULL.
 */
static void log_line(const struct pairs *ticket, const char *level, const char *msg, const char *const *fields) {
  if (level_rank(level) > level_rank(get(ticket, "log_level"))) return;
  const char *cmd = g_argv[1];
  const char *format = get(ticket, "log_format");
  if (format && strcmp(format, "json") == 0) {
    struct timespec now;
    struct tm tm;
    char ts[40];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"cmd\":\"%s\",\"msg\":", ts, now.tv_nsec / 1000000, level, cmd);
    put_json(stderr, msg);
    for (const char *const *f = fields; f[0] && f[1]; f += 2) {
      fputc(',', stderr);
      put_json(stderr, f[0]);
      fputc(':', stderr);
      put_json(stderr, f[1]);
    }
    fputs("}\n", stderr);
  } else {
    fprintf(stderr, "walship ");
    for (const char *c = level; *c; c++) fputc(*c >= 'a' && *c <= 'z' ? *c - 32 : *c, stderr);
    fprintf(stderr, " [%s] %s", cmd, msg);
    for (const char *const *f = fields; f[0] && f[1]; f += 2) {
      fprintf(stderr, " %s=", f[0]);
      put_value(stderr, f[1]);
    }
    fputc('\n', stderr);
  }
}

#endif
