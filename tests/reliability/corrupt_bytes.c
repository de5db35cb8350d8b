/*
 * Corruption: a small checkpoint (a 2-chunk f64 array that deflates to a few
 * KiB, small arrays, scalars, a string) is damaged at every byte offset (one
 * bit flipped; all eight in turn with BRINE_CORRUPT_ALL_BITS=1) and truncated
 * at many lengths (every length with BRINE_CORRUPT_ALL_BITS=1).  For each
 * damaged file:
 *
 *  - alone in its directory, brine_restore into poisoned memory either fails
 *    (any error, never a crash) or returns 0 with data bit-identical to the
 *    original (a flip in a byte nobody reads is harmless);
 *  - and the step it reports is that of the data it restored;
 *  - next to a good older checkpoint, brine_restore returns 0 with exactly
 *    the data of one of the two.
 *
 * BRINE_CORRUPT_RANDOM_BITS=N (N > 0; the long tier runs 100,000) replaces
 * the sweep with N single-bit flips at random positions of a larger
 * checkpoint (every registered variable, a 1,300 x 512 f64 array in 6
 * chunks: more datasets, object headers and chunk-index entries), data and
 * metadata alike: distinct bits while N <= the file's bits, drawn with a
 * seeded generator; every 16th flip also next to the older checkpoint; no
 * truncations.  The seed is printed; BRINE_CORRUPT_SEED=<seed> replays the
 * same positions (the file differs only in its "created" text).
 *
 * BRINE_CORRUPT_STRICT=1 (the default tier) fails the run on a torn load, a
 * wrong step, a crash or a hang; without it they are counted and printed.
 *
 * Cases run in two worker processes (two cores); a worker that crashes is
 * replaced and the crashing case is reported and skipped.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brine.h"
#include "rel_util.h"

static char current[256] = "setup";

/* The checkpoint's state: lean (the small file of the sweep) or everything (random bits). */
static size_t big_rows = 300;
static int lean_state = 1;

static int strict_step;   /* a wrong reported step fails the run */
static int tolerate_torn; /* BRINE_CORRUPT_TOLERATE_TORN=1: torn loads are counted, not failed */

/* The counts live in memory shared by the two worker processes. */
#define BUMP(x) __atomic_fetch_add(&(x), 1, __ATOMIC_RELAXED)

typedef struct counts {
    long cases, rejected, fallback, newest, wrong_step, torn;
    long by_code[10];
} counts;

/* Restores from dir (holding the damaged file, and the good older one when two). */
static void one_case(brine *b, rel_state *s, int with_older, counts *c)
{
    rel_state_poison(s);
    int64_t got = -1;
    const int rc = brine_restore(b, &got);
    BUMP(c->cases);
    if (rc == 0) {
        char why[256], why1[256];
        int64_t data_step = -1;
        if (rel_state_check(s, 2, why, sizeof why) == 0)
            data_step = 2;
        else if (with_older && rel_state_check(s, 1, why1, sizeof why1) == 0)
            data_step = 1;
        rel_checks++;
        if (data_step < 0 && tolerate_torn) {
            BUMP(c->torn);
            fprintf(stderr, "TORN LOAD: %s: restore returned 0 with wrong data: %s\n",
                    current, why);
        } else if (data_step < 0) {
            rel_fail("%s: TORN LOAD: restore returned 0 (step %lld) with data of neither "
                     "checkpoint: %s", current, (long long)got, why);
        } else if (got != data_step) {
            /* The root attribute "step" is covered by the 1.10 format's object
             * header checksum and checked against the file name (bug_step_unverified). */
            BUMP(c->wrong_step);
            if (strict_step)
                rel_fail("%s: restore returned 0 with the data of step %lld but reported step %lld",
                         current, (long long)data_step, (long long)got);
        } else if (got == 2) {
            BUMP(c->newest);
        } else {
            BUMP(c->fallback);
        }
    } else {
        REL_CHECK(!with_older, "%s: restore failed although a good older checkpoint exists: %d %s",
                  current, rc, brine_errmsg(b));
        REL_CHECK(*brine_errmsg(b) != '\0', "%s: error %d without a message", current, rc);
        BUMP(c->rejected);
        if (rc < 0 && rc > -10)
            BUMP(c->by_code[-rc]);
    }
}

static void report(const char *what, const counts *c)
{
    printf("  %s: %ld restores: %ld rejected (", what, c->cases, c->rejected);
    int first = 1;
    for (int k = 1; k < 10; k++)
        if (c->by_code[k]) {
            printf("%s%s %ld", first ? "" : ", ", brine_errstr(-k), c->by_code[k]);
            first = 0;
        }
    printf("), %ld returned the newest exactly, %ld fell back to the older exactly", c->newest,
           c->fallback);
    if (c->torn)
        printf(", %ld TORN LOADS (success with wrong data)", c->torn);
    if (c->wrong_step)
        printf(", %ld with the right data but a wrong step reported",
               c->wrong_step);
    printf("\n");
}

/* One case: a damaged copy of the file, alone or next to the older checkpoint. */
typedef struct kase {
    int trunc;     /* 0: flip bit of byte off; 1: truncate to off bytes */
    int bit;
    int pair;      /* next to the good older checkpoint */
    size_t off;
} kase;

/* Shared between the workers and the parent (MAP_SHARED). */
typedef struct shared {
    counts c[4];   /* flip alone, flip pair, trunc alone, trunc pair */
    long crashes[4];
    long failures;
    long next[2];  /* per worker: the next case to run (the running one while it runs) */
    char crash_case[8][200];
    long ncrash_cases;
} shared;

static const char *const group_name[4] = {"flipped, alone", "flipped, with a good older checkpoint",
                                          "truncated, alone",
                                          "truncated, with a good older checkpoint"};

static void describe(const kase *k, char *out, size_t n)
{
    if (k->trunc)
        snprintf(out, n, "truncated to %zu bytes, %s", k->off, k->pair ? "with an older one" : "alone");
    else
        snprintf(out, n, "bit %d of byte %zu flipped, %s", k->bit, k->off,
                 k->pair ? "with an older one" : "alone");
}

/* Worker w runs cases w, w + 2, w + 4, ... from sh->next[w] on, in its own directories. */
static void worker(int w, const char *top, const kase *cases, long ncases, const uint8_t *orig,
                   size_t len, const uint8_t *older, size_t older_len, shared *sh)
{
    rel_state s;
    char alone[700], pair[700], af[800], pf[800], p1[800];
    if (rel_state_init(&s, big_rows, 1))
        _exit(2);
    s.lean = lean_state;
    snprintf(alone, sizeof alone, "%s/w%d-alone", top, w);
    snprintf(pair, sizeof pair, "%s/w%d-pair", top, w);
    rel_ckpt_path(af, sizeof af, alone, 2);
    rel_ckpt_path(pf, sizeof pf, pair, 2);
    rel_ckpt_path(p1, sizeof p1, pair, 1);
    brine *ba = rel_open(alone, &s, NULL, NULL, 0), *bp = rel_open(pair, &s, NULL, NULL, 0);
    if (!ba || !bp || rel_write_file(p1, older, older_len))
        _exit(2);
    uint8_t *buf = malloc(len);
    for (long i = sh->next[w]; i < ncases; i += 2) {
        sh->next[w] = i;
        const kase *k = &cases[i];
        describe(k, current, sizeof current);
        memcpy(buf, orig, len);
        size_t l = len;
        if (k->trunc)
            l = k->off;
        else
            buf[k->off] ^= (uint8_t)(1u << k->bit);
        if (rel_write_file(k->pair ? pf : af, buf, l))
            _exit(2);
        alarm(3); /* a restore that hangs is killed by SIGALRM and reported */
        one_case(k->pair ? bp : ba, &s, k->pair, &sh->c[k->trunc * 2 + k->pair]);
        alarm(0);
        sh->failures = rel_failures; /* this worker's own, see below */
        if (rel_failures > 50)
            break;
    }
    sh->next[w] = ncases;
    free(buf);
    brine_close(ba);
    brine_close(bp);
    rel_state_free(&s);
    _exit(rel_failures ? 1 : 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const int all_bits = (int)rel_env_long("BRINE_CORRUPT_ALL_BITS", 0);
    const int strict = (int)rel_env_long("BRINE_CORRUPT_STRICT", 0);
    strict_step = strict || (int)rel_env_long("BRINE_CORRUPT_STRICT_STEP", 0);
    tolerate_torn = !strict && (int)rel_env_long("BRINE_CORRUPT_TOLERATE_TORN", 0);

    const long random_bits = rel_env_long("BRINE_CORRUPT_RANDOM_BITS", 0);
    if (random_bits > 0) {
        big_rows = 1300; /* 6 chunks of <= 256 rows */
        lean_state = 0;
    }
    rel_state s;
    if (rel_state_init(&s, big_rows, 1))
        return 2;
    s.lean = lean_state;
    char top[512], gen[600], p[700];
    rel_mkdtemp(top, sizeof top, "corrupt");
    snprintf(gen, sizeof gen, "%s/gen", top);

    /* The originals: steps 1 and 2 written by brine. */
    brine *w = rel_open(gen, &s, NULL, NULL, 0);
    if (!w)
        return 2;
    for (int st = 1; st <= 2; st++) {
        rel_state_fill(&s, st);
        if (brine_save(w, st)) {
            fprintf(stderr, "%s\n", brine_errmsg(w));
            return 2;
        }
    }
    brine_close(w);
    size_t len = 0, older_len = 0;
    rel_ckpt_path(p, sizeof p, gen, 2);
    uint8_t *orig = rel_read_file(p, &len);
    rel_ckpt_path(p, sizeof p, gen, 1);
    uint8_t *older = rel_read_file(p, &older_len);
    if (!orig || !older)
        return 2;

    /* Every offset, alone (one bit, or all eight); next to the older checkpoint every
     * offset in the long tier, every 16th in the quick one.  Truncations: every length in the
     * long tier; in the quick one the first 256, the last 64 and every 64th. */
    const long max_cases = random_bits > 0 ? random_bits + random_bits / 16 + 16
                                           : (long)len * 16 * 2 + 16;
    kase *cases = calloc((size_t)max_cases, sizeof *cases);
    long n = 0, nflip = 0, ntrunc = 0;
    if (random_bits > 0) {
        uint64_t seed = (uint64_t)rel_now() * 1000003u ^ (uint64_t)getpid() << 20;
        const char *e = getenv("BRINE_CORRUPT_SEED");
        if (e && *e)
            seed = strtoull(e, NULL, 0);
        printf("corrupt_bytes: %ld random bits, seed %llu (replay: BRINE_CORRUPT_SEED=%llu "
               "BRINE_CORRUPT_RANDOM_BITS=%ld)\n", random_bits, (unsigned long long)seed,
               (unsigned long long)seed, random_bits);
        /* A Fisher-Yates shuffle of the file's bit indices, drawn lazily: flip i takes the
         * i-th of a random permutation, so the flips are distinct while N <= 8 * len. */
        const size_t nbits = len * 8;
        uint32_t *perm = malloc(nbits * sizeof *perm);
        if (!cases || !perm)
            return 2;
        for (size_t i = 0; i < nbits; i++)
            perm[i] = (uint32_t)i;
        uint64_t x = seed;
        for (long i = 0; i < random_bits; i++) {
            const size_t j = (size_t)i % nbits;
            if (j == 0 && i > 0) /* more flips than bits: a fresh permutation */
                for (size_t t = 0; t < nbits; t++)
                    perm[t] = (uint32_t)t;
            /* splitmix64 */
            uint64_t z = (x += 0x9e3779b97f4a7c15ull);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            z ^= z >> 31;
            const size_t r = j + (size_t)(z % (nbits - j));
            const uint32_t pick = perm[r];
            perm[r] = perm[j];
            perm[j] = pick;
            cases[n++] = (kase){0, (int)(pick % 8), 0, pick / 8};
            if (i % 16 == 0)
                cases[n++] = (kase){0, (int)(pick % 8), 1, pick / 8};
            nflip++;
        }
        free(perm);
    }
    for (size_t off = 0; random_bits <= 0 && off < len; off++)
        for (int b = 0; b < (all_bits ? 8 : 1); b++) {
            const int bit = all_bits ? b : (int)((off * 3 + off / 8) % 8);
            cases[n++] = (kase){0, bit, 0, off};
            if (all_bits || off % 16 == 0)
                cases[n++] = (kase){0, bit, 1, off};
            nflip++;
        }
    for (size_t l = 0; random_bits <= 0 && l < len; l++) {
        if (!all_bits && !(l < 256 || l + 64 > len || l % 64 == 0))
            continue;
        cases[n++] = (kase){1, 0, 0, l};
        if (all_bits || l % 4 == 0)
            cases[n++] = (kase){1, 0, 1, l};
        ntrunc++;
    }
    printf("corrupt_bytes: checkpoint of %zu bytes (%zu x %d f64 in %zu chunks, %s, "
           "scalars, a string); %ld flips, %ld truncations, %ld restores, 2 workers%s\n",
           len, s.big_rows, REL_BIG_COLS, (s.big_rows + 255) / 256,
           lean_state ? "a small array" : "5 small arrays", nflip, ntrunc, n,
           random_bits > 0 ? "; random bits" : all_bits ? "; all bits" : "");

    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return 2;
    memset(sh, 0, sizeof *sh);
    sh->next[0] = 0;
    sh->next[1] = 1;
    const double t0 = rel_now();
    pid_t pid[2] = {0, 0};
    long worker_failures = 0, crashes = 0, hangs = 0;
    for (;;) {
        for (int i = 0; i < 2; i++)
            if (!pid[i] && sh->next[i] < n) {
                fflush(NULL);
                pid[i] = fork();
                if (pid[i] == 0)
                    worker(i, top, cases, n, orig, len, older, older_len, sh);
            }
        if (!pid[0] && !pid[1])
            break;
        int status;
        const pid_t done = wait(&status);
        if (done < 0)
            break;
        const int i = done == pid[0] ? 0 : 1;
        pid[i] = 0;
        if (WIFSIGNALED(status)) {
            const kase *k = &cases[sh->next[i]];
            char d[160];
            describe(k, d, sizeof d);
            crashes++;
            sh->crashes[k->trunc * 2 + k->pair]++;
            hangs += WTERMSIG(status) == SIGALRM;
            if (sh->ncrash_cases < 8)
                snprintf(sh->crash_case[sh->ncrash_cases++], sizeof sh->crash_case[0], "%.140s (signal %d)",
                         d, WTERMSIG(status));
            sh->next[i] += 2; /* go on after the crashing case */
        } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            worker_failures++;
            if (WEXITSTATUS(status) == 2)
                sh->next[i] = n; /* set-up failure: do not loop */
        }
    }
    printf("  %.1f s\n", rel_now() - t0);
    for (int g = 0; g < 4; g++) {
        if (!sh->c[g].cases && !sh->crashes[g])
            continue; /* random bits: no truncations */
        report(group_name[g], &sh->c[g]);
        if (sh->crashes[g])
            printf("    %ld CRASHES or HANGS (the process died inside brine_restore, or did not "
                   "return within 3 s)\n", sh->crashes[g]);
    }
    for (long i = 0; i < sh->ncrash_cases; i++)
        printf("  crash: %s\n", sh->crash_case[i]);
    if (crashes)
        printf("corrupt_bytes: %ld restores of a damaged file crashed or hung (%ld "
               "hangs)%s\n", crashes, hangs,
               strict ? "" : "; not counted as a failure without BRINE_CORRUPT_STRICT=1");
    const int failed = worker_failures > 0 || (strict && crashes > 0);
    printf("corrupt_bytes: %s\n", failed ? "FAILED" : "passed");
    free(cases);
    free(orig);
    free(older);
    rel_state_free(&s);
    if (!failed)
        rel_rmtree(top);
    else
        printf("corrupt_bytes: files kept in %s\n", top);
    return failed ? 1 : 0;
}
