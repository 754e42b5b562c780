// refuse-io-uring ERRNO PROGRAM [ARGUMENTS...]
//
// Runs PROGRAM under a seccomp filter that makes io_uring_setup fail with ERRNO (ENOSYS or EPERM),
// as a kernel without io_uring, a container runtime's default profile, or kernel.io_uring_disabled
// would. The tests use it to check that echo-uring refuses in one line and exits 1: the refusal
// comes from the kernel's own syscall path, not from anything the server is told.
//
// The filter is inherited across execve (PR_SET_NO_NEW_PRIVS makes that allowed without
// privileges). Every other system call of this architecture's table is allowed; a call made
// through another table (x32, or the 32-bit one) is refused with the same errno, so a program
// cannot reach io_uring_setup around the filter.
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define THIS_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_ARCH AUDIT_ARCH_AARCH64
#else
#error "refuse-io-uring: add this architecture's AUDIT_ARCH_ value"
#endif

// io_uring_setup is 425 in every architecture's table (the syscall numbers were unified from 403
// on); named here for headers older than the call.
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif

// x86_64's x32 calls share its audit arch and are told apart by this bit of the number.
#define X32_SYSCALL_BIT 0x40000000

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: refuse-io-uring ENOSYS|EPERM PROGRAM [ARGUMENTS...]\n");
        return 2;
    }
    unsigned short code;
    if (strcmp(argv[1], "ENOSYS") == 0) {
        code = ENOSYS;
    } else if (strcmp(argv[1], "EPERM") == 0) {
        code = EPERM;
    } else {
        fprintf(stderr, "refuse-io-uring: the errno is ENOSYS or EPERM, not %s\n", argv[1]);
        return 2;
    }
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | code),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | code),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("refuse-io-uring: prctl(PR_SET_NO_NEW_PRIVS)");
        return 2;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
        perror("refuse-io-uring: prctl(PR_SET_SECCOMP)");
        return 2;
    }
    execv(argv[2], argv + 2);
    fprintf(stderr, "refuse-io-uring: cannot run %s: %s\n", argv[2], strerror(errno));
    return 2;
}
