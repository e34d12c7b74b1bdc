/* SPDX-License-Identifier: MIT */
/* The standard process_* metrics, read from /proc/self the way the Prometheus client libraries
 * read them: /proc/self/stat for CPU time, threads, start time, virtual and resident size;
 * /proc/stat for the boot time; /proc/self/fd and /proc/self/limits for descriptors. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "telemetry.h"

/* Reads a whole small file into buf (NUL-terminated). Bytes read, or -errno. */
static ssize_t read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t r = read(fd, buf + len, size - 1 - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            close(fd);
            return -err;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

static int read_stat(tslab__process *out)
{
    char buf[1024];
    ssize_t n = read_file("/proc/self/stat", buf, sizeof buf);
    if (n < 0)
        return (int)n;
    /* The command name (field 2) is in parentheses and may itself hold spaces and ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -EIO;
    p++;
    /* Fields from 3 (state) on, numbered as in proc(5). */
    unsigned long long f[25] = {0};
    for (int i = 3; i <= 24; i++) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return -EIO;
        if (i == 3) { /* state: a letter */
            while (*p != ' ' && *p != '\0')
                p++;
            continue;
        }
        char *end;
        f[i] = strtoull(p, &end, 10); /* negative fields (priority, nice) are not used */
        if (end == p && *p != '-')
            return -EIO;
        p = end;
        while (*p != ' ' && *p != '\0')
            p++;
    }
    long ticks = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    if (ticks <= 0 || page <= 0)
        return -EIO;
    out->cpu_seconds_total = (double)(f[14] + f[15]) / (double)ticks;
    out->threads = f[20];
    out->virtual_bytes = f[23];
    out->resident_bytes = f[24] * (uint64_t)page;

    char sbuf[8192];
    n = read_file("/proc/stat", sbuf, sizeof sbuf);
    if (n < 0)
        return (int)n;
    char *bt = strstr(sbuf, "\nbtime ");
    if (bt == NULL)
        return -EIO;
    unsigned long long btime = strtoull(bt + 7, NULL, 10);
    out->start_time_seconds = (double)btime + (double)f[22] / (double)ticks;
    return 0;
}

static int count_fds(tslab__process *out)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -errno;
    int self = dirfd(d);
    uint64_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (atoi(e->d_name) == self) /* the descriptor reading the directory */
            continue;
        count++;
    }
    closedir(d);
    out->open_fds = count;
    return 0;
}

static int read_max_fds(tslab__process *out)
{
    char buf[4096];
    ssize_t n = read_file("/proc/self/limits", buf, sizeof buf);
    if (n >= 0) {
        const char *line = strstr(buf, "Max open files");
        if (line != NULL) {
            const char *p = line + strlen("Max open files");
            while (*p == ' ')
                p++;
            char *end;
            unsigned long long soft = strtoull(p, &end, 10);
            if (end != p) {
                out->max_fds = soft;
                return 0;
            }
        }
    }
    struct rlimit rl; /* "unlimited", or no /proc/self/limits */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    out->max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    return 0;
}

int tslab__procfs_read(tslab__process *out)
{
    memset(out, 0, sizeof *out);
    int err = read_stat(out);
    int e2 = count_fds(out);
    int e3 = read_max_fds(out);
    if (err == 0)
        err = e2;
    if (err == 0)
        err = e3;
    return err;
}
