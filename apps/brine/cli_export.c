/*
 * brine export FILE -o OUT: a checkpoint for someone without HDF5 or brine.
 * The default is one standalone protocol-5 pickle (brine_export: every array
 * in-band, loadable by pickle.load with numpy alone); --format npz writes a
 * zip of .npy files for numpy.load (cli_npz.c).  Both stream: one array in
 * memory at a time.  The output is written under a temporary name and
 * renamed when complete, so a failed export leaves no partial file; the
 * checkpoint itself is only read.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char export_help[] =
    "usage: brine export FILE -o OUT [--format pickle|npz]\n"
    "       brine export CKPTDIR --rank R -o OUT [--format pickle|npz]\n"
    "\n"
    "Writes checkpoint FILE as a file numpy reads without HDF5, h5py or brine:\n"
    "  pickle  (the default) one standalone pickle of protocol 5, the state dict\n"
    "          with every array in-band: pickle.load(open(OUT, 'rb')) with only\n"
    "          numpy installed (1.x or 2.x) gives what brine.load(FILE) gives.\n"
    "  npz     a zip of one .npy per variable (names as 'group/name'): numpy.load.\n"
    "          Chosen by default when OUT ends with .npz.\n"
    "Arrays are verified as they are read, and streamed: memory holds one array\n"
    "at a time.  OUT '-' writes to stdout; otherwise OUT appears only once it is\n"
    "complete.\n"
    "\n"
    "A multi-rank checkpoint directory (CKPTDIR, <prefix>-<step>/) exports its\n"
    "rank R's file, after its size and CRC-32 are checked against the manifest.\n"
    "\n"
    "  -o, --output OUT   the output file, or - for stdout\n"
    "  --format F         pickle or npz\n"
    "  --rank R           with CKPTDIR: the rank to export (required)\n"
    "\n"
    "Exit status: 0 done, 1 the checkpoint is damaged, 2 usage or I/O error.\n";

static int write_file(void *ctx, const void *data, size_t n)
{
    return fwrite(data, 1, n, ctx) == n ? 0 : BRINE_EIO;
}

static int ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int cli_export(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                              {"format", required_argument, NULL, 'f'},
                                              {"rank", required_argument, NULL, 'r'},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
    const char *out = NULL, *format = NULL;
    int c, rank = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'r':
            if (cli_parse_rank("export", optarg, &rank))
                return CLI_TROUBLE;
            break;
        case 'f': format = optarg; break;
        case 'h': fputs(export_help, stdout); return CLI_OK;
        default: fputs(export_help, stderr); return CLI_TROUBLE;
        }
    }
    if (argc - optind != 1 || !out) {
        fputs(export_help, stderr);
        return CLI_TROUBLE;
    }
    if (!format)
        format = ends_with(out, ".npz") ? "npz" : "pickle";
    const int npz = strcmp(format, "npz") == 0;
    if (!npz && strcmp(format, "pickle") != 0)
        return cli_error(CLI_TROUBLE, "export", "--format '%s': use pickle or npz", format);
    char file[4096];
    const int prc = cli_rank_path("export", argv[optind], rank, -1, file, sizeof file);
    if (prc)
        return prc;
    const char *path = file;
    const int to_stdout = strcmp(out, "-") == 0;
    struct stat sin, sout;
    if (!to_stdout && stat(path, &sin) == 0 && stat(out, &sout) == 0 && sin.st_dev == sout.st_dev &&
        sin.st_ino == sout.st_ino)
        return cli_error(CLI_TROUBLE, "export", "the output %s is the checkpoint itself", out);

    brine_reader *r = NULL;
    int rc = brine_reader_open(&r, path, NULL, 0);
    if (rc)
        return cli_error(cli_exit_of(rc), "export", "%s", brine_open_errmsg());
    char tmp[4096] = "";
    FILE *f = stdout;
    if (!to_stdout) {
        snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid());
        if (!(f = fopen(tmp, "wb"))) {
            int e = errno;
            brine_reader_close(r);
            return cli_error(CLI_TROUBLE, "export", "cannot create %s: %s", tmp, strerror(e));
        }
    }
    int status = CLI_OK;
    if (npz) {
        if ((rc = cli_write_npz(r, f, to_stdout ? "stdout" : out)))
            status = cli_exit_of(rc); /* cli_write_npz said why */
    } else {
        rc = brine_export(r, write_file, f);
        if (rc)
            status = cli_error(ferror(f) ? CLI_TROUBLE : cli_exit_of(rc), "export", "%s%s%s",
                               brine_reader_errmsg(r), ferror(f) ? ": " : "", ferror(f) ? strerror(errno) : "");
    }
    if (to_stdout) {
        if (!status && fflush(stdout) != 0)
            status = cli_error(CLI_TROUBLE, "export", "writing stdout failed: %s", strerror(errno));
    } else {
        /* Durable before it takes its name, as brine publishes checkpoints. */
        if (!status && (fflush(f) != 0 || fsync(fileno(f)) != 0))
            status = cli_error(CLI_TROUBLE, "export", "writing %s failed: %s", out, strerror(errno));
        if (fclose(f) != 0 && !status)
            status = cli_error(CLI_TROUBLE, "export", "writing %s failed: %s", out, strerror(errno));
        if (!status && rename(tmp, out) != 0)
            status = cli_error(CLI_TROUBLE, "export", "renaming %s to %s failed: %s", tmp, out, strerror(errno));
        if (status)
            unlink(tmp);
    }
    brine_reader_close(r);
    return status;
}
