// vers-swarm-init: the small init that holds a local VM, and the helper that
// runs one command inside it.
//
//   vers-swarm-init boot --rootfs DIR --lower L1:L2:... --upper U --work W
//                        --hostname H [--cgroup DIR]...
//       Joins the given cgroups, creates new mount/pid/uts/ipc namespaces,
//       mounts the overlay root, /proc, a minimal /dev, pivots into it and
//       stays as PID 1 of the VM, reaping orphans. Prints "ready <pid>\n"
//       (the host PID of the VM's init) on stdout once the VM accepts exec,
//       then detaches. Errors go to stderr with exit status 1.
//
//   vers-swarm-init exec --pid PID [--cgroup DIR] [--cwd DIR] -- ARGV...
//       Joins the cgroup, enters the namespaces and root of init PID, runs
//       ARGV there with the environment it was given and relays the child's
//       stdout/stderr until the child exits (background processes that keep
//       the pipes open do not hold the exec). Exits with the child's status,
//       128+signal when it was killed, 126 when the cwd is unusable, 127 when
//       the program cannot be executed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CGROUPS 8

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("vers-swarm-init: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (errno) fprintf(stderr, ": %s", strerror(errno));
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void join_cgroup(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) { errno = 0; fprintf(stderr, "vers-swarm-init: cannot open %s: %s\n", path, strerror(errno)); return; }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (write(fd, pid, (size_t)n) < 0) fprintf(stderr, "vers-swarm-init: cannot join %s: %s\n", dir, strerror(errno));
    close(fd);
}

// MARK: - boot

static void mount_or_die(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
    if (mount(src, dst, type, flags, data) != 0) die("mount %s on %s (%s)", src ? src : "none", dst, type ? type : "bind");
}

static void make_dev(const char *root, const char *name) {
    char host[256], target[4096];
    snprintf(host, sizeof host, "/dev/%s", name);
    snprintf(target, sizeof target, "%s/dev/%s", root, name);
    int fd = open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0) close(fd);
    mount_or_die(host, target, NULL, MS_BIND, NULL);
}

/// Mounts /proc, a minimal /dev and /dev/pts, /dev/shm in `rootfs`, then pivots into it.
static void finish_root(const char *rootfs) {
    char p[4096];
    snprintf(p, sizeof p, "%s/proc", rootfs);
    mkdir(p, 0555);
    mount_or_die("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    snprintf(p, sizeof p, "%s/dev", rootfs);
    mkdir(p, 0755);
    mount_or_die("tmpfs", p, "tmpfs", MS_NOSUID, "mode=755,size=65536k");
    const char *devs[] = {"null", "zero", "full", "random", "urandom", "tty"};
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) make_dev(rootfs, devs[i]);
    snprintf(p, sizeof p, "%s/dev/pts", rootfs);
    mkdir(p, 0755);
    mount_or_die("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
    snprintf(p, sizeof p, "%s/dev/ptmx", rootfs);
    if (symlink("pts/ptmx", p) != 0) die("symlink %s", p);
    snprintf(p, sizeof p, "%s/dev/shm", rootfs);
    mkdir(p, 01777);
    mount_or_die("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    const char *links[][2] = {{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/dev/%s", rootfs, links[i][1]);
        if (symlink(links[i][0], p) != 0) die("symlink %s", p);
    }

    if (chdir(rootfs) != 0) die("chdir %s", rootfs);
    if (syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root");
    if (umount2(".", MNT_DETACH) != 0) die("detach old root");
    if (chdir("/") != 0) die("chdir /");
}

static void setup_root(const char *rootfs, const char *lower, const char *upper, const char *work) {
    size_t len = strlen(lower) + strlen(upper) + strlen(work) + 64;
    char *opts = malloc(len);
    if (!opts) die("out of memory");
    snprintf(opts, len, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
    mount_or_die("overlay", rootfs, "overlay", 0, opts);
    free(opts);

    finish_root(rootfs);
}

/// Maps the caller's uid and gid to root in its new user namespace.
static void map_self_to_root(uid_t uid, gid_t gid) {
    char map[64];
    int fd = open("/proc/self/setgroups", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) { if (write(fd, "deny", 4) < 0) { /* older kernels */ } close(fd); }
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)uid);
    fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, map, strlen(map)) < 0) die("write uid_map");
    close(fd);
    snprintf(map, sizeof map, "0 %u 1\n", (unsigned)gid);
    fd = open("/proc/self/gid_map", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, map, strlen(map)) < 0) die("write gid_map");
    close(fd);
}

/// Bind-mounts `src` on `dst` read-only, keeping the flags the kernel locks for us.
static void bind_readonly(const char *src, const char *dst) {
    mount_or_die(src, dst, NULL, MS_BIND | MS_REC, NULL);
    struct statvfs st;
    unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
    if (statvfs(dst, &st) == 0) {
        if (st.f_flag & ST_NOSUID) flags |= MS_NOSUID;
        if (st.f_flag & ST_NODEV) flags |= MS_NODEV;
        if (st.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
        if (st.f_flag & ST_NOATIME) flags |= MS_NOATIME;
        if (st.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
        if (st.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    }
    mount_or_die(NULL, dst, NULL, flags, NULL);
}

/// The root of a VM without privileges: a tmpfs holding the host's OS
/// directories read-only and the VM's own writable directories from `state`.
static void setup_rootless_root(const char *rootfs, const char *state, const char **hide, int nhide) {
    static const char *os_dirs[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "opt", "var"};
    static const char *own_dirs[] = {"root", "home", "tmp", "srv", "mnt", "media", "run"};
    char src[4096], dst[4096];
    mount_or_die("tmpfs", rootfs, "tmpfs", MS_NOSUID, "mode=755,size=65536k");
    for (size_t i = 0; i < sizeof os_dirs / sizeof os_dirs[0]; i++) {
        snprintf(src, sizeof src, "/%s", os_dirs[i]);
        snprintf(dst, sizeof dst, "%s/%s", rootfs, os_dirs[i]);
        struct stat st;
        if (lstat(src, &st) != 0) continue;
        if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t n = readlink(src, target, sizeof target - 1);
            if (n < 0) die("readlink %s", src);
            target[n] = 0;
            if (symlink(target, dst) != 0) die("symlink %s", dst);
            continue;
        }
        mkdir(dst, 0755);
        bind_readonly(src, dst);
    }
    for (size_t i = 0; i < sizeof own_dirs / sizeof own_dirs[0]; i++) {
        snprintf(src, sizeof src, "%s/%s", state, own_dirs[i]);
        snprintf(dst, sizeof dst, "%s/%s", rootfs, own_dirs[i]);
        mkdir(src, strcmp(own_dirs[i], "tmp") ? 0755 : 01777);
        mkdir(dst, 0755);
        mount_or_die(src, dst, NULL, MS_BIND | MS_REC, NULL);
    }
    // Paths of the host that show through the OS directories but must not (the state dir).
    for (int i = 0; i < nhide; i++) {
        snprintf(dst, sizeof dst, "%s%s", rootfs, hide[i]);
        struct stat st;
        if (stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) mount_or_die("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k");
    }
    finish_root(rootfs);
}

static volatile sig_atomic_t stop_requested = 0;
static void on_term(int sig) { (void)sig; stop_requested = 1; }
static void on_child(int sig) { (void)sig; }

static int boot(int argc, char **argv) {
    const char *rootfs = NULL, *lower = NULL, *upper = NULL, *work = NULL, *hostname = "vm", *state = NULL;
    const char *cgroups[MAX_CGROUPS];
    const char *hide[MAX_CGROUPS];
    int ncg = 0, nhide = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) die("missing value for %s", a);
        if (!strcmp(a, "--rootfs")) rootfs = v;
        else if (!strcmp(a, "--lower")) lower = v;
        else if (!strcmp(a, "--upper")) upper = v;
        else if (!strcmp(a, "--work")) work = v;
        else if (!strcmp(a, "--hostname")) hostname = v;
        else if (!strcmp(a, "--cgroup")) { if (ncg < MAX_CGROUPS) cgroups[ncg++] = v; }
        else if (!strcmp(a, "--rootless-state")) state = v;
        else if (!strcmp(a, "--hide")) { if (nhide < MAX_CGROUPS) hide[nhide++] = v; }
        else { errno = 0; die("unknown option %s", a); }
        i++;
    }
    errno = 0;
    if (!rootfs || (!state && (!lower || !upper || !work)))
        die("boot needs --rootfs and either --lower, --upper and --work or --rootless-state");

    for (int i = 0; i < ncg; i++) join_cgroup(cgroups[i]);
    if (setsid() < 0 && errno != EPERM) die("setsid");
    uid_t uid = getuid();
    gid_t gid = getgid();
    int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | (state ? CLONE_NEWUSER : 0);
    if (unshare(flags) != 0) die(state ? "unshare (user namespaces may be disabled: kernel.unprivileged_userns_clone)" : "unshare");
    if (state) map_self_to_root(uid, gid);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) die("make / private");

    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        close(ready[0]);
        if (sethostname(hostname, strlen(hostname)) != 0) die("sethostname");
        if (state) setup_rootless_root(rootfs, state, hide, nhide);
        else setup_root(rootfs, lower, upper, work);
        // Detach from the bridge's stdio: the VM must outlive it.
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); }
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        sigaction(SIGTERM, &sa, NULL);
        sa.sa_handler = on_child;
        sigaction(SIGCHLD, &sa, NULL);
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        sigset_t blocked, waiting;
        sigemptyset(&blocked);
        sigaddset(&blocked, SIGCHLD);
        sigaddset(&blocked, SIGTERM);
        sigprocmask(SIG_BLOCK, &blocked, &waiting);
        sigdelset(&waiting, SIGCHLD);
        sigdelset(&waiting, SIGTERM);
        if (write(ready[1], "1", 1) != 1) _exit(1);
        close(ready[1]);
        // Reap every orphan the VM hands us; sleep until the next SIGCHLD or SIGTERM.
        for (;;) {
            int status;
            while (waitpid(-1, &status, WNOHANG) > 0) {}
            if (stop_requested) _exit(0);
            sigsuspend(&waiting);
        }
    }
    close(ready[1]);
    char c;
    ssize_t n = read(ready[0], &c, 1);
    if (n != 1) {
        int status = 0;
        waitpid(child, &status, 0);
        errno = 0;
        die("VM init failed before it was ready (see the message above)");
    }
    printf("ready %d\n", (int)child);
    fflush(stdout);
    return 0;
}

// MARK: - exec

static int open_ns(pid_t pid, const char *name) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/ns/%s", (int)pid, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("VM init %d is gone (%s)", (int)pid, p);
    return fd;
}

static void relay(int from, int to, int *open_flag) {
    char buf[65536];
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n > 0) {
            ssize_t off = 0;
            while (off < n) {
                ssize_t w = write(to, buf + off, (size_t)(n - off));
                if (w < 0) { if (errno == EINTR) continue; break; }
                off += w;
            }
            continue;
        }
        if (n == 0) { *open_flag = 0; close(from); }
        else if (errno == EINTR) continue;
        else if (errno != EAGAIN) { *open_flag = 0; close(from); }
        return;
    }
}

static volatile pid_t exec_child = 0;
static int rootless = 0;

/// Without a cgroup, a timeout or cancellation signals this helper: it kills
/// the command's process group (the child made itself a session leader).
static void on_stop(int sig) {
    (void)sig;
    if (exec_child > 0) kill(-exec_child, SIGKILL);
}

static int exec_in(int argc, char **argv) {
    pid_t pid = 0;
    const char *cgroup = NULL, *cwd = NULL;
    int i = 0;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--")) { i++; break; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { errno = 0; die("missing value for %s", argv[i]); }
        if (!strcmp(argv[i], "--pid")) pid = (pid_t)atoi(v);
        else if (!strcmp(argv[i], "--cgroup")) cgroup = v;
        else if (!strcmp(argv[i], "--cwd")) cwd = v;
        else { errno = 0; die("unknown option %s", argv[i]); }
        i++;
    }
    errno = 0;
    if (pid <= 0 || i >= argc) die("exec needs --pid and a command after --");
    char **cmd = argv + i;

    // Only the command's tree goes into the exec cgroup: a kill of that group
    // leaves this helper alive to reap its child, and orphans inside the VM
    // are reaped by the VM's init (never by a host process that may not).
    int cgfd = -1;
    if (cgroup) {
        char path[4096];
        snprintf(path, sizeof path, "%s/cgroup.procs", cgroup);
        cgfd = open(path, O_WRONLY | O_CLOEXEC);
        if (cgfd < 0) die("open %s", path);
    }
    // A rootless VM lives in a user namespace of its own: enter it first.
    char own_user[64], vm_user[64];
    snprintf(own_user, sizeof own_user, "/proc/self/ns/user");
    snprintf(vm_user, sizeof vm_user, "/proc/%d/ns/user", (int)pid);
    struct stat a, b;
    if (stat(own_user, &a) == 0 && stat(vm_user, &b) == 0 && (a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
        int ufd = open_ns(pid, "user");
        if (setns(ufd, CLONE_NEWUSER) != 0) die("enter user namespace of %d", (int)pid);
        close(ufd);
        rootless = 1;
    }
    const char *names[] = {"ipc", "uts", "pid", "mnt"};
    int fds[4];
    for (int k = 0; k < 4; k++) fds[k] = open_ns(pid, names[k]);
    char rootp[64];
    snprintf(rootp, sizeof rootp, "/proc/%d/root", (int)pid);
    int rootfd = open(rootp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) die("VM init %d is gone (%s)", (int)pid, rootp);
    for (int k = 0; k < 4; k++) {
        if (setns(fds[k], 0) != 0) die("enter %s namespace of %d", names[k], (int)pid);
        close(fds[k]);
    }
    if (fchdir(rootfd) != 0 || chroot(".") != 0) die("enter VM root");
    close(rootfd);

    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        if (cgfd < 0) setsid();
        if (cgfd >= 0 && write(cgfd, "0", 1) != 1) {
            fprintf(stderr, "vers-swarm: cannot join the exec cgroup: %s\n", strerror(errno));
            _exit(126);
        }
        dup2(out[1], 1);
        dup2(err[1], 2);
        signal(SIGPIPE, SIG_DFL);
        // Without --cwd: root's home, or / in an image that has none.
        if (cwd == NULL) {
            if (chdir("/root") != 0 && chdir("/") != 0) _exit(126);
        } else if (chdir(cwd) != 0) {
            fprintf(stderr, "vers-swarm: cwd %s: %s\n", cwd, strerror(errno));
            _exit(126);
        }
        execvp(cmd[0], cmd);
        int e = errno;
        fprintf(stderr, "vers-swarm: %s: %s\n", cmd[0], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    exec_child = child;
    if (cgfd < 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop;
        sigaction(SIGTERM, &sa, NULL);
    }
    if (cgfd >= 0) close(cgfd);
    close(out[1]);
    close(err[1]);
    close(0);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    signal(SIGPIPE, SIG_IGN);
    int out_open = 1, err_open = 1, status = 0, exited = 0;
    while (!exited) {
        struct pollfd p[2];
        int np = 0;
        if (out_open) { p[np].fd = out[0]; p[np].events = POLLIN; np++; }
        if (err_open) { p[np].fd = err[0]; p[np].events = POLLIN; np++; }
        // Poll with a short timeout so the child's exit is noticed even when a
        // background process keeps the pipes open.
        int r = poll(p, (nfds_t)np, 20);
        if (r > 0 || np == 0) {
            if (out_open) relay(out[0], 1, &out_open);
            if (err_open) relay(err[0], 2, &err_open);
        }
        pid_t w = waitpid(child, &status, (out_open || err_open) ? WNOHANG : 0);
        if (w == child) exited = 1;
    }
    if (out_open) relay(out[0], 1, &out_open);
    if (err_open) relay(err[0], 2, &err_open);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "boot")) return boot(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "exec")) return exec_in(argc - 2, argv + 2);
    fputs("usage: vers-swarm-init boot --rootfs DIR --lower L:... --upper U --work W [--hostname H] [--cgroup DIR]...\n"
          "       vers-swarm-init exec --pid PID [--cgroup DIR] [--cwd DIR] -- ARGV...\n", stderr);
    return 2;
}
