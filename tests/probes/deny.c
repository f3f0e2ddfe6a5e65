/* Tries one thing the sandbox must not allow and reports what happened.
 *
 *   deny PROBE      prints "DENIED <ERRNO>" and exits 0 when the call failed,
 *                   "ALLOWED" and exits 1 when it succeeded, "USAGE ..." and exits 2.
 *
 * Where it is cheap, the arguments are chosen so that the kernel's own checks (past
 * seccomp) fail with a different errno than seccomp's EPERM (e.g. EBADF for a bad fd,
 * ENOTTY for an ioctl on /dev/null): then "DENIED EPERM" proves the filter said no.
 * Built static by the tests: cc -static -O2 -o deny deny.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <linux/sched.h>

static int report(long rc) {
    if (rc < 0) {
        const char *name = strerrorname_np(errno);
        printf("DENIED %s\n", name ? name : "?");
        return 0;
    }
    printf("ALLOWED\n");
    return 1;
}

static long probe_unshare_user(void) { return unshare(CLONE_NEWUSER); }
static long probe_unshare_mount(void) { return unshare(CLONE_NEWNS); }

static long probe_clone_newns(void) {
    long pid = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}

static long probe_clone3_newuser(void) {
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_NEWUSER;
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}

static long probe_mount_tmpfs(void) {
    long rc = mount("x", "/tmp", "tmpfs", 0, NULL);
    if (rc == 0) umount("/tmp");
    return rc;
}

static long probe_umount(void) { return umount2("/", MNT_DETACH); }
static long probe_pivot_root(void) { return syscall(SYS_pivot_root, "/", "/"); }
/* A bad fd: the kernel itself says EBADF. */
static long probe_setns(void) { return setns(-1, 0); }

static long probe_keyctl(void) {
    /* KEYCTL_GET_KEYRING_ID of the session keyring: needs no privilege at all. */
    return syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* SESSION */, 0);
}

static long probe_add_key(void) {
    return syscall(SYS_add_key, "user", "sandcell-probe", "x", 1, -2 /* PROCESS keyring */);
}

static long probe_request_key(void) {
    return syscall(SYS_request_key, "user", "sandcell-probe", NULL, 0);
}

static long probe_bpf(void) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
}

static long probe_perf_event_open(void) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    return syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
}

static long probe_userfaultfd(void) {
    /* UFFD_USER_MODE_ONLY (1): allowed unprivileged since 5.11. */
    return syscall(SYS_userfaultfd, O_CLOEXEC | 1);
}

/* PTRACE_TRACEME needs no privilege. */
static long probe_ptrace(void) { return ptrace(PTRACE_TRACEME, 0, NULL, NULL); }

/* Reading our own memory needs no privilege. */
static long probe_process_vm_readv(void) {
    char src[8] = "sandcel", dst[8];
    struct iovec local = {dst, sizeof dst}, remote = {src, sizeof src};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
}

/* On /dev/null the tty layer is never reached: the kernel itself says ENOTTY. */
static long probe_tiocsti(void) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) { printf("SETUP open /dev/null: %s\n", strerror(errno)); _exit(2); }
    char c = 'x';
    return ioctl(fd, TIOCSTI, &c);
}

static long probe_name_to_handle_at(void) {
    char buf[sizeof(struct file_handle) + 128];
    struct file_handle *fh = (struct file_handle *)buf;
    int mount_id;
    fh->handle_bytes = 128;
    return name_to_handle_at(AT_FDCWD, "/", fh, &mount_id, 0);
}

/* Kill list: bad magic, so even an unfiltered kernel would do nothing. */
static long probe_reboot(void) { return syscall(SYS_reboot, 0, 0, 0, NULL); }

#if defined(__x86_64__)
static long probe_iopl(void) { return syscall(SYS_iopl, 0); }
#endif

struct probe { const char *name; long (*run)(void); };

static const struct probe PROBES[] = {
    {"unshare-user", probe_unshare_user},
    {"unshare-mount", probe_unshare_mount},
    {"clone-newns", probe_clone_newns},
    {"clone3-newuser", probe_clone3_newuser},
    {"mount-tmpfs", probe_mount_tmpfs},
    {"umount", probe_umount},
    {"pivot-root", probe_pivot_root},
    {"setns", probe_setns},
    {"keyctl", probe_keyctl},
    {"add-key", probe_add_key},
    {"request-key", probe_request_key},
    {"bpf", probe_bpf},
    {"perf-event-open", probe_perf_event_open},
    {"userfaultfd", probe_userfaultfd},
    {"ptrace", probe_ptrace},
    {"process-vm-readv", probe_process_vm_readv},
    {"tiocsti", probe_tiocsti},
    {"name-to-handle-at", probe_name_to_handle_at},
    {"reboot", probe_reboot},
#if defined(__x86_64__)
    {"iopl", probe_iopl},
#endif
};

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2) {
        for (size_t i = 0; i < sizeof PROBES / sizeof PROBES[0]; i++) {
            if (strcmp(argv[1], PROBES[i].name) == 0) return report(PROBES[i].run());
        }
    }
    printf("USAGE deny PROBE; probes:");
    for (size_t i = 0; i < sizeof PROBES / sizeof PROBES[0]; i++) printf(" %s", PROBES[i].name);
    printf("\n");
    return 2;
}
