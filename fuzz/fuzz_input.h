/* Shared by the fuzz targets whose readers take a path: each input is
 * written to one anonymous in-memory file, opened through /proc/self/fd. */
#ifndef ICL_FUZZ_INPUT_H
#define ICL_FUZZ_INPUT_H
/* Each includer defines _GNU_SOURCE before its first include (memfd_create). */


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Path of a file holding exactly data[0..size); aborts if the file cannot be
 * made (a broken harness must not look like a clean run). */
static const char *fuzz_input_path(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("icl-fuzz", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        if (n <= 0) abort();
        done += (size_t)n;
    }
    return path;
}

#endif
