/*
 * walship-fetch: the compiled entry of `walship archive-fetch NAME DEST [flags]`.
 *
 * PostgreSQL's recovery runs restore_command once per WAL segment and waits for it, so a call's
 * start-up is paid once per segment, in a row; node alone takes tens of milliseconds to start.
 * This program answers the common call of a recovery, "segment N to pg_wal/RECOVERYXLOG" when the
 * prefetcher has N spooled and verified, with a few system calls and one rename. It decides
 * nothing of its own: every other call, and every doubt, is handed unchanged to the full walship
 * in node (exec, same arguments, same environment), which gives the answer it always gives.
 *
 * A spooled N is delivered here only when all of these hold, each exactly as archive-fetch in
 * node checks it (src/archive/prefetch.ts, src/archive/fetch-ticket.ts):
 *   - the call is archive-fetch of a segment name to a file named RECOVERYXLOG, without --help;
 *   - the default spool directory of this pg_wal (this user's, writable by no one else) holds a
 *     fetch ticket of this user's, and this call's setting flags, WALSHIP_* variables, config
 *     file state, working directory and pg_wal are the ticket's: so its settings, and its
 *     repository, are the ticket's;
 *   - the prefetcher holding the spool is alive (lock pid alive, heartbeat under 15 s old);
 *     while it is downloading N (N.fetching), this waits for it, as node does;
 *   - N's metadata is complete, of this format, names N and the ticket's repository, and was
 *     written in this boot of the machine (spooled files are not fsynced);
 *   - on a filesystem repository, the archived object file is unchanged since it was spooled;
 *   - the spooled file is the very one the prefetcher verified (device, inode, size, mtime and
 *     ctime), and after the rename DEST is that inode.
 * Then the metadata is removed and the position written for the prefetcher, as node does. If
 * the rename happened but DEST turns out to be another file, node is run: it finds N missing
 * from the spool and delivers it from the repository over DEST.
 *
 * Built by `npm run build` (scripts/build-native.mjs) when a C compiler is present, with the
 * node that built walship compiled in (WALSHIP_NODE); Linux only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef WALSHIP_NODE
#define WALSHIP_NODE "node"
#endif

#define TICKET_FORMAT "1"
#define META_FORMAT "2"
#define STALE_NS (15LL * 1000000000LL)
#define MAX_PAIRS 512
#define WAIT_INFLIGHT_NS (30LL * 1000000000LL)
#define LIVE_CHECK_NS (500LL * 1000000LL)
#define POLL_NS (500L * 1000L)

extern char **environ;

static int g_argc;
static char **g_argv;

/* Runs the full walship in node with this call's arguments. Never returns. */
static void run_node(void) __attribute__((noreturn));
static void run_node(void) {
  char exe[PATH_MAX];
  char script[PATH_MAX + 32];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    fprintf(stderr, "walship ERROR [archive-fetch] cannot find walship's own directory (/proc/self/exe): %s code=INTERNAL\n", strerror(errno));
    exit(255);
  }
  exe[n] = '\0';
  /* <root>/dist/walship-fetch -> <root>/bin/walship.js */
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
  /* A failure, never "not in the archive": recovery must stop, not end early. */
  fprintf(stderr, "walship ERROR [archive-fetch] cannot start node to run %s: %s code=INTERNAL\n", script, strerror(errno));
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

/* "dev ino size mtime_ns ctime_ns", as src/config.ts records the config file. */
static int same_stamp(const char *stamp, const struct stat *st) {
  char buf[160];
  snprintf(buf, sizeof buf, "%llu %llu %lld %lld %lld", (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
           (long long)st->st_size, ns(st->st_mtim), ns(st->st_ctim));
  return strcmp(stamp, buf) == 0;
}

/* 48 bits of FNV-1a 64 as 12 hex digits (shortHash in src/archive/prefetch.ts). */
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

/* Whether the prefetcher holding `spool` is alive: pid alive, heartbeat recent. */
static int prefetcher_alive(const char *spool) {
  char path[PATH_MAX], buf[4096];
  struct stat st;
  if (!join(path, sizeof path, spool, "prefetch.lock") || read_small(path, buf, sizeof buf, &st) < 0) return 0;
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

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return ns(t);
}

/*
 * N not spooled yet but being downloaded (`N.fetching`): wait for its metadata, as node does,
 * while the prefetcher lives, for at most 30 s. Recovery runs as fast as the prefetcher then,
 * without a node start per call.
 */
static void wait_inflight(const char *spool, const char *name, const char *meta_path) {
  char fetching[PATH_MAX], fname[40];
  snprintf(fname, sizeof fname, "%s.fetching", name);
  if (access(meta_path, F_OK) == 0 || !join(fetching, sizeof fetching, spool, fname) || access(fetching, F_OK) != 0) return;
  const long long deadline = now_ns() + WAIT_INFLIGHT_NS;
  long long next_live_check = now_ns() + LIVE_CHECK_NS;
  const struct timespec poll = {0, POLL_NS};
  for (;;) {
    nanosleep(&poll, NULL);
    if (access(meta_path, F_OK) == 0 || access(fetching, F_OK) != 0 || now_ns() > deadline) return;
    if (now_ns() > next_live_check) {
      if (!prefetcher_alive(spool)) return;
      next_live_check = now_ns() + LIVE_CHECK_NS;
    }
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

/* The debug line node writes for a delivery from the spool, marked by=walship-fetch. */
static void log_delivery(const struct pairs *ticket, const char *name, const char *dest) {
  const char *level = get(ticket, "log_level");
  if (!level || strcmp(level, "debug") != 0) return;
  const char *format = get(ticket, "log_format");
  if (format && strcmp(format, "json") == 0) {
    struct timespec now;
    struct tm tm;
    char ts[40];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"debug\",\"cmd\":\"archive-fetch\",\"msg\":\"delivered from the prefetch spool\",\"file\":", ts,
            now.tv_nsec / 1000000);
    put_json(stderr, name);
    fputs(",\"dest\":", stderr);
    put_json(stderr, dest);
    fputs(",\"by\":\"walship-fetch\"}\n", stderr);
  } else {
    fputs("walship DEBUG [archive-fetch] delivered from the prefetch spool file=", stderr);
    put_value(stderr, name);
    fputs(" dest=", stderr);
    put_value(stderr, dest);
    fputs(" by=walship-fetch\n", stderr);
  }
}

int main(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
  if (argc < 4 || strcmp(argv[1], "archive-fetch") != 0) run_node();

  /* The arguments as node's parser reads them: --flag value, --flag=value, --, positionals. */
  const char *pos[2];
  int npos = 0;
  char *flags[256];
  int nflags = 0;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "--") == 0) run_node();
    if (strncmp(a, "--", 2) != 0) {
      if (npos == 2) run_node();
      pos[npos++] = a;
      continue;
    }
    if (nflags == 256) run_node();
    if (strchr(a, '=')) {
      flags[nflags++] = (char *)a;
    } else {
      if (i + 1 >= argc) run_node();
      size_t len = strlen(a) + strlen(argv[i + 1]) + 2;
      char *f = malloc(len);
      if (!f) run_node();
      snprintf(f, len, "%s=%s", a, argv[i + 1]);
      flags[nflags++] = f;
      i++;
    }
  }
  if (npos != 2) run_node();
  const char *name = pos[0], *dest = pos[1];
  const char *base_name = strrchr(dest, '/');
  base_name = base_name ? base_name + 1 : dest;
  if (!is_segment_name(name) || strcmp(base_name, "RECOVERYXLOG") != 0) run_node();

  /* pg_wal's real path and the default spool directory beside the data directory. */
  char dest_dir_arg[PATH_MAX], dest_dir[PATH_MAX], cwd[PATH_MAX], base[PATH_MAX];
  if (snprintf(dest_dir_arg, sizeof dest_dir_arg, "%s", base_name == dest ? "." : dest) >= (int)sizeof dest_dir_arg) run_node();
  if (base_name != dest) dest_dir_arg[base_name - dest - 1] = '\0';
  if (dest_dir_arg[0] == '\0') strcpy(dest_dir_arg, "/");
  if (!realpath(dest_dir_arg, dest_dir) || !realpath(".", cwd)) run_node();
  strcpy(base, dest_dir);
  dir_of(base);
  if (strcmp(base, cwd) == 0 && strcmp(cwd, "/") != 0) dir_of(base);
  char hash[13], spool_name[32], spool[PATH_MAX], path[PATH_MAX];
  short_hash(dest_dir, hash);
  snprintf(spool_name, sizeof spool_name, "walship-spool-%s", hash);
  if (!join(spool, sizeof spool, base, spool_name)) run_node();

  /* The ticket: this call's settings are the ones it was written with. */
  static char ticket_text[65536];
  struct pairs ticket;
  struct stat st;
  if (lstat(spool, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) run_node();
  if (!join(path, sizeof path, spool, "fetch.ticket") || read_small(path, ticket_text, sizeof ticket_text, &st) < 0) run_node();
  if (st.st_uid != geteuid() || (st.st_mode & 022)) run_node();
  if (parse_pairs(ticket_text, &ticket) != 0) run_node();
  const char *t_format = get(&ticket, "format"), *t_cwd = get(&ticket, "cwd"), *t_dest = get(&ticket, "dest_dir");
  const char *repo = get(&ticket, "repo"), *config = get(&ticket, "config"), *config_state = get(&ticket, "config_state");
  if (!t_format || strcmp(t_format, TICKET_FORMAT) != 0 || !t_cwd || !t_dest || !repo || !config || !config_state) run_node();
  if (strcmp(t_cwd, cwd) != 0 || strcmp(t_dest, dest_dir) != 0) run_node();
  if (count(&ticket, "flag") != nflags) run_node();
  for (int i = 0, f = 0; i < ticket.n; i++) {
    if (strcmp(ticket.key[i], "flag") != 0) continue;
    if (strcmp(ticket.val[i], flags[f++]) != 0) run_node();
  }
  int nenv = 0;
  for (char **e = environ; *e; e++) nenv += strncmp(*e, "WALSHIP_", 8) == 0;
  if (count(&ticket, "env") != nenv) run_node();
  for (int i = 0; i < ticket.n; i++) {
    if (strcmp(ticket.key[i], "env") != 0) continue;
    char *eq = strchr(ticket.val[i], '=');
    if (!eq) run_node();
    *eq = '\0';
    const char *now = getenv(ticket.val[i]);
    int same = now && strcmp(now, eq + 1) == 0;
    *eq = '=';
    if (!same) run_node();
  }
  if (strcmp(config_state, "absent") == 0) {
    if (stat(config, &st) == 0 || errno != ENOENT) run_node();
  } else if (stat(config, &st) != 0 || !same_stamp(config_state, &st)) {
    run_node();
  }

  /* A live prefetcher: the position written below is followed. */
  if (!prefetcher_alive(spool)) run_node();

  /* N's metadata, the archived object, the spooled file. */
  static char meta_text[65536];
  struct pairs meta;
  char meta_path[PATH_MAX], data_path[PATH_MAX], meta_name[40], boot[64];
  snprintf(meta_name, sizeof meta_name, "%s.meta", name);
  if (!join(meta_path, sizeof meta_path, spool, meta_name) || !join(data_path, sizeof data_path, spool, name)) run_node();
  wait_inflight(spool, name, meta_path);
  if (read_small(meta_path, meta_text, sizeof meta_text, &st) < 0 || parse_pairs(meta_text, &meta) != 0) run_node();
  const char *m_format = get(&meta, "format"), *m_name = get(&meta, "name"), *m_repo = get(&meta, "repo"), *m_boot = get(&meta, "boot");
  if (!m_format || strcmp(m_format, META_FORMAT) != 0 || !m_name || strcmp(m_name, name) != 0 || !m_repo || strcmp(m_repo, repo) != 0) run_node();
  {
    struct stat bst;
    ssize_t n = read_small("/proc/sys/kernel/random/boot_id", boot, sizeof boot, &bst);
    if (n <= 0) run_node();
    while (n > 0 && (boot[n - 1] == '\n' || boot[n - 1] == ' ')) boot[--n] = '\0';
    if (!m_boot || strcmp(m_boot, boot) != 0) run_node();
  }
  if (strncmp(repo, "file://", 7) == 0) {
    const char *o_path = get(&meta, "object_path");
    if (!o_path || stat(o_path, &st) != 0 || !is_num(get(&meta, "object_size"), (long long)st.st_size) ||
        !is_num(get(&meta, "object_mtime_ns"), ns(st.st_mtim)))
      run_node();
  }
  struct stat data;
  if (lstat(data_path, &data) != 0 || !S_ISREG(data.st_mode)) run_node();
  if (!is_unum(get(&meta, "file_dev"), (unsigned long long)data.st_dev) || !is_unum(get(&meta, "file_ino"), (unsigned long long)data.st_ino) ||
      !is_num(get(&meta, "file_size"), (long long)data.st_size) || !is_num(get(&meta, "file_mtime_ns"), ns(data.st_mtim)) ||
      !is_num(get(&meta, "file_ctime_ns"), ns(data.st_ctim)))
    run_node();

  /* Into place, and still the inode that was checked. */
  if (rename(data_path, dest) != 0) run_node();
  if (stat(dest, &st) != 0 || st.st_ino != data.st_ino || st.st_dev != data.st_dev) run_node();
  unlink(meta_path);

  /* The position, for the prefetcher (written whole under a temporary name, as node does). */
  char tmp_name[64], tmp[PATH_MAX], position[PATH_MAX];
  snprintf(tmp_name, sizeof tmp_name, ".position.%ld", (long)getpid());
  if (join(tmp, sizeof tmp, spool, tmp_name) && join(position, sizeof position, spool, "position")) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      ssize_t w = write(fd, name, 24);
      close(fd);
      if (w != 24 || rename(tmp, position) != 0) unlink(tmp);
    }
  }
  log_delivery(&ticket, name, dest);
  return 0;
}
