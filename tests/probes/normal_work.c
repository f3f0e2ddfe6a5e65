/* Ordinary work every cell must be able to do under the default seccomp policy: fork,
 * pipes, threads (glibc's pthread_create and posix_spawn try clone3 first and must fall back
 * to clone on ENOSYS), mmap, getrandom, sockets over loopback, a terminal ioctl, exec.
 * Prints "ok STEP" per step and "ALL OK" at the end (exit 0); "FAIL STEP: ERROR" (exit 1).
 * Built static by the tests: cc -static -O2 -pthread -o normal_work normal_work.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

extern char **environ;

static void check(int ok, const char *step) {
    if (!ok) {
        printf("FAIL %s: %s\n", step, strerror(errno));
        exit(1);
    }
    printf("ok %s\n", step);
}

static void *thread_main(void *arg) {
    *(int *)arg = 42;
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);

    pid_t pid = fork();
    if (pid == 0) _exit(7);
    int status = 0;
    check(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
              WEXITSTATUS(status) == 7,
          "fork");

    int fds[2];
    char buf[4] = {0};
    check(pipe(fds) == 0 && write(fds[1], "abc", 3) == 3 && read(fds[0], buf, 3) == 3 &&
              strcmp(buf, "abc") == 0,
          "pipe");

    pthread_t thread;
    int value = 0;
    check(pthread_create(&thread, NULL, thread_main, &value) == 0 &&
              pthread_join(thread, NULL) == 0 && value == 42,
          "thread");

    size_t len = 1 << 20;
    char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    check(mem != MAP_FAILED, "mmap");
    memset(mem, 1, len);
    check(mprotect(mem, len, PROT_READ) == 0 && munmap(mem, len) == 0, "mprotect+munmap");

    unsigned char random[16];
    check(getrandom(random, sizeof random, 0) == (ssize_t)sizeof random, "getrandom");

    struct winsize ws;
    int rc = ioctl(0, TIOCGWINSZ, &ws); /* on a pipe/file: ENOTTY from the kernel, not EPERM */
    check(rc == 0 || errno == ENOTTY, "ioctl TIOCGWINSZ");

    int sv[2];
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0 &&
              write(sv[0], "x", 1) == 1 && read(sv[1], buf, 1) == 1,
          "socketpair AF_UNIX");

    int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    check(server >= 0, "socket AF_INET");
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t addr_len = sizeof addr;
    check(bind(server, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(server, 1) == 0 &&
              getsockname(server, (struct sockaddr *)&addr, &addr_len) == 0,
          "bind+listen 127.0.0.1");
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    check(client >= 0 && connect(client, (struct sockaddr *)&addr, sizeof addr) == 0,
          "connect 127.0.0.1");
    int conn = accept4(server, NULL, NULL, SOCK_CLOEXEC);
    check(conn >= 0 && write(client, "hi", 2) == 2 && read(conn, buf, 2) == 2, "accept+send");

    char *argv[] = {"/bin/true", NULL};
    pid_t child;
    check(posix_spawn(&child, "/bin/true", NULL, NULL, argv, environ) == 0 &&
              waitpid(child, &status, 0) == child && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "posix_spawn /bin/true");

    printf("ALL OK\n");
    return 0;
}
