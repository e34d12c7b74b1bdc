/* The heap profile in pprof's profile.proto (telemetry/proto/profile.proto), gzip-compressed, as
 * Go's /debug/pprof/heap serves it: sample types alloc_objects, alloc_space, inuse_objects,
 * inuse_space, each sampled count scaled by 1 / (1 - exp(-size / rate)) (Go's scaleHeapSample),
 * a "bytes" label with the object size, mappings from /proc/self/maps and function names from
 * dladdr (so a program's own functions are named when it exports them: -rdynamic).
 *
 * The allocators are read through tslab_profile_read only. Encoding is protobuf-c's; its types
 * stay in this file. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "profile.pb-c.h"
#include "telemetry.h"

typedef Perftools__Profiles__Profile pb_profile;
typedef Perftools__Profiles__ValueType pb_value_type;
typedef Perftools__Profiles__Sample pb_sample;
typedef Perftools__Profiles__Label pb_label;
typedef Perftools__Profiles__Mapping pb_mapping;
typedef Perftools__Profiles__Location pb_location;
typedef Perftools__Profiles__Line pb_line;
typedef Perftools__Profiles__Function pb_function;

/* Everything one profile owns; freed in one place whatever step failed. */
typedef struct builder {
    bool failed;
    /* string table with an index by hash (open addressing, entries index + 1) */
    char **str;
    size_t nstr, str_cap;
    uint32_t *str_map;
    size_t str_map_cap;
    /* mappings */
    pb_mapping *map;
    pb_mapping **map_ptr;
    size_t nmap, map_cap;
    /* locations by address (open addressing, entries index + 1) and their one line each */
    pb_location *loc;
    pb_line *line;
    pb_line **line_ptr;
    pb_location **loc_ptr;
    size_t nloc, loc_cap;
    uint32_t *loc_map;
    size_t loc_map_cap;
    /* functions, by name's string index */
    pb_function *fn;
    pb_function **fn_ptr;
    size_t nfn, fn_cap;
    uint32_t *fn_of_str; /* str_cap entries: function index + 1 */
    /* samples */
    pb_sample *smp;
    pb_sample **smp_ptr;
    int64_t *values;
    uint64_t *loc_ids;
    pb_label *labels;
    pb_label **label_ptr;
    size_t nsmp;
} builder;

static void *grow(builder *b, void *p, size_t *cap, size_t need, size_t elem)
{
    if (b->failed)
        return p;
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *n = realloc(p, c * elem);
    if (n == NULL) {
        b->failed = true;
        return p;
    }
    memset((char *)n + *cap * elem, 0, (c - *cap) * elem);
    *cap = c;
    return n;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
    return h;
}

static void str_rehash(builder *b)
{
    size_t cap = b->str_map_cap ? b->str_map_cap * 2 : 256;
    uint32_t *m = calloc(cap, sizeof *m);
    if (m == NULL) {
        b->failed = true;
        return;
    }
    for (size_t i = 0; i < b->nstr; i++) {
        size_t j = hash_str(b->str[i]) & (cap - 1);
        while (m[j] != 0)
            j = (j + 1) & (cap - 1);
        m[j] = (uint32_t)i + 1;
    }
    free(b->str_map);
    b->str_map = m;
    b->str_map_cap = cap;
}

/* The string table index of s (added if new). */
static int64_t intern(builder *b, const char *s)
{
    if ((b->nstr + 1) * 2 > b->str_map_cap)
        str_rehash(b);
    if (b->failed)
        return 0;
    size_t j = hash_str(s) & (b->str_map_cap - 1);
    for (; b->str_map[j] != 0; j = (j + 1) & (b->str_map_cap - 1))
        if (strcmp(b->str[b->str_map[j] - 1], s) == 0)
            return b->str_map[j] - 1;
    size_t old_cap = b->str_cap;
    b->str = grow(b, b->str, &b->str_cap, b->nstr + 1, sizeof *b->str);
    if (b->str_cap != old_cap) {
        size_t fcap = old_cap;
        b->fn_of_str = grow(b, b->fn_of_str, &fcap, b->str_cap, sizeof *b->fn_of_str);
    }
    char *copy = strdup(s);
    if (copy == NULL)
        b->failed = true;
    if (b->failed) {
        free(copy);
        return 0;
    }
    b->str[b->nstr] = copy;
    b->str_map[j] = (uint32_t)++b->nstr;
    return (int64_t)b->nstr - 1;
}

/* Executable mappings of /proc/self/maps; the main binary's first (pprof's convention). */
static void read_mappings(builder *b)
{
    char exe[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    FILE *f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return; /* no mappings: locations stay unmapped, which the format allows */
    char line[PATH_MAX + 128];
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long start, end, off;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%llx-%llx %7s %llx %*s %*s %n", &start, &end, perms, &off, &path_at) <
                4 ||
            strchr(perms, 'x') == NULL)
            continue;
        /* %n is stored only when the line has a path field; an anonymous mapping has none. */
        char *path = line + (path_at > 0 ? path_at : (int)strlen(line));
        path[strcspn(path, "\n")] = '\0';
        b->map = grow(b, b->map, &b->map_cap, b->nmap + 1, sizeof *b->map);
        if (b->failed)
            break;
        pb_mapping *m = &b->map[b->nmap++];
        perftools__profiles__mapping__init(m);
        m->memory_start = start;
        m->memory_limit = end;
        m->file_offset = off;
        m->filename = intern(b, path);
        /* Names come with the profile (dladdr), so readers need not symbolize. */
        m->has_functions = true;
        if (exe[0] != '\0' && strcmp(path, exe) == 0 && b->nmap > 1 &&
            strcmp(b->str[b->map[0].filename], exe) != 0) {
            pb_mapping t = b->map[0];
            b->map[0] = *m;
            *m = t;
        }
    }
    fclose(f);
    for (size_t i = 0; i < b->nmap; i++)
        b->map[i].id = i + 1;
}

static uint64_t mapping_of(const builder *b, uint64_t addr)
{
    for (size_t i = 0; i < b->nmap; i++)
        if (addr >= b->map[i].memory_start && addr < b->map[i].memory_limit)
            return b->map[i].id;
    return 0;
}

/* The function id of the exported function holding addr, 0 when none does. */
static uint64_t function_of(builder *b, uint64_t addr)
{
    const char *fn = tslab__function_at((uintptr_t)addr);
    if (fn == NULL)
        return 0;
    int64_t name = intern(b, fn);
    if (b->failed)
        return 0;
    if (b->fn_of_str[name] != 0)
        return b->fn_of_str[name];
    b->fn = grow(b, b->fn, &b->fn_cap, b->nfn + 1, sizeof *b->fn);
    if (b->failed)
        return 0;
    pb_function *f = &b->fn[b->nfn++];
    perftools__profiles__function__init(f);
    f->id = b->nfn;
    f->name = name;
    f->system_name = name; /* no source file: dladdr knows only the object (the mapping's) */
    b->fn_of_str[name] = (uint32_t)b->nfn;
    return b->nfn;
}

static void loc_rehash(builder *b)
{
    size_t cap = b->loc_map_cap ? b->loc_map_cap * 2 : 256;
    uint32_t *m = calloc(cap, sizeof *m);
    if (m == NULL) {
        b->failed = true;
        return;
    }
    for (size_t i = 0; i < b->nloc; i++) {
        size_t j = (size_t)((b->loc[i].address * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (cap - 1);
        while (m[j] != 0)
            j = (j + 1) & (cap - 1);
        m[j] = (uint32_t)i + 1;
    }
    free(b->loc_map);
    b->loc_map = m;
    b->loc_map_cap = cap;
}

/* The location id of return address ret (its call instruction: ret - 1). */
static uint64_t location_of(builder *b, uintptr_t ret)
{
    uint64_t addr = (uint64_t)ret - 1;
    if ((b->nloc + 1) * 2 > b->loc_map_cap)
        loc_rehash(b);
    if (b->failed)
        return 0;
    size_t j = (size_t)((addr * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (b->loc_map_cap - 1);
    for (; b->loc_map[j] != 0; j = (j + 1) & (b->loc_map_cap - 1))
        if (b->loc[b->loc_map[j] - 1].address == addr)
            return b->loc_map[j];
    b->loc = grow(b, b->loc, &b->loc_cap, b->nloc + 1, sizeof *b->loc);
    if (b->failed)
        return 0;
    pb_location *l = &b->loc[b->nloc];
    perftools__profiles__location__init(l);
    l->id = b->nloc + 1;
    l->address = addr;
    l->mapping_id = mapping_of(b, addr);
    /* The line's function id; the line itself is attached once every array has its size. */
    l->n_line = function_of(b, addr);
    if (b->failed)
        return 0;
    b->loc_map[j] = (uint32_t)++b->nloc;
    return b->nloc;
}

/* Go's scaleHeapSample: count and bytes of objects of `size` sampled at mean `rate`. */
static void scale(uint64_t count, uint64_t size, uint64_t rate, int64_t *objects, int64_t *bytes)
{
    if (count == 0 || size == 0) {
        *objects = *bytes = 0;
        return;
    }
    double s = rate <= 1 ? 1 : 1 / (1 - exp(-(double)size / (double)rate));
    *objects = (int64_t)((double)count * s);
    *bytes = (int64_t)((double)count * (double)size * s);
}

static void builder_free(builder *b)
{
    for (size_t i = 0; i < b->nstr; i++)
        free(b->str[i]);
    free(b->str);
    free(b->str_map);
    free(b->map);
    free(b->map_ptr);
    free(b->loc);
    free(b->line);
    free(b->line_ptr);
    free(b->loc_ptr);
    free(b->loc_map);
    free(b->fn);
    free(b->fn_ptr);
    free(b->fn_of_str);
    free(b->smp);
    free(b->smp_ptr);
    free(b->values);
    free(b->loc_ids);
    free(b->labels);
    free(b->label_ptr);
}

enum { NVALUES = 4, NLABELS = 2 };

/* Builds the samples of profiles[0..n) into b. */
static void build(builder *b, tslab *const *allocs, tslab_profile *const *prof, size_t n)
{
    intern(b, ""); /* string_table[0] */
    read_mappings(b);
    size_t nsmp = 0, nids = 0;
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < prof[k]->site_count; i++) {
            nsmp++;
            nids += prof[k]->sites[i].depth;
        }
    b->smp = calloc(nsmp ? nsmp : 1, sizeof *b->smp);
    b->smp_ptr = calloc(nsmp ? nsmp : 1, sizeof *b->smp_ptr);
    b->values = calloc(nsmp * NVALUES + 1, sizeof *b->values);
    b->loc_ids = calloc(nids + 1, sizeof *b->loc_ids);
    b->labels = calloc(nsmp * NLABELS + 1, sizeof *b->labels);
    b->label_ptr = calloc(nsmp * NLABELS + 1, sizeof *b->label_ptr);
    if (!b->smp || !b->smp_ptr || !b->values || !b->loc_ids || !b->labels || !b->label_ptr) {
        b->failed = true;
        return;
    }
    int64_t k_bytes = intern(b, "bytes"), k_alloc = intern(b, "allocator");
    size_t ids = 0;
    for (size_t k = 0; k < n && !b->failed; k++) {
        int64_t name = intern(b, tslab_name(allocs[k]));
        for (size_t i = 0; i < prof[k]->site_count && !b->failed; i++) {
            const tslab_profile_site *s = &prof[k]->sites[i];
            pb_sample *m = &b->smp[b->nsmp];
            perftools__profiles__sample__init(m);
            m->location_id = &b->loc_ids[ids];
            for (uint32_t f = 0; f < s->depth; f++)
                b->loc_ids[ids++] = location_of(b, s->frames[f]);
            m->n_location_id = s->depth;
            m->value = &b->values[b->nsmp * NVALUES];
            m->n_value = NVALUES;
            scale(s->allocs, s->object_size, s->sample_bytes, &m->value[0], &m->value[1]);
            scale(s->allocs - s->frees, s->object_size, s->sample_bytes, &m->value[2],
                  &m->value[3]);
            pb_label *l = &b->labels[b->nsmp * NLABELS];
            perftools__profiles__label__init(&l[0]);
            l[0].key = k_bytes;
            l[0].num = (int64_t)s->object_size;
            l[0].num_unit = k_bytes;
            perftools__profiles__label__init(&l[1]);
            l[1].key = k_alloc;
            l[1].str = name;
            m->label = &b->label_ptr[b->nsmp * NLABELS];
            m->label[0] = &l[0];
            m->label[1] = &l[1];
            m->n_label = NLABELS;
            b->smp_ptr[b->nsmp++] = m;
        }
    }
}

/* Packs b into a profile message; *out from malloc. */
static int pack(builder *b, uint64_t period, uint8_t **out, size_t *out_len)
{
    b->map_ptr = calloc(b->nmap + 1, sizeof *b->map_ptr);
    b->loc_ptr = calloc(b->nloc + 1, sizeof *b->loc_ptr);
    b->line = calloc(b->nloc + 1, sizeof *b->line);
    b->line_ptr = calloc(b->nloc + 1, sizeof *b->line_ptr);
    b->fn_ptr = calloc(b->nfn + 1, sizeof *b->fn_ptr);
    if (!b->map_ptr || !b->loc_ptr || !b->line || !b->line_ptr || !b->fn_ptr)
        return -ENOMEM;
    for (size_t i = 0; i < b->nmap; i++)
        b->map_ptr[i] = &b->map[i];
    for (size_t i = 0; i < b->nfn; i++)
        b->fn_ptr[i] = &b->fn[i];
    for (size_t i = 0; i < b->nloc; i++) {
        pb_location *l = &b->loc[i];
        uint64_t fid = l->n_line; /* stashed by location_of */
        l->n_line = 0;
        if (fid != 0) {
            perftools__profiles__line__init(&b->line[i]);
            b->line[i].function_id = fid;
            b->line_ptr[i] = &b->line[i];
            l->line = &b->line_ptr[i];
            l->n_line = 1;
        }
        b->loc_ptr[i] = l;
    }
    static const char *const types[NVALUES][2] = {{"alloc_objects", "count"},
                                                  {"alloc_space", "bytes"},
                                                  {"inuse_objects", "count"},
                                                  {"inuse_space", "bytes"}};
    pb_value_type vt[NVALUES], *vtp[NVALUES], pt;
    for (int i = 0; i < NVALUES; i++) {
        perftools__profiles__value_type__init(&vt[i]);
        vt[i].type = intern(b, types[i][0]);
        vt[i].unit = intern(b, types[i][1]);
        vtp[i] = &vt[i];
    }
    perftools__profiles__value_type__init(&pt);
    pt.type = intern(b, "space");
    pt.unit = intern(b, "bytes");
    int64_t def = intern(b, "inuse_space");
    if (b->failed)
        return -ENOMEM;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pb_profile p;
    perftools__profiles__profile__init(&p);
    p.n_sample_type = NVALUES;
    p.sample_type = vtp;
    p.n_sample = b->nsmp;
    p.sample = b->smp_ptr;
    p.n_mapping = b->nmap;
    p.mapping = b->map_ptr;
    p.n_location = b->nloc;
    p.location = b->loc_ptr;
    p.n_function = b->nfn;
    p.function = b->fn_ptr;
    p.n_string_table = b->nstr;
    p.string_table = b->str;
    p.time_nanos = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    p.period_type = &pt;
    p.period = (int64_t)period;
    p.default_sample_type = def;
    size_t len = perftools__profiles__profile__get_packed_size(&p);
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return -ENOMEM;
    *out_len = perftools__profiles__profile__pack(&p, buf);
    *out = buf;
    return 0;
}

int tslab__pprof_render(tslab *const *allocs, size_t n, char **out, size_t *out_len)
{
    if ((allocs == NULL && n > 0) || out == NULL || out_len == NULL)
        return -EINVAL;
    for (size_t k = 0; k < n; k++)
        if (allocs[k] == NULL)
            return -EINVAL;
    tslab_profile **prof = calloc(n + 1, sizeof *prof);
    if (prof == NULL)
        return -ENOMEM;
    int r = 0;
    uint64_t period = 0;
    for (size_t k = 0; k < n && r == 0; k++) {
        r = tslab_profile_read(allocs[k], &prof[k]);
        if (r == 0 && prof[k]->sample_bytes != TSLAB_SAMPLE_OFF && period == 0)
            period = prof[k]->sample_bytes;
    }
    builder b = {0};
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (r == 0) {
        build(&b, allocs, prof, n);
        r = b.failed ? -ENOMEM : pack(&b, period, &raw, &raw_len);
    }
    builder_free(&b);
    for (size_t k = 0; k < n; k++)
        tslab_profile_free(prof[k]);
    free(prof);
    if (r == 0)
        r = tslab__gzip((const char *)raw, raw_len, out, out_len);
    free(raw);
    return r;
}

int tslab_profile_write(tslab *const *allocs, size_t n, int fd)
{
    if (fd < 0)
        return -EINVAL;
    char *buf;
    size_t len;
    int r = tslab__pprof_render(allocs, n, &buf, &len);
    if (r != 0)
        return r;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            r = w < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)w;
    }
    free(buf);
    return r;
}
