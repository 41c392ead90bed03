/* Attacks on a sandbox, one per subcommand, for tests/sandbox.rs. Each tries a thing a
 * sandboxed command must not be able to do and prints "denied: <reason>" or "ALLOWED".
 * Every attempt is harmless if it works: it sets what is already set, or asks the kernel
 * for something it refuses after the capability check (a bad reboot magic, a null module).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static int result(int ok, const char *what) {
    if (ok) {
        printf("%s: ALLOWED\n", what);
        return 0;
    }
    printf("%s: denied: %s\n", what, strerror(errno));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: escape ptrace PID | reboot | settime | nice | handle FILE |"
                        " netadmin | mount DIR | mknod-open PATH b|c MAJOR MINOR\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "ptrace") && argc == 3) {
        pid_t pid = atoi(argv[2]);
        long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
        if (r == 0) {
            waitpid(pid, NULL, __WALL);
            ptrace(PTRACE_DETACH, pid, 0, 0);
        }
        return result(r == 0, "ptrace");
    }
    if (!strcmp(cmd, "reboot")) {
        /* A bad magic: EINVAL if the caller may reboot, EPERM if not. */
        long r = syscall(SYS_reboot, 0xfee1dead, 0x12345678, 0, NULL);
        return result(r == -1 && errno == EINVAL, "reboot");
    }
    if (!strcmp(cmd, "settime")) {
        /* No time and no zone: succeeds with CAP_SYS_TIME and changes nothing. */
        return result(syscall(SYS_settimeofday, NULL, NULL) == 0, "settime");
    }
    if (!strcmp(cmd, "nice")) {
        /* Raising its own priority needs CAP_SYS_NICE. */
        return result(setpriority(PRIO_PROCESS, 0, -1) == 0, "nice");
    }
    if (!strcmp(cmd, "handle") && argc == 3) {
        /* Opening a file by handle (the "shocker" escape) needs CAP_DAC_READ_SEARCH. */
        struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
        h->handle_bytes = MAX_HANDLE_SZ;
        int mount_id;
        if (name_to_handle_at(AT_FDCWD, argv[2], h, &mount_id, 0) != 0)
            return result(0, "handle");
        int mfd = open("/", O_RDONLY | O_DIRECTORY);
        int fd = open_by_handle_at(mfd, h, O_RDONLY);
        return result(fd >= 0, "handle");
    }
    if (!strcmp(cmd, "netadmin")) {
        /* Setting lo's MTU to what it is needs CAP_NET_ADMIN. */
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        strcpy(ifr.ifr_name, "lo");
        if (ioctl(s, SIOCGIFMTU, &ifr) != 0)
            return result(0, "netadmin");
        return result(ioctl(s, SIOCSIFMTU, &ifr) == 0, "netadmin");
    }
    if (!strcmp(cmd, "mount") && argc == 3) {
        int ok = mount("none", argv[2], "tmpfs", 0, NULL) == 0;
        if (ok)
            umount(argv[2]);
        return result(ok, "mount");
    }
    if (!strcmp(cmd, "mknod-open") && argc == 6) {
        /* A device node (b or c) for a host device, then a read of it. */
        dev_t dev = makedev(atoi(argv[4]), atoi(argv[5]));
        mode_t type = argv[3][0] == 'b' ? S_IFBLK : S_IFCHR;
        if (mknod(argv[2], type | 0600, dev) != 0 && errno != EEXIST)
            return result(0, "mknod-open");
        int fd = open(argv[2], O_RDONLY);
        int ok = fd >= 0;
        if (ok) {
            char b[512];
            ok = read(fd, b, sizeof(b)) >= 0;
        }
        unlink(argv[2]);
        return result(ok, "mknod-open");
    }
    fprintf(stderr, "escape: unknown probe %s\n", cmd);
    return 2;
}
