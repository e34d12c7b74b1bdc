/* SPDX-License-Identifier: MIT */
/* Runs a libFuzzer target without libFuzzer (any compiler, any sanitizer): every file given (or
 * every file in a directory given) is fed to LLVMFuzzerTestOneInput, then --random N inputs of
 * pseudo-random bytes (--seed S). ctest uses it to replay the committed corpora in every
 * configuration of the matrix. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static unsigned long files;

static void run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    files++;
}

static void run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        run_file(path);
        return;
    }
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        run_path(p);
    }
    if (d)
        closedir(d);
}

int main(int argc, char **argv)
{
    unsigned long random_runs = 0, seed = 1;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--random") && i + 1 < argc)
            random_runs = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoul(argv[++i], NULL, 10);
        else
            run_path(argv[i]);
    }
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    static uint8_t buf[4096];
    for (unsigned long r = 0; r < random_runs; r++) {
        size_t n = 16 + (size_t)(r * 7919 % (sizeof buf - 16));
        for (size_t k = 0; k < n; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[k] = (uint8_t)x;
        }
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("%s: %lu corpus files and %lu random inputs replayed, no failure\n", argv[0], files,
           random_runs);
    return 0;
}
