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
 * node checks it (src/archive/prefetch.ts, src/archive/ticket.ts):
 *   - the call is archive-fetch of a segment name to a file named RECOVERYXLOG, without --help;
 *   - the default spool directory of this pg_wal (a private directory: this user's, writable by
 *     no one else, in a parent no one else can replace it in) holds a fetch ticket of this
 *     user's, and this call's setting flags, WALSHIP_* variables, config file state, working
 *     directory and pg_wal are the ticket's: so its settings, and its repository, are the
 *     ticket's;
 *   - the prefetcher holding the spool is alive (lock pid alive, heartbeat under 15 s old);
 *     while it is downloading N (N.fetching), this waits for it, as node does;
 *   - N's metadata (this user's, writable by no one else) is complete, of this format, names N
 *     and the ticket's repository, and was written in this boot of the machine (spooled files
 *     are not fsynced);
 *   - on a filesystem repository, the archived object file is unchanged since it was spooled;
 *   - the spooled file is a regular file of this user's, the very one the prefetcher verified
 *     (device, inode, size, mtime and ctime), and after the rename DEST is that inode.
 * Then the metadata is removed and the position written for the prefetcher, as node does. If
 * the rename happened but DEST turns out to be another file, node is run: it finds N missing
 * from the spool and delivers it from the repository over DEST.
 *
 * Built by `npm run build` (scripts/build-native.mjs) when a C compiler is present, with the
 * node that built walship compiled in (WALSHIP_NODE); Linux only.
 */
#include "common.h"

#define META_FORMAT "2"
#define WAIT_INFLIGHT_NS (30LL * 1000000000LL)
#define POLL_NS (500L * 1000L)

/*
 * N not spooled yet but being downloaded (`N.fetching`): wait for its metadata, as node does,
 * while the prefetcher lives, for at most 30 s. Recovery runs as fast as the prefetcher then,
 * without a node start per call.
 */
static void wait_inflight(const char *spool, const char *name, const char *meta_path) {
  char fetching[PATH_MAX];
  if (join_suffixed(fetching, spool, name, ".fetching")) wait_for_helper(meta_path, fetching, NULL, spool, "prefetch.lock", WAIT_INFLIGHT_NS, POLL_NS);
}

int main(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
  if (argc < 4 || strcmp(argv[1], "archive-fetch") != 0) run_node();
  struct call call;
  parse_call(argc, argv, 2, &call);
  const char *name = call.pos[0], *dest = call.pos[1];
  const char *base_name = strrchr(dest, '/');
  base_name = base_name ? base_name + 1 : dest;
  if (!is_segment_name(name) || strcmp(base_name, "RECOVERYXLOG") != 0) run_node();

  /* pg_wal's real path, the default spool directory beside the data directory, its ticket. */
  char dest_dir[PATH_MAX], cwd[PATH_MAX], spool[PATH_MAX];
  if (!real_dir_of(dest, dest_dir) || !realpath(".", cwd)) run_node();
  if (!place_beside_data_dir(dest_dir, cwd, "walship-spool", spool)) run_node();
  static char ticket_text[65536];
  struct pairs ticket;
  match_ticket(spool, "fetch.ticket", &call, cwd, "dest_dir", dest_dir, ticket_text, sizeof ticket_text, &ticket);
  const char *repo = get(&ticket, "repo");

  /* A live prefetcher: the position written below is followed. */
  if (!holder_alive(spool, "prefetch.lock")) run_node();

  /* N's metadata, the archived object, the spooled file. */
  static char meta_text[65536];
  struct pairs meta;
  struct stat st;
  char meta_path[PATH_MAX], data_path[PATH_MAX], boot[64];
  if (!join_suffixed(meta_path, spool, name, ".meta") || !join(data_path, sizeof data_path, spool, name)) run_node();
  wait_inflight(spool, name, meta_path);
  if (read_pairs(meta_path, meta_text, sizeof meta_text, &meta, &st) != 0) run_node();
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
  if (lstat(data_path, &data) != 0 || !trusted(&data, 0) || !same_file_state(&meta, &data)) run_node();

  /* Into place, and still the inode that was checked. */
  if (rename(data_path, dest) != 0) run_node();
  if (stat(dest, &st) != 0 || st.st_ino != data.st_ino || st.st_dev != data.st_dev) run_node();
  unlink(meta_path);

  /*
   * The position, for the prefetcher: written whole under a fresh temporary name and renamed, as
   * node's atomic write does (src/local/atomic-write.ts: `.<name>.<pid>.<12 hex>.tmp`, O_EXCL).
   */
  char tmp_name[64], tmp[PATH_MAX], position[PATH_MAX];
  unsigned char rnd[6];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) memset(rnd, 0, sizeof rnd);
  snprintf(tmp_name, sizeof tmp_name, ".position.%ld.%02x%02x%02x%02x%02x%02x.tmp", (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
  if (join(tmp, sizeof tmp, spool, tmp_name) && join(position, sizeof position, spool, "position")) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      ssize_t w = write(fd, name, 24);
      close(fd);
      if (w != 24 || rename(tmp, position) != 0) unlink(tmp);
    }
  }
  const char *fields[] = {"file", name, "dest", dest, "by", "walship-fetch", NULL};
  log_line(&ticket, "debug", "delivered from the prefetch spool", fields);
  return 0;
}
