/* Floors for the gateway benchmark (compare_gateway.py compiles this with cc into
 * target/ and runs it in every round): what pipes and processes cost with no protocol.
 *
 *   floors pingpong N SIZE [poll]   two C processes echo SIZE bytes over a pipe pair N
 *                                   times; prints the mean round trip in microseconds
 *   floors drive N SIZE CMD ARG...  as pingpong, with CMD (started on the pipes as its
 *                                   stdin and stdout) as the echoing side; this side
 *                                   polls for each answer
 *
 * With `poll`, and always for the driving side of `drive`, a reader does not sleep in
 * read(2) but polls (non-blocking reads, yielding the processor between them), as our
 * gateway's receivers do: on a virtual machine a sleeping process is woken tens of
 * microseconds late when its processor went idle, and a floor must not be slower than
 * what it bounds.
 *   floors bandwidth MIB [PIPE]     one process writes MIB MiB in 1 MiB writes, the
 *                                   other reads in 1 MiB reads, over a pipe of PIPE
 *                                   bytes (F_SETPIPE_SZ; the kernel's default when
 *                                   absent); prints MiB/s
 *
 * Output: one number on stdout. Errors: a line on stderr and status 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "floors: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            die("write");
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Reads exactly n bytes; 0 at a clean end of input before any byte. On a non-blocking
 * descriptor, polls. */
static int read_all(int fd, char *p, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, p + got, n - got);
        if (k < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                sched_yield();
                continue;
            }
            die("read");
        }
        if (k == 0) {
            if (got == 0) return 0;
            fprintf(stderr, "floors: input ended inside a message\n");
            exit(1);
        }
        got += (size_t)k;
    }
    return 1;
}

/* Sends N messages of SIZE bytes on `out`, each answered on `in`; mean round trip. */
static double ping(int in, int out, long n, size_t size) {
    char *buf = calloc(1, size);
    if (!buf) die("calloc");
    for (long i = 0; i < n / 10 + 10; i++) { /* warm-up */
        write_all(out, buf, size);
        read_all(in, buf, size);
    }
    double t = now();
    for (long i = 0; i < n; i++) {
        write_all(out, buf, size);
        if (!read_all(in, buf, size)) {
            fprintf(stderr, "floors: the echo ended early\n");
            exit(1);
        }
    }
    t = now() - t;
    free(buf);
    return t / n * 1e6;
}

static void nonblocking(int fd) {
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
}

/* Starts a child with `up` as its stdin and `down` as its stdout; in the child, runs
 * argv, or echoes (polling when `poll`) when argv is NULL. */
static pid_t start(int up[2], int down[2], char **argv, size_t size, int poll) {
    if (pipe(up) || pipe(down)) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        dup2(up[0], 0);
        dup2(down[1], 1);
        close(up[0]); close(up[1]); close(down[0]); close(down[1]);
        if (argv) {
            execvp(argv[0], argv);
            die("exec");
        }
        char *buf = malloc(size);
        if (poll) nonblocking(0);
        while (read_all(0, buf, size)) write_all(1, buf, size);
        _exit(0);
    }
    close(up[0]);
    close(down[1]);
    return pid;
}

int main(int argc, char **argv) {
    if (argc >= 4 && (!strcmp(argv[1], "pingpong") || !strcmp(argv[1], "drive"))) {
        long n = atol(argv[2]);
        size_t size = (size_t)atol(argv[3]);
        int drive = !strcmp(argv[1], "drive");
        if (n <= 0 || size == 0 || (drive && argc < 5)) {
            fprintf(stderr, "floors: expected N > 0, SIZE > 0 and, for drive, a command\n");
            return 1;
        }
        int poll = drive || (argc == 5 && !strcmp(argv[4], "poll"));
        int up[2], down[2];
        pid_t pid = start(up, down, drive ? argv + 4 : NULL, size, poll);
        if (poll) nonblocking(down[0]);
        double us = ping(down[0], up[1], n, size);
        close(up[1]);
        waitpid(pid, NULL, 0);
        printf("%.3f\n", us);
        return 0;
    }
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "bandwidth")) {
        long mib = atol(argv[2]);
        int pipe_size = argc == 4 ? atoi(argv[3]) : 0;
        if (mib <= 0) {
            fprintf(stderr, "floors: expected a positive number of MiB\n");
            return 1;
        }
        size_t chunk = 1 << 20;
        int data[2], ack[2];
        if (pipe(data) || pipe(ack)) die("pipe");
        if (pipe_size > 0 && fcntl(data[1], F_SETPIPE_SZ, pipe_size) < pipe_size) die("F_SETPIPE_SZ");
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
            close(data[1]);
            close(ack[0]);
            char *buf = malloc(chunk);
            long long total = 0;
            for (;;) {
                ssize_t k = read(data[0], buf, chunk);
                if (k < 0 && errno == EINTR) continue;
                if (k <= 0) break;
                total += k;
            }
            write_all(ack[1], (char *)&total, sizeof total);
            _exit(0);
        }
        close(data[0]);
        close(ack[1]);
        char *buf = malloc(chunk);
        memset(buf, 7, chunk);
        double t = now();
        for (long i = 0; i < mib; i++) write_all(data[1], buf, chunk);
        close(data[1]);
        long long total = 0;
        read_all(ack[0], (char *)&total, sizeof total);
        t = now() - t;
        waitpid(pid, NULL, 0);
        if (total != (long long)mib * (long long)chunk) {
            fprintf(stderr, "floors: the reader got %lld bytes\n", total);
            return 1;
        }
        printf("%.1f\n", mib / t);
        return 0;
    }
    fprintf(stderr, "usage: floors pingpong N SIZE [poll] | floors drive N SIZE CMD ARG... | floors bandwidth MIB [PIPE]\n");
    return 1;
}
