/* nftw and struct FTW are XSI. */
#define _XOPEN_SOURCE 700

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

brine *tu_open(const char *dir, const brine_options *o)
{
    brine *b = NULL;
    int rc = brine_open(&b, dir, o);
    if (rc != 0) {
        print_error("brine_open(%s) returned %d: %s\n", dir, rc, brine_open_errmsg());
        fail();
    }
    assert_non_null(b);
    return b;
}

brine *tu_open_partial(const char *dir)
{
    brine_options o = BRINE_OPTIONS_INIT;
    o.restore_flags = BRINE_RESTORE_PARTIAL;
    return tu_open(dir, &o);
}

const char *tu_tmpdir(void)
{
    static char slots[16][512];
    static int next;
    char *p = slots[next++ % 16];
    const char *base = getenv("TMPDIR");
    snprintf(p, 512, "%s/brine-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tu_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    }
    closedir(d);
    return n;
}

void tu_ckpt_path(char *out, size_t n, const char *dir, const char *prefix, int64_t step)
{
    snprintf(out, n, "%s/%s-%012lld.h5", dir, prefix, (long long)step);
}

int tu_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int tu_ckpt_exists(const char *dir, const char *prefix, int64_t step)
{
    char p[1024];
    tu_ckpt_path(p, sizeof p, dir, prefix, step);
    return tu_file_exists(p);
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        *len = (size_t)size;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

int tu_flip_bit(const char *path, uint64_t offset, int bit)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -1;
    unsigned char c;
    int rc = -1;
    if (pread(fd, &c, 1, (off_t)offset) == 1) {
        c ^= (unsigned char)(1u << bit);
        if (pwrite(fd, &c, 1, (off_t)offset) == 1)
            rc = 0;
    }
    close(fd);
    return rc;
}

uint64_t tu_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
