/*
 * main.c — the ddpmlua executable: LuaJIT, the built-in `ddpm.core`, a REPL.
 *
 *   ddpmlua [options] [script [args...]]     (ddpmlua -h lists the options)
 *
 * Shaped like LuaJIT's own luajit.c: every chunk runs under lua_pcall with a
 * traceback handler, errors print "ddpmlua: <message>" and exit 1, and Ctrl-C
 * stops the running chunk rather than the process. It also preloads two
 * modules: `ddpm.core` (bindings/l_core.c) and `ddpm.host` (below: line
 * reading with libedit, TAB completion calling a Lua completer, and a
 * Ctrl-C-aware pcall for the REPL), and points package.path at lib/ next to
 * the executable, or at share/ddpmlua/lua/ after `make install`.
 *
 * What it is not: the REPL itself (lib/ddpm/repl.lua decides what to print) or
 * a sandbox (scripts have full OS access, as with luajit).
 *
 * Ctrl-C: the first one while a chunk runs sets ddpm_interrupt_set(), which
 * C kernels poll, and a Lua hook that raises "interrupted" at the next
 * interpreted instruction. Hooks are not checked inside JIT-compiled traces
 * (LuaJIT/LuaJIT#1120), so a compiled `while true do end` ignores it (the
 * REPL therefore runs its chunks with the JIT off); a second Ctrl-C while the
 * first is still pending restores the default action and ends the process.
 * When a kernel has already turned the Ctrl-C into its own error, the hook
 * stands down instead of raising again inside that error's handler.
 */
#include <ctype.h>
#include <errno.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <editline/readline.h>
#include <luajit.h>

#include "bind.h"
#include "ddpm/dist.h"

#ifndef DDPMLUA_VERSION
#define DDPMLUA_VERSION "0.1.0"
#endif

#define PROGNAME "ddpmlua"
#define HISTORY_LINES 1000

static lua_State *globalL;

/* ------------------------------------------------------------------ Ctrl-C */

static volatile sig_atomic_t int_pending;    /* first Ctrl-C seen, chunk still running */
static volatile sig_atomic_t prompt_sigint;  /* Ctrl-C while reading a line */
static int armed_depth;                      /* nested docall(arm) */
static struct sigaction saved_sigint;
/* Graceful mode (a training loop): the first Ctrl-C or SIGTERM only asks the
   loop to stop after its current step (host.stop_requested()); the next one
   interrupts as usual. */
static volatile sig_atomic_t graceful, stop_requested;

/* A C kernel that saw the flag has already turned this Ctrl-C into its own
   error ("unet forward: interrupted"; docall clears the message first). */
static int kernel_took_interrupt(void)
{
   static const char tail[] = "interrupted";
   const char *m = ddpm_errmsg();
   size_t n = strlen(m), k = sizeof tail - 1;
   return n >= k && strcmp(m + n - k, tail) == 0;
}

static void stop_hook(lua_State *L, lua_Debug *ar)
{
   if (kernel_took_interrupt()) {
      /* That error is on its way out: raising again would hit its message
         handler ("error in error handling") or the cleanup after a pcall. */
      lua_sethook(L, NULL, 0, 0);
      return;
   }
   if (ar->event == LUA_HOOKCALL && lua_getinfo(L, "S", ar) && ar->what[0] == 'C')
      return;   /* a C function: it polls the flag itself, or returns to Lua soon */
   lua_sethook(L, NULL, 0, 0);
   /* Not luaL_error: a hook has no C frame, level 0 is the function running. */
   luaL_where(L, 0);
   lua_pushfstring(L, "%sinterrupted", lua_tostring(L, -1));
   lua_error(L);
}

static void on_sigint_chunk(int sig)
{
   if (graceful && !stop_requested) {
      static const char msg[] = "\n" PROGNAME ": stopping after this step and saving "
                                "(Ctrl-C again to stop at once)\n";
      ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
      (void)w;
      stop_requested = 1;
      return;
   }
   if (!int_pending) {
      int_pending = 1;
      ddpm_interrupt_set();
      lua_sethook(globalL, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
      return;
   }
   /* The chunk did not reach a hook check (a compiled loop, a C call that
      does not poll): give Ctrl-C its default meaning. */
   static const char msg[] = "\n" PROGNAME ": interrupted (second Ctrl-C, the chunk "
                             "did not stop)\n";
   ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
   (void)w;
   signal(sig, SIG_DFL);
   raise(sig);
}

static void on_sigterm(int sig)
{
   if (graceful) {
      stop_requested = 1;
      return;
   }
   signal(sig, SIG_DFL);
   raise(sig);
}

static void on_sigint_prompt(int sig)
{
   (void)sig;
   prompt_sigint = 1;
}

static void set_sigint(void (*handler)(int), struct sigaction *old)
{
   struct sigaction sa;
   memset(&sa, 0, sizeof sa);
   sigemptyset(&sa.sa_mask);
   sa.sa_handler = handler;
   sa.sa_flags = 0;   /* no SA_RESTART: a blocking read returns EINTR */
   sigaction(SIGINT, &sa, old);
}

static void sigint_arm(void)
{
   if (armed_depth++ > 0) return;
   int_pending = 0;
   set_sigint(on_sigint_chunk, &saved_sigint);
}

static void sigint_disarm(lua_State *L)
{
   if (--armed_depth > 0) return;
   sigaction(SIGINT, &saved_sigint, NULL);   /* first, so no new hook appears */
   if (lua_gethook(L) == stop_hook) lua_sethook(L, NULL, 0, 0);
   int_pending = 0;
}

/* ------------------------------------------------------------------ errors */

static int l_host_docall(lua_State *L);
static int pmain(lua_State *L);

/* The exit status a usage error asked for (2), set by msghandler. */
static int usage_status, exit_usage;

/* Frames below a chunk (pmain, host.docall) are the host's, not the user's. */
static int is_host_frame(lua_State *L, lua_Debug *ar)
{
   lua_getinfo(L, "f", ar);
   lua_CFunction f = lua_iscfunction(L, -1) ? lua_tocfunction(L, -1) : NULL;
   lua_pop(L, 1);
   return f == pmain || f == l_host_docall;
}

static void add_frame(luaL_Buffer *b, lua_State *L, lua_Debug *ar)
{
   char line[LUA_IDSIZE + 128];
   lua_getinfo(L, "Snl", ar);
   int n = snprintf(line, sizeof line, "\n\t%s:", ar->short_src);
   if (ar->currentline > 0) n += snprintf(line + n, sizeof line - n, "%d:", ar->currentline);
   if (ar->namewhat && *ar->namewhat)
      snprintf(line + n, sizeof line - n, " in function '%s'", ar->name);
   else if (*ar->what == 'm')
      snprintf(line + n, sizeof line - n, " in main chunk");
   else if (*ar->what == 'C')
      snprintf(line + n, sizeof line - n, " ?");
   else
      snprintf(line + n, sizeof line - n, " in function <%s:%d>", ar->short_src,
               ar->linedefined);
   luaL_addstring(b, line);
}

/* Message handler: the error as text (tostring/__tostring for non-strings)
   plus a traceback of the user's frames only. */
static int msghandler(lua_State *L)
{
   if (lua_gethook(L) == stop_hook) lua_sethook(L, NULL, 0, 0);
   /* A usage error (ddpm.cli.usage_error: {message =, exit_status =}) is the
      user's mistake, not the program's: its one line, no traceback. */
   if (lua_istable(L, 1)) {
      lua_getfield(L, 1, "exit_status");
      lua_getfield(L, 1, "message");
      if (lua_isnumber(L, -2) && lua_type(L, -1) == LUA_TSTRING) {
         int st = (int)lua_tointeger(L, -2);
         usage_status = st > 0 && st < 126 ? st : 2;
         return 1;
      }
      lua_pop(L, 2);
   }
   if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER) {
      lua_getglobal(L, "tostring");
      lua_pushvalue(L, 1);
      if (lua_pcall(L, 1, 1, 0) != 0 || !lua_isstring(L, -1)) {
         lua_settop(L, 1);
         lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
      }
      lua_replace(L, 1);
   }
   lua_Debug ar;
   int last = 0;
   while (lua_getstack(L, last + 1, &ar) && !is_host_frame(L, &ar)) last++;
   luaL_Buffer b;
   luaL_buffinit(L, &b);
   lua_pushvalue(L, 1);
   luaL_addvalue(&b);
   if (last > 0) luaL_addstring(&b, "\nstack traceback:");
   for (int level = 1; level <= last; level++) {
      if (last > 22 && level == 11) {   /* keep the first 10 and the last 11 */
         luaL_addstring(&b, "\n\t...");
         level = last - 11;
         continue;
      }
      if (lua_getstack(L, level, &ar)) add_frame(&b, L, &ar);
   }
   luaL_pushresult(&b);
   return 1;
}

/* Calls the function below narg arguments under msghandler. With arm, Ctrl-C
   stops the call instead of the process. Leaves nres results or the message. */
static int docall(lua_State *L, int narg, int nres, int arm)
{
   int base = lua_gettop(L) - narg;
   lua_pushcfunction(L, msghandler);
   lua_insert(L, base);
   if (arm) {
      ddpm_interrupt_clear();
      ddpm_clearerr();   /* for kernel_took_interrupt */
      sigint_arm();
   }
   usage_status = 0;
   int status = lua_pcall(L, narg, nres, base);
   if (arm) sigint_disarm(L);
   lua_remove(L, base);
   return status;
}

static int report(lua_State *L, int status)
{
   if (status != 0) {
      fflush(stdout);
      if (usage_status) exit_usage = usage_status;
      const char *msg = lua_tostring(L, -1);
      if (ddpm_dist_size() > 1)   /* which rank of an MPI job said it */
         fprintf(stderr, "%s [rank %d]: %s\n", PROGNAME, ddpm_dist_rank(),
                 msg ? msg : "(no error message)");
      else
         fprintf(stderr, "%s: %s\n", PROGNAME, msg ? msg : "(no error message)");
      fflush(stderr);
      /* Open run logs read this when they are closed, to record the failure. */
      lua_setglobal(L, "_DDPMLUA_LAST_ERROR");
   }
   return status;
}

/* ------------------------------------------------------------------ ddpm.host */

static int history_on;           /* -1 off, 0 not yet loaded, 1 loaded */
static char history_path[PATH_MAX];

static int utf8_input;

/* First prompt on a terminal: the locale for libedit's wide characters
   (LC_CTYPE only; C.UTF-8 when the environment names none), then history. */
static void tty_init(void)
{
   if (history_on) return;
   setlocale(LC_CTYPE, "");
   if (strcmp(nl_langinfo(CODESET), "ANSI_X3.4-1968") == 0)
      setlocale(LC_CTYPE, "C.UTF-8");
   utf8_input = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
   const char *p = getenv("DDPMLUA_HISTORY");
   const char *home = getenv("HOME");
   if (p)
      snprintf(history_path, sizeof history_path, "%s", p);
   else if (home && *home)
      snprintf(history_path, sizeof history_path, "%s/.ddpmlua_history", home);
   using_history();
   stifle_history(HISTORY_LINES);
   if (history_path[0]) read_history(history_path);   /* a missing file is fine */
   history_on = 1;
}

static int read_byte(int fd)
{
   unsigned char c;
   for (;;) {
      ssize_t n = read(fd, &c, 1);
      if (n == 1) return c;
      if (n == 0 || errno != EINTR || prompt_sigint) return EOF;
   }
}

/* libedit retries a read interrupted by a signal; this one gives up on Ctrl-C
   so that readline() returns and the REPL can drop the line. libedit takes
   what it returns as one wide character, so UTF-8 is decoded here. */
static int prompt_getc(FILE *f)
{
   int fd = fileno(f), c = read_byte(fd);
   if (c == EOF || c < 0xC2 || c > 0xF4 || !utf8_input) return c;
   int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
   int cp = c & (0x3F >> more);
   while (more-- > 0) {
      int d = read_byte(fd);
      if (d == EOF) return EOF;
      if ((d & 0xC0) != 0x80) return 0xFFFD;
      cp = (cp << 6) | (d & 0x3F);
   }
   return cp;
}

/* TAB completion. libedit hands over the word before the cursor; the word
   breaks (set in main) keep `ddpm.data.fa` and `x:nu` whole, so the Lua
   completer (host.set_completer, lib/ddpm/repl.lua) sees the path and
   returns the full candidates with their suffix (`.`, `:`, `(`). Inside a
   string it returns the string's text instead, a file name to complete:
   libedit's word stops at `/` or `-` there, so the matches are made for the
   whole text and cut back to libedit's word. The completer runs under
   lua_cpcall: an error in it means no candidates, never a longjmp through
   libedit. */
#define COMPLETER_KEY "ddpm.host.completer"

static lua_State *prompt_L;       /* the state waiting in readline() */
static char **cands;              /* this TAB's candidates, strdup'ed */
static int ncands, icand;

struct complete_call {
   const char *text, *line;
   size_t len;
   char *file;                    /* the completer returned a file name to complete */
};

static int complete_collect(lua_State *L)
{
   struct complete_call *c = (struct complete_call *)lua_touserdata(L, 1);
   lua_getfield(L, LUA_REGISTRYINDEX, COMPLETER_KEY);
   if (!lua_isfunction(L, -1)) return 0;
   lua_pushstring(L, c->text);
   lua_pushlstring(L, c->line, c->len);
   lua_call(L, 2, 1);
   if (lua_type(L, -1) == LUA_TSTRING) {
      c->file = strdup(lua_tostring(L, -1));
      return 0;
   }
   if (!lua_istable(L, -1)) return 0;
   int n = (int)lua_objlen(L, -1);
   cands = calloc((size_t)n + 1, sizeof *cands);
   if (!cands) return 0;
   for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
      if (s && (cands[ncands] = strdup(s)) != NULL) ncands++;
      lua_pop(L, 1);
   }
   return 0;
}

static char *next_cand(const char *text, int state)
{
   (void)text;
   if (state == 0) icand = 0;
   return icand < ncands ? strdup(cands[icand++]) : NULL;
}

/* File names completing word, cut to the tail text that libedit replaces;
   a lone directory gets its '/'. NULL when there are none. */
static char **file_matches(const char *word, const char *text)
{
   size_t wl = strlen(word), tl = strlen(text);
   if (tl > wl || strcmp(word + wl - tl, text) != 0) return NULL;
   size_t cut = wl - tl;
   char **m = rl_completion_matches(word, rl_filename_completion_function);
   if (!m) return NULL;
   int ok = 1;
   for (int i = 0; m[i]; i++) ok = ok && strncmp(m[i], word, cut) == 0;
   if (ok && m[1] && !m[2]) {
      struct stat st;
      if (stat(m[1], &st) == 0 && S_ISDIR(st.st_mode)) {
         for (int i = 0; i < 2 && ok; i++) {
            size_t n = strlen(m[i]);
            char *p = realloc(m[i], n + 2);
            if (p) { p[n] = '/'; p[n + 1] = '\0'; m[i] = p; } else ok = 0;
         }
      }
   }
   for (int i = 0; m[i]; i++) {
      if (ok) memmove(m[i], m[i] + cut, strlen(m[i] + cut) + 1);
      else free(m[i]);
   }
   if (!ok) {
      free(m);
      return NULL;
   }
   return m;
}

static char **complete(const char *text, int start, int end)
{
   (void)start; (void)end;   /* wide-character offsets in libedit; rl_point is bytes */
   rl_attempted_completion_over = 1;
   rl_completion_append_character = '\0';   /* candidates carry their own suffix */
   if (!prompt_L) return NULL;
   const char *line = rl_line_buffer ? rl_line_buffer : "";
   size_t len = strlen(line);
   if (rl_point >= 0 && (size_t)rl_point < len) len = (size_t)rl_point;
   struct complete_call c = {text, line, len, NULL};
   ncands = 0;
   if (lua_cpcall(prompt_L, complete_collect, &c) != 0) lua_pop(prompt_L, 1);
   char **matches = NULL;
   if (c.file) matches = file_matches(c.file, text);
   else if (ncands > 0) matches = rl_completion_matches(text, next_cand);
   free(c.file);
   for (int i = 0; i < ncands; i++) free(cands[i]);
   free(cands);
   cands = NULL;
   ncands = 0;
   return matches;
}

/* host.set_completer(fn or nil): fn(word, line_to_cursor) -> {candidates},
   or a string: the file name being typed inside a string literal. */
static int l_host_set_completer(lua_State *L)
{
   if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
   lua_settop(L, 1);
   lua_setfield(L, LUA_REGISTRYINDEX, COMPLETER_KEY);
   return 0;
}

/* line = host.readline(prompt): the next line without its newline, or
   nil, "eof" | "interrupt". Not a terminal: plain lines, no prompt, no history. */
static int l_host_readline(lua_State *L)
{
   const char *prompt = luaL_optstring(L, 1, "");
   prompt_sigint = 0;
   if (!isatty(STDIN_FILENO)) {
      char *line = NULL;
      size_t cap = 0;
      ssize_t n = getline(&line, &cap, stdin);
      if (n < 0) {
         int interrupted = errno == EINTR && prompt_sigint;
         free(line);
         if (interrupted) clearerr(stdin);
         lua_pushnil(L);
         if (interrupted) lua_pushliteral(L, "interrupt");
         else lua_pushliteral(L, "eof");
         return 2;
      }
      if (n > 0 && line[n - 1] == '\n') n--;
      if (n > 0 && line[n - 1] == '\r') n--;
      lua_pushlstring(L, line, (size_t)n);
      free(line);
      return 1;
   }
   tty_init();
   struct sigaction old;
   set_sigint(on_sigint_prompt, &old);
   prompt_L = L;
   char *line = readline(prompt);
   prompt_L = NULL;
   sigaction(SIGINT, &old, NULL);
   if (line == NULL) {
      lua_pushnil(L);
      if (prompt_sigint) lua_pushliteral(L, "interrupt");
      else lua_pushliteral(L, "eof");
      return 2;
   }
   lua_pushstring(L, line);
   free(line);
   return 1;
}

/* host.add_history(line): remembered and saved at once (terminal only). */
static int l_host_add_history(lua_State *L)
{
   const char *line = luaL_checkstring(L, 1);
   if (!isatty(STDIN_FILENO) || !*line) return 0;
   tty_init();
   add_history(line);
   if (history_path[0]) write_history(history_path);
   return 0;
}

/* host.interactive(): stdin is a terminal (prompts, history, editing). */
/* graceful(on): see on_sigint_chunk. Turning it off clears a pending request. */
static int l_host_graceful(lua_State *L)
{
   int on = lua_toboolean(L, 1);
   stop_requested = 0;
   graceful = on;
   struct sigaction sa;
   memset(&sa, 0, sizeof sa);
   sigemptyset(&sa.sa_mask);
   sa.sa_handler = on ? on_sigterm : SIG_DFL;
   sigaction(SIGTERM, &sa, NULL);
   return 0;
}

static int l_host_stop_requested(lua_State *L)
{
   lua_pushboolean(L, stop_requested != 0);
   return 1;
}

static int l_host_interactive(lua_State *L)
{
   lua_pushboolean(L, isatty(STDIN_FILENO));
   return 1;
}

/* ok, ... = host.docall(fn, ...): like pcall, but the message carries a
   traceback of fn's frames, ddpm_interrupt is cleared first, and Ctrl-C
   stops fn with "interrupted". */
static int l_host_docall(lua_State *L)
{
   luaL_checktype(L, 1, LUA_TFUNCTION);
   int status = docall(L, lua_gettop(L) - 1, LUA_MULTRET, 1);
   lua_pushboolean(L, status == 0);
   lua_insert(L, 1);
   return lua_gettop(L);
}

static int luaopen_ddpm_host(lua_State *L)
{
   static const luaL_Reg fns[] = {
      {"readline", l_host_readline},
      {"add_history", l_host_add_history},
      {"interactive", l_host_interactive},
      {"graceful", l_host_graceful},
      {"stop_requested", l_host_stop_requested},
      {"docall", l_host_docall},
      {"set_completer", l_host_set_completer},
      {NULL, NULL}
   };
   lua_newtable(L);
   luaL_register(L, NULL, fns);
   lua_pushliteral(L, PROGNAME " " DDPMLUA_VERSION " (" LUAJIT_VERSION ")");
   lua_setfield(L, -2, "version");
   return 1;
}

/* ------------------------------------------------------------------ start-up */

static void preload(lua_State *L, const char *name, lua_CFunction open)
{
   lua_getglobal(L, "package");
   lua_getfield(L, -1, "preload");
   lua_pushcfunction(L, open);
   lua_setfield(L, -2, name);
   lua_pop(L, 2);
}

/* Where experiment scripts live: <exe dir>/experiments (the source tree)
   and <prefix>/share/ddpmlua/experiments (installed); set by set_path. */
static char exp_dirs[2][PATH_MAX];

/* <exe dir>/lib (the source tree) then <prefix>/share/ddpmlua/lua (installed),
   ahead of LuaJIT's default path. */
static void set_path(lua_State *L, const char *argv0)
{
   char exe[PATH_MAX];
   ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
   if (n > 0) exe[n] = '\0';
   else if (!argv0 || !strchr(argv0, '/') || !realpath(argv0, exe)) return;
   char *slash = strrchr(exe, '/');
   if (!slash) return;
   *slash = '\0';
   const char *dir = exe[0] ? exe : "/";
   char prefix[PATH_MAX];
   snprintf(prefix, sizeof prefix, "%s", dir);
   slash = strrchr(prefix, '/');
   if (slash && slash != prefix) *slash = '\0';
   else snprintf(prefix, sizeof prefix, "%s", "");
   if (snprintf(exp_dirs[0], sizeof exp_dirs[0], "%s/experiments", dir) >= (int)sizeof exp_dirs[0])
      exp_dirs[0][0] = '\0';
   if (snprintf(exp_dirs[1], sizeof exp_dirs[1], "%s/share/ddpmlua/experiments", prefix) >=
       (int)sizeof exp_dirs[1])
      exp_dirs[1][0] = '\0';
   lua_getglobal(L, "package");
   lua_getfield(L, -1, "path");
   lua_pushfstring(L, "%s/lib/?.lua;%s/lib/?/init.lua;"
                      "%s/share/ddpmlua/lua/?.lua;%s/share/ddpmlua/lua/?/init.lua;%s",
                   dir, dir, prefix, prefix, lua_tostring(L, -1));
   lua_setfield(L, -3, "path");
   lua_pop(L, 2);
}

static int env_threads(const char *name)
{
   const char *s = getenv(name);
   if (!s || !*s) return 0;
   char *end;
   long v = strtol(s, &end, 10);
   if (end == s || v < 1 || v > 1024) {
      fprintf(stderr, "%s: ignoring %s='%s' (expected an integer in 1..1024)\n",
              PROGNAME, name, s);
      return 0;
   }
   return (int)v;
}

/* One thread count for OpenMP and OpenBLAS: the environment, else the CPUs
   this process may run on (the affinity mask, which containers narrow). */
static void init_threads(void)
{
   int n = env_threads("DDPMLUA_NUM_THREADS");
   if (n == 0) n = env_threads("OMP_NUM_THREADS");
   if (n == 0) {
      cpu_set_t set;
      if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
      if (n < 1) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
      /* MPI ranks on one host split its CPUs: a rank bound to k cores uses
         k threads, ranks that mpirun left unbound share the host's */
      const int ranks = ddpm_dist_local_size(), cpus = ddpm_dist_node_cpus();
      if (ranks > 1 && cpus > 0 && n > cpus / ranks) n = cpus / ranks;
      if (n < 1) n = 1;
   }
   ddpm_set_num_threads(n);
}

static void print_usage(FILE *f)
{
   fprintf(f,
      "usage: " PROGNAME " [options] [script [args...]]\n"
      "  -e chunk   run the string chunk (may be repeated)\n"
      "  -l name    require module name (and set global name when it is one)\n"
      "  -i         enter the REPL after the script (also when it failed)\n"
      "  -v         print the version\n"
      "  -h         print this help\n"
      "  --         stop handling options\n"
      "  -          run the script read from stdin\n"
      "With no script and no -e, " PROGNAME " starts the REPL (plain lines when\n"
      "stdin is not a terminal). Environment: DDPMLUA_NUM_THREADS (else\n"
      "OMP_NUM_THREADS, else one per CPU), DDPMLUA_HISTORY (REPL history file,\n"
      "~/.ddpmlua_history; empty for none), DDPMLUA_REPL_TIME=1 (print each REPL\n"
      "line's time), DDPMLUA_INIT (a chunk, or @file, run first). In the REPL,\n"
      "? lists help topics and :help the commands.\n"
      "\n"
      "Commands over the run history (runs.db, or --db PATH; `" PROGNAME " help CMD`\n"
      "describes one):\n"
      "  runs     list runs          show     one run in full   compare  runs side by side\n"
      "  plot     metric curves      sql      a query           rerun    run one again\n"
      "  export   a run's bundle     report   an HTML report    fid      FID and IS\n"
      "A script name that is no file here is looked up among the installed\n"
      "experiments. `man ddpmlua` has more.\n");
}

static int dochunk(lua_State *L, int status)
{
   if (status == 0) status = docall(L, 0, 0, 1);
   return report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name)
{
   return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

static int is_identifier(const char *s)
{
   if (*s != '_' && !isalpha((unsigned char)*s)) return 0;
   for (; *s; s++)
      if (*s != '_' && !isalnum((unsigned char)*s)) return 0;
   return 1;
}

static int dorequire(lua_State *L, const char *name)
{
   lua_getglobal(L, "require");
   lua_pushstring(L, name);
   int status = report(L, docall(L, 1, 1, 1));
   if (status != 0) return status;
   if (is_identifier(name)) lua_setglobal(L, name);
   else lua_pop(L, 1);
   return 0;
}

static int run_init(lua_State *L)
{
   const char *init = getenv("DDPMLUA_INIT");
   if (!init || !*init) return 0;
   if (init[0] == '@') return dochunk(L, luaL_loadfile(L, init + 1));
   return dostring(L, init, "=DDPMLUA_INIT");
}

/* arg[0] is the script, arg[1..] its arguments, arg[-1..] the interpreter and
   options before it (as in lua). Without a script there is no arg[0]. */
static void set_arg(lua_State *L, char **argv, int argc, int script)
{
   int zero = script > 0 ? script : argc;
   lua_createtable(L, argc - zero, zero);
   for (int i = 0; i < argc; i++) {
      lua_pushstring(L, argv[i]);
      lua_rawseti(L, -2, i - zero);
   }
   lua_setglobal(L, "arg");
}

/* A bare script name that is no file here is looked up among the
   experiments (`ddpmlua ablation_sigma.lua` from any folder); arg[0] then
   names the file found, which the run history records. */
static const char *find_script(lua_State *L, const char *fname, int script)
{
   static char found[PATH_MAX + 64];
   struct stat st;
   if (strchr(fname, '/') || stat(fname, &st) == 0) return fname;
   for (int i = 0; i < 2; i++) {
      if (!exp_dirs[i][0]) continue;
      if (snprintf(found, sizeof found, "%s/%s", exp_dirs[i], fname) >= (int)sizeof found) continue;
      if (stat(found, &st) == 0 && S_ISREG(st.st_mode)) {
         lua_getglobal(L, "arg");
         lua_pushstring(L, found);
         lua_rawseti(L, -2, 0);
         lua_pop(L, 1);
         (void)script;
         return found;
      }
   }
   return fname;
}

/* After the script: a run it made that failed makes the exit status 1
   (ddpm.log counts them), also when the script caught the error. */
static int failed_runs(lua_State *L)
{
   int n = 0;
   lua_getglobal(L, "package");
   lua_getfield(L, -1, "loaded");
   lua_getfield(L, -1, "ddpm.log");
   if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "failed_runs");
      if (lua_istable(L, -1)) n = (int)lua_objlen(L, -1);
      if (n > 0) {
         luaL_Buffer b;
         luaL_buffinit(L, &b);
         for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            if (i > 1) luaL_addstring(&b, ", ");
            luaL_addvalue(&b);
         }
         luaL_pushresult(&b);
         fflush(stdout);
         fprintf(stderr, "%s: %d run%s made by this script failed (run %s)\n", PROGNAME, n,
                 n == 1 ? "" : "s", lua_tostring(L, -1));
         lua_pop(L, 1);
      }
      lua_pop(L, 1);
   }
   lua_pop(L, 3);
   return n;
}

static int run_script(lua_State *L, char **argv, int argc, int script)
{
   const char *fname = argv[script];
   if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0) fname = NULL;
   else fname = find_script(L, fname, script);
   int status = luaL_loadfile(L, fname);
   int narg = argc - script - 1;
   if (status == 0) {
      luaL_checkstack(L, narg + 8, "too many arguments to script");
      for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
      status = docall(L, narg, 0, 1);
   }
   status = report(L, status);
   if (status == 0 && failed_runs(L) > 0) status = 1;
   return status;
}

/* Between chunks, a stray Ctrl-C (while results print, say) only marks the
   prompt as interrupted; it never ends the REPL. */
static int run_repl(lua_State *L)
{
   struct sigaction old;
   set_sigint(on_sigint_prompt, &old);
   lua_getglobal(L, "require");
   lua_pushliteral(L, "ddpm.repl");
   int status = docall(L, 1, 1, 0);
   if (status == 0) {
      lua_getfield(L, -1, "run");
      lua_remove(L, -2);
      status = docall(L, 0, 0, 0);
   }
   sigaction(SIGINT, &old, NULL);
   return report(L, status);
}

struct smain {
   int argc;
   char **argv;
   int status;
};

/* `ddpmlua runs`, `ddpmlua show 3`, ...: subcommands over the run history
   (lib/ddpm/commands.lua), unless a file of that name exists. */
static int is_command(char **argv, int script)
{
   static const char *const cmds[] = {"runs", "show", "compare", "plot", "sql", "rerun",
                                      "export", "report", "fid", "help", NULL};
   if (script != 1) return 0;
   for (int i = 0; cmds[i]; i++)
      if (strcmp(argv[script], cmds[i]) == 0) {
         /* a script file of that name wins; a directory (runs/ beside runs.db) does not */
         struct stat st;
         return stat(argv[script], &st) != 0 || !S_ISREG(st.st_mode);
      }
   return 0;
}

static int pmain(lua_State *L)
{
   struct smain *s = (struct smain *)lua_touserdata(L, 1);
   int argc = s->argc;
   char **argv = s->argv;
   s->status = 1;
   globalL = L;

   /* Options: a first pass validates and finds the script. */
   int script = 0, has_e = 0, has_i = 0, has_v = 0, i;
   for (i = 1; i < argc; i++) {
      const char *a = argv[i];
      if (a[0] != '-' || strcmp(a, "-") == 0) { script = i; break; }
      if (strcmp(a, "--") == 0) { if (i + 1 < argc) script = i + 1; break; }
      if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
         if (++i >= argc) {
            fprintf(stderr, "%s: '%s' needs an argument\n", PROGNAME, a);
            print_usage(stderr);
            return 0;
         }
         has_e |= a[1] == 'e';
      } else if (strcmp(a, "-i") == 0) has_i = 1;
      else if (strcmp(a, "-v") == 0) has_v = 1;
      else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
         print_usage(stdout);
         s->status = 0;
         return 0;
      } else {
         fprintf(stderr, "%s: unrecognized option '%s'\n", PROGNAME, a);
         print_usage(stderr);
         return 0;
      }
   }

   lua_gc(L, LUA_GCSTOP, 0);
   luaL_openlibs(L);
   lua_gc(L, LUA_GCRESTART, -1);
   preload(L, "ddpm.core", luaopen_ddpm_core);
   preload(L, "ddpm.host", luaopen_ddpm_host);
   set_path(L, argv[0]);
   set_arg(L, argv, argc, script);
   init_threads();

   if (has_v) printf("%s %s (%s)\n", PROGNAME, DDPMLUA_VERSION, LUAJIT_VERSION);
   int failed = run_init(L);
   int end = script ? script : argc;
   for (i = 1; !failed && i < end; i++) {
      if (strcmp(argv[i], "-e") == 0) failed = dostring(L, argv[++i], "=(command line)");
      else if (strcmp(argv[i], "-l") == 0) failed = dorequire(L, argv[++i]);
   }
   if (!failed && script && is_command(argv, script))
      failed = dostring(L, "return require('ddpm.commands').main(arg[0], arg)", "=ddpmlua");
   else if (!failed && script) failed = run_script(L, argv, argc, script);
   if (has_i || (!script && !has_e && !has_v)) {
      if (run_repl(L)) failed = 1;
   }
   s->status = failed ? 1 : 0;
   return 0;
}

/* libgomp reads OMP_WAIT_POLICY when it is loaded, before main: to make idle
   OpenMP threads sleep rather than spin (on a shared 2-core machine spinning
   threads steal the cores OpenBLAS and the other thread need; measured 2-4x
   slower steps under load), set it and re-execute once. A user's own setting
   is kept. */
static void ensure_passive_wait(char **argv)
{
   if (getenv("OMP_WAIT_POLICY") || getenv("DDPMLUA_NO_REEXEC")) return;
   setenv("OMP_WAIT_POLICY", "passive", 1);
   setenv("DDPMLUA_NO_REEXEC", "1", 1);
   execv("/proc/self/exe", argv);
   /* exec failed: carry on with the default policy */
}

/* Under mpirun: join the job; ranks other than 0 keep stderr (errors) but
   not stdout, so a script's output appears once (DDPMLUA_ALL_RANKS_OUTPUT=1
   keeps every rank's). */
static int join_job(void)
{
   if (ddpm_dist_init() != DDPM_OK) {
      fprintf(stderr, "%s: %s\n", PROGNAME, ddpm_errmsg());
      return 1;
   }
   if (ddpm_dist_rank() != 0 && !getenv("DDPMLUA_ALL_RANKS_OUTPUT"))
      if (!freopen("/dev/null", "w", stdout)) return 0;
   return 0;
}

int main(int argc, char **argv)
{
   ensure_passive_wait(argv);
   /* Line by line also into a file or pipe: `run N (dir)` and progress must
      be there while a run goes on, and after it is killed. */
   setvbuf(stdout, NULL, _IOLBF, 0);
   if (join_job() != 0) return EXIT_FAILURE;
   lua_State *L = luaL_newstate();
   if (L == NULL) {
      fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", PROGNAME);
      return EXIT_FAILURE;
   }
   rl_readline_name = PROGNAME;           /* "$if ddpmlua" in ~/.editrc */
   rl_getc_function = prompt_getc;
   rl_attempted_completion_function = complete;
   /* Lua operators and brackets end a word; `.` and `:` do not. */
   rl_basic_word_break_characters = " \t\n\"\\'`><=;+-*/%^~#{}()[],";
   struct smain s = {argc, argv, 1};
   int status = lua_cpcall(L, pmain, &s);
   report(L, status);
   int failed = status || s.status;
   if (failed && ddpm_dist_size() > 1) {
      /* the other ranks may wait in a collective for this one: end them */
      fflush(stdout);
      fflush(stderr);
      ddpm_dist_abort(EXIT_FAILURE);
   }
   lua_close(L);
   fflush(stdout);
   if (ddpm_dist_finalize() != DDPM_OK) fprintf(stderr, "%s: %s\n", PROGNAME, ddpm_errmsg());
   return failed ? (exit_usage ? exit_usage : EXIT_FAILURE) : EXIT_SUCCESS;
}
