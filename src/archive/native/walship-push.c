/*
 * walship-push: the compiled entry of `walship archive-push PATH [flags]`.
 *
 * PostgreSQL's archiver runs archive_command once per WAL segment and waits for it, so a call's
 * start-up is paid once per segment, in a row; node alone takes tens of milliseconds to start.
 * During a backlog, walship's background pusher has usually stored segment N, durably, before
 * PostgreSQL asks for it, and left a record that proves it (src/archive/readahead.ts). This
 * program answers that call from the record with a few system calls. It decides nothing of its
 * own: every other call, and every doubt, is handed unchanged to the full walship in node (exec,
 * same arguments, same environment), which gives the answer it always gives.
 *
 * N is answered "archived" (exit 0) here only when all of these hold, each exactly as
 * archive-push in node checks it (src/archive/readahead.ts, src/archive/ticket.ts):
 *   - the call is archive-push of a file named as a WAL segment, without --help;
 *   - the push directory of this pg_wal beside the data directory (a private directory: this
 *     user's, writable by no one else, in a parent no one else can replace it in) holds a push
 *     ticket of this user's, and this call's setting flags, WALSHIP_* variables, config file
 *     state, working directory and pg_wal are the ticket's: so its settings (repository, catalog
 *     and so read-ahead state directory) are the ticket's;
 *   - the read-ahead state directory (private too) holds N's record (this user's, writable by no
 *     one else), of this format, naming N, the ticket's repository and this pg_wal, and the file
 *     is the one that was pushed (device, inode, size, mtime and ctime). While the pusher is
 *     storing N (N.pushing), this waits for the record, as node does.
 *
 * Built by `npm run build` (scripts/build-native.mjs) when a C compiler is present, with the
 * node that built walship compiled in (WALSHIP_NODE); Linux only.
 */
#include "common.h"

#define RECORD_FORMAT "2"
#define WAIT_PUSHING_NS (60LL * 1000000000LL)
#define POLL_NS (1000L * 1000L)

/*
 * N being stored by the pusher (`N.pushing`): wait for its record while the pusher lives and has
 * not failed on it, for at most 60 s, as node does. Returns whether it waited.
 */
static int wait_pushing(const char *state_dir, const char *name, const char *rec_path) {
  char pushing[PATH_MAX], failed[PATH_MAX];
  if (!join_suffixed(pushing, state_dir, name, ".pushing") || !join_suffixed(failed, state_dir, name, ".failed")) return 0;
  return wait_for_helper(rec_path, pushing, failed, state_dir, "pusher.lock", WAIT_PUSHING_NS, POLL_NS);
}

int main(int argc, char **argv) {
  g_argc = argc;
  g_argv = argv;
  if (argc < 3 || strcmp(argv[1], "archive-push") != 0) run_node();
  struct call call;
  parse_call(argc, argv, 1, &call);
  const char *path = call.pos[0];
  const char *name = strrchr(path, '/');
  name = name ? name + 1 : path;
  if (!is_segment_name(name)) run_node();

  /* pg_wal's real path, the push directory beside the data directory, its ticket. */
  char wal_dir[PATH_MAX], cwd[PATH_MAX], place[PATH_MAX];
  if (!real_dir_of(path, wal_dir) || !realpath(".", cwd)) run_node();
  if (!place_beside_data_dir(wal_dir, cwd, "walship-push", place)) run_node();
  static char ticket_text[65536];
  struct pairs ticket;
  match_ticket(place, "push.ticket", &call, cwd, "wal_dir", wal_dir, ticket_text, sizeof ticket_text, &ticket);
  const char *repo = get(&ticket, "repo"), *state_dir = get(&ticket, "state_dir");
  if (!state_dir || state_dir[0] != '/' || !private_dir(state_dir)) run_node();

  /* N's record, and the file as it is now. */
  char rec_path[PATH_MAX];
  if (!join(rec_path, sizeof rec_path, state_dir, name)) run_node();
  const int waited = wait_pushing(state_dir, name, rec_path);
  static char rec_text[8192];
  struct pairs rec;
  struct stat st;
  if (read_pairs(rec_path, rec_text, sizeof rec_text, &rec, &st) != 0) run_node();
  const char *r_format = get(&rec, "format"), *r_name = get(&rec, "name"), *r_repo = get(&rec, "repo"), *r_dir = get(&rec, "dir");
  const char *r_sha = get(&rec, "sha256");
  if (!r_format || strcmp(r_format, RECORD_FORMAT) != 0 || !r_name || strcmp(r_name, name) != 0 || !r_repo || strcmp(r_repo, repo) != 0 ||
      !r_dir || strcmp(r_dir, wal_dir) != 0 || !r_sha || strlen(r_sha) < 16)
    run_node();
  /* A changed file goes to node, which drops the record and pushes the file as it is now. */
  if (stat(path, &st) != 0 || !same_file_state(&rec, &st)) run_node();

  char sha[17];
  memcpy(sha, r_sha, 16);
  sha[16] = '\0';
  const char *fields[] = {"file", name, "sha256", sha, "by", "walship-push", NULL};
  log_line(&ticket, "info", waited ? "archived by the background pusher" : "archived earlier by read-ahead", fields);
  return 0;
}
