/* Crash-safe file replacement: write a temp file next to the target, make it
 * durable, then rename it over the target. rename() within one directory is
 * atomic on POSIX file systems, so readers see either the old or the new file. */
#include "atomic_file.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "error.h"

static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

static void release(icl_atomic_file *af) {
    if (af->f)
        fclose(af->f);
    free(af->path);
    free(af->tmp_path);
    af->f = NULL;
    af->path = NULL;
    af->tmp_path = NULL;
}

icl_status icl_atomic_file_open(icl_atomic_file *af, const char *path) {
    if (!af || !path)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_atomic_file_open: NULL argument");
    af->f = NULL;
    af->path = NULL;
    af->tmp_path = NULL;
    if (path[0] == '\0')
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_atomic_file_open: empty path");
    size_t tmp_size = strlen(path) + 32;
    af->path = copy_string(path);
    af->tmp_path = malloc(tmp_size);
    if (!af->path || !af->tmp_path) {
        release(af);
        return icl_fail(ICL_ERR_NOMEM, "icl_atomic_file_open: out of memory for \"%s\"", path);
    }
    snprintf(af->tmp_path, tmp_size, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        int err = errno;
        release(af);
        return icl_fail(ICL_ERR_IO, "cannot create temporary file for \"%s\": %s", path, strerror(err));
    }
    return ICL_OK;
}

icl_status icl_atomic_file_write(icl_atomic_file *af, const void *data, size_t n) {
    if (!af || !af->f)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_atomic_file_write: file is not open");
    if (n == 0)
        return ICL_OK;
    if (!data)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_atomic_file_write: NULL data");
    errno = 0;
    if (fwrite(data, 1, n, af->f) != n) {
        int err = errno ? errno : EIO;
        return icl_fail(ICL_ERR_IO, "write to \"%s\" failed: %s", af->tmp_path, strerror(err));
    }
    return ICL_OK;
}

void icl_atomic_file_abort(icl_atomic_file *af) {
    if (!af)
        return;
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
    }
    if (af->tmp_path)
        remove(af->tmp_path);
    release(af);
}

/* Make the rename itself durable. Some file systems cannot fsync a
 * directory (EINVAL); the data is already safe there, so that is not an error. */
static icl_status sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = copy_string(".");
    else if (slash == path)
        dir = copy_string("/");
    else {
        dir = copy_string(path);
        if (dir)
            dir[slash - path] = '\0';
    }
    if (!dir)
        return icl_fail(ICL_ERR_NOMEM, "out of memory syncing the directory of \"%s\"", path);
    icl_status st = ICL_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        st = icl_fail(ICL_ERR_IO, "cannot open directory \"%s\" to sync \"%s\": %s", dir, path, strerror(errno));
    else {
        if (fsync(fd) != 0 && errno != EINVAL)
            st = icl_fail(ICL_ERR_IO, "fsync of directory \"%s\" failed after writing \"%s\": %s", dir, path,
                          strerror(errno));
        close(fd);
    }
    free(dir);
    return st;
}

icl_status icl_atomic_file_commit(icl_atomic_file *af) {
    if (!af || !af->f)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_atomic_file_commit: file is not open");
    const char *what = NULL;
    int err = 0;
    if (fflush(af->f) != 0) {
        what = "write";
        err = errno;
    } else if (fsync(fileno(af->f)) != 0) {
        what = "fsync";
        err = errno;
    }
    int close_failed = fclose(af->f) != 0;
    af->f = NULL;
    if (!what && close_failed) {
        what = "close";
        err = errno;
    }
    if (!what && rename(af->tmp_path, af->path) != 0) {
        what = "rename";
        err = errno;
    }
    if (what) {
        icl_status st = icl_fail(ICL_ERR_IO, "%s of \"%s\" failed: %s (previous file left unchanged)", what,
                                 af->path, strerror(err ? err : EIO));
        icl_atomic_file_abort(af);
        return st;
    }
    icl_status st = sync_parent_dir(af->path);
    release(af);
    return st;
}
