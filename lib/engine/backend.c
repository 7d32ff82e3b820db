/* Backend selection, and the loader of the CUDA plugin (see backend.h): libicl
 * itself never links the CUDA libraries, so programs that stay on the CPU
 * start without loading them. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "backend.h"
#include "error.h"

#ifndef ICL_PLUGIN_LIBDIR
#define ICL_PLUGIN_LIBDIR "/usr/local/lib"
#endif

enum { PATH_BYTES = 4096, LOOKED_BYTES = 1536 };

icl_status icl_backend_parse(const char *name, icl_backend_kind *out) {
    if (!name || !out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_backend_parse: NULL argument");
    if (strcmp(name, "cpu") == 0)
        *out = ICL_BACKEND_CPU;
    else if (strcmp(name, "cuda") == 0)
        *out = ICL_BACKEND_CUDA;
    else
        return icl_fail(ICL_ERR_INVALID_ARG, "unknown backend \"%s\" (expected \"cpu\" or \"cuda\")", name);
    return ICL_OK;
}

const char *icl_backend_name(icl_backend_kind kind) {
    return kind == ICL_BACKEND_CPU ? "cpu" : kind == ICL_BACKEND_CUDA ? "cuda" : "unknown";
}

/* ---- the CUDA plugin ---- */

/* Loaded once and never unloaded: backends it created may outlive any caller. */
static pthread_mutex_t plugin_lock = PTHREAD_MUTEX_INITIALIZER;
static const icl_cuda_plugin *plugin;

/* The plugin's messages go through here, so they land in this library's
 * thread-local last error and not in a copy of it inside the plugin. */
static icl_status host_failv(icl_status s, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return icl_fail(s, "%s", msg);
}

static const icl_plugin_host host = {ICL_CUDA_PLUGIN_ABI, host_failv};

/* The places searched so far, for the "not found" message. */
typedef struct {
    char text[LOOKED_BYTES];
    size_t len;
} looked_list;

static void looked_add(looked_list *l, const char *path) {
    if (l->len + 1 >= sizeof l->text)
        return;
    int n = snprintf(l->text + l->len, sizeof l->text - l->len, "%s%s", l->len ? ", " : "", path);
    if (n > 0)
        l->len = l->len + (size_t)n < sizeof l->text ? l->len + (size_t)n : sizeof l->text - 1;
}

/* The directory of the binary holding this code: libicl.so, or the program
 * itself when it linked libicl.a. 0 when it cannot be told. */
static int own_dir(char *dir, size_t cap) {
    Dl_info info;
    struct link_map *map = NULL;
    if (!dladdr1((void *)&icl_backend_create, &info, (void **)&map, RTLD_DL_LINKMAP) || !map)
        return 0;
    if (map->l_name && map->l_name[0]) {
        /* the path the dynamic linker opened, e.g. build/bin/../libicl.so.0 */
        if (strlen(map->l_name) >= cap)
            return 0;
        strcpy(dir, map->l_name);
    } else {
        /* the main program: dli_fname would be argv[0], which may be a bare name */
        ssize_t n = readlink("/proc/self/exe", dir, cap - 1);
        if (n <= 0)
            return 0;
        dir[n] = '\0';
    }
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    if (!dir[0])
        strcpy(dir, "/");
    /* without the "bin/.." an $ORIGIN rpath leaves, so that messages read plainly */
    char *canon = realpath(dir, NULL);
    if (canon && strlen(canon) < cap)
        strcpy(dir, canon);
    free(canon);
    return 1;
}

/* Open `path`, check the entry and its ABI, and keep it as the plugin. */
static icl_status plugin_open(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return icl_fail(ICL_ERR_BACKEND,
                        "the CUDA backend plugin %s could not be loaded: %s. If a libcudart or libcublas "
                        "is missing, the CUDA runtime is not installed or not on the library path: install "
                        "the CUDA toolkit or add its lib64 directory to LD_LIBRARY_PATH",
                        path, why ? why : "unknown dlopen error");
    }
    icl_cuda_plugin_entry_fn entry = (icl_cuda_plugin_entry_fn)dlsym(h, ICL_CUDA_PLUGIN_ENTRY);
    if (!entry) {
        dlclose(h);
        return icl_fail(ICL_ERR_BACKEND,
                        "%s is not a libicl CUDA backend plugin (it exports no %s); remove it or point "
                        "ICL_BACKEND_PATH at the " ICL_CUDA_PLUGIN_FILE " built with this libicl",
                        path, ICL_CUDA_PLUGIN_ENTRY);
    }
    const icl_cuda_plugin *p = entry(&host);
    if (!p || p->abi != ICL_CUDA_PLUGIN_ABI || p->ops_size != sizeof(icl_backend_ops)) {
        unsigned abi = p ? p->abi : 0;
        dlclose(h);
        return icl_fail(ICL_ERR_BACKEND,
                        "the CUDA backend plugin %s does not match this libicl (plugin ABI %u, expected %d): "
                        "it comes from another build; rebuild both with `make` and install them together",
                        path, abi, ICL_CUDA_PLUGIN_ABI);
    }
    plugin = p;
    return ICL_OK;
}

/* Try `dir`/ICL_CUDA_PLUGIN_FILE, or `dir` itself when it names a file.
 * *found = 1 when a file was there (loaded or not). */
static icl_status plugin_try(const char *dir, int dir_is_file, looked_list *looked, int *found) {
    char path[PATH_BYTES];
    int n = dir_is_file ? snprintf(path, sizeof path, "%s", dir)
                        : snprintf(path, sizeof path, "%s/" ICL_CUDA_PLUGIN_FILE, dir);
    *found = 0;
    if (n < 0 || (size_t)n >= sizeof path)
        return ICL_OK;
    looked_add(looked, dir);
    if (access(path, F_OK) != 0)
        return ICL_OK;
    *found = 1;
    return plugin_open(path);
}

static icl_status plugin_search(void) {
    looked_list looked = {{0}, 0};
    int found = 0;
    icl_status s = ICL_OK;
    const char *env = getenv("ICL_BACKEND_PATH");
    if (env && env[0]) {
        char *list = strdup(env), *save = NULL;
        if (!list)
            return icl_fail(ICL_ERR_NOMEM, "loading the CUDA plugin: out of memory");
        for (char *e = strtok_r(list, ":", &save); e && !found; e = strtok_r(NULL, ":", &save)) {
            struct stat st;
            int is_file = stat(e, &st) == 0 && !S_ISDIR(st.st_mode);
            s = plugin_try(e, is_file, &looked, &found);
        }
        free(list);
        if (found)
            return s;
    }
    char own[PATH_BYTES], dir[PATH_BYTES + 16];
    if (own_dir(own, sizeof own)) {
        static const char *const rel[] = {"", "/../lib", "/.."};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(dir, sizeof dir, "%s%s", own, rel[i]);
            s = plugin_try(dir, 0, &looked, &found);
            if (found)
                return s;
        }
    }
    s = plugin_try(ICL_PLUGIN_LIBDIR, 0, &looked, &found);
    if (found)
        return s;
    return icl_fail(ICL_ERR_BACKEND,
                    "CUDA backend requested, but its plugin " ICL_CUDA_PLUGIN_FILE " was not found (looked in: %s). "
                    "Build it with nvcc available (make CUDA=1) and install it next to libicl.so, "
                    "or set ICL_BACKEND_PATH to the directory that holds it",
                    looked.text);
}

/* The loaded plugin, loading it on first use; a failed search is retried on the next call. */
static icl_status plugin_get(const icl_cuda_plugin **out) {
    pthread_mutex_lock(&plugin_lock);
    icl_status s = plugin ? ICL_OK : plugin_search();
    *out = plugin;
    pthread_mutex_unlock(&plugin_lock);
    return s;
}

int icl_backend_cuda_device_count(void) {
    const icl_cuda_plugin *p;
    if (plugin_get(&p) != ICL_OK)
        return 0;
    return p->device_count();
}

int icl_backend_available(icl_backend_kind kind) {
    if (kind == ICL_BACKEND_CPU)
        return 1;
    if (kind == ICL_BACKEND_CUDA)
        return icl_backend_cuda_device_count() > 0;
    return 0;
}

icl_status icl_backend_create(icl_backend **out, icl_backend_kind kind) {
    if (!out)
        return icl_fail(ICL_ERR_INVALID_ARG, "icl_backend_create: out is NULL");
    *out = NULL;
    switch (kind) {
    case ICL_BACKEND_CPU:
        return icl_backend_cpu_create(out);
    case ICL_BACKEND_CUDA: {
        const icl_cuda_plugin *p;
        ICL_TRY(plugin_get(&p));
        return p->create(out);
    }
    }
    return icl_fail(ICL_ERR_INVALID_ARG, "icl_backend_create: unknown backend kind %d", (int)kind);
}

void icl_backend_destroy(icl_backend *be) {
    if (be)
        be->ops->destroy(be);
}
