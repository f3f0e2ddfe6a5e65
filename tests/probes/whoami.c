/* Prints the real and effective user and group ids: "uid=U euid=E gid=G egid=F".
 * The tests install a setuid-root copy in the cell's rootfs: euid must not become 0.
 * Built static by the tests: cc -static -O2 -o whoami whoami.c
 */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("uid=%d euid=%d gid=%d egid=%d\n", (int)getuid(), (int)geteuid(), (int)getgid(),
           (int)getegid());
    return 0;
}
