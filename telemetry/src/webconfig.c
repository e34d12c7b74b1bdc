/* The exporter's web configuration file: the Prometheus exporter-toolkit format
 * (--web.config.file; docs/web-configuration.md of prometheus/exporter-toolkit), read with
 * libyaml's document API. Nothing of libyaml leaves this file.
 *
 * Supported: tls_server_config (cert_file, key_file, cert, key, client_ca_file, client_ca,
 * client_auth_type, min_version, max_version), http_server_config (headers, http2),
 * basic_auth_users. Keys the toolkit knows but we do not implement (client_allowed_sans,
 * cipher_suites, curve_preferences, prefer_server_cipher_suites, rate_limit) are refused by name
 * rather than silently ignored: a file that asks for a restriction must not run without it.
 * Every error names the file, the line and the key. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "telemetry.h"

typedef struct ctx {
    const char *path;
    yaml_document_t doc;
    char *err;
    size_t err_size;
} ctx;

/* Formats the error (once: the first one is the cause) at 1-based `line` (0: none) and returns
 * -EINVAL. */
__attribute__((format(printf, 3, 0))) static int vfail(ctx *c, size_t line, const char *fmt,
                                                       va_list ap)
{
    if (c->err == NULL || c->err_size == 0 || c->err[0] != '\0')
        return -EINVAL;
    int n = line != 0 ? snprintf(c->err, c->err_size, "%s:%zu: ", c->path, line)
                      : snprintf(c->err, c->err_size, "%s: ", c->path);
    if (n >= 0 && (size_t)n < c->err_size)
        vsnprintf(c->err + n, c->err_size - (size_t)n, fmt, ap);
    return -EINVAL;
}

__attribute__((format(printf, 3, 4))) static int fail_line(ctx *c, size_t line, const char *fmt,
                                                           ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(c, line, fmt, ap);
    va_end(ap);
    return rc;
}

/* The error at node `at` (NULL: the file as a whole). */
__attribute__((format(printf, 3, 4))) static int fail(ctx *c, const yaml_node_t *at,
                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vfail(c, at != NULL ? (size_t)at->start_mark.line + 1 : 0, fmt, ap);
    va_end(ap);
    return rc;
}

static const char *scalar(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A plain (unquoted) scalar that YAML would read as null: "", "~", "null". */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = scalar(n);
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0;
}

/* A string value for `key`: a scalar (quoted or not), not a mapping or a list. */
static int get_string(ctx *c, const yaml_node_t *v, const char *key, char **out)
{
    if (v->type != YAML_SCALAR_NODE)
        return fail(c, v, "%s must be a string, not a %s", key,
                    v->type == YAML_MAPPING_NODE ? "mapping" : "list");
    if (*out != NULL)
        return fail(c, v, "%s is given twice", key);
    *out = strdup(scalar(v));
    return *out != NULL ? 0 : -ENOMEM;
}

static int get_bool(ctx *c, const yaml_node_t *v, const char *key, bool *out)
{
    const char *s = scalar(v);
    if (s != NULL && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
            *out = s[0] == 't';
            return 0;
        }
    }
    return fail(c, v, "%s must be true or false", key);
}

static int file_read(ctx *c, const yaml_node_t *at, const char *key, const char *name, char **out)
{
    FILE *f = fopen(name, "rb");
    if (f == NULL)
        return fail(c, at, "%s: cannot read '%s': %s", key, name, strerror(errno));
    tslab__buf b;
    tslab__buf_init(&b, 4096);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        tslab__buf_put(&b, chunk, n);
    int read_err = ferror(f);
    fclose(f);
    if (read_err) {
        tslab__buf_free(&b);
        return fail(c, at, "%s: error reading '%s'", key, name);
    }
    size_t len;
    if (tslab__buf_finish(&b, out, &len) != 0)
        return -ENOMEM;
    if (len == 0 || strstr(*out, "-----BEGIN ") == NULL) {
        free(*out);
        *out = NULL;
        return fail(c, at, "%s: '%s' holds no PEM data", key, name);
    }
    return 0;
}

/* Appends name: value to pairs[0..*n) (room for it is allocated), refusing a name given twice. */
static int pair_add(ctx *c, const yaml_node_t *at, const char *section,
                    tslab__webconfig_pair *pairs, size_t *n, const char *name, const char *value)
{
    for (size_t j = 0; j < *n; j++) {
        if (strcmp(pairs[j].name, name) == 0)
            return fail(c, at, "%s.%s is given twice", section, name);
    }
    pairs[*n].name = strdup(name);
    pairs[*n].value = strdup(value);
    if (pairs[*n].name == NULL || pairs[*n].value == NULL) {
        free(pairs[*n].name);
        free(pairs[*n].value);
        return -ENOMEM;
    }
    (*n)++;
    return 0;
}

/* ---- tls_server_config -------------------------------------------------------------------- */

static const struct {
    const char *name;
    tslab__client_auth value;
} client_auth_names[] = {
    {"NoClientCert", TSLAB__CLIENT_AUTH_NONE},
    {"RequestClientCert", TSLAB__CLIENT_AUTH_REQUEST},
    {"RequireAnyClientCert", TSLAB__CLIENT_AUTH_REQUIRE_ANY},
    {"VerifyClientCertIfGiven", TSLAB__CLIENT_AUTH_VERIFY_IF_GIVEN},
    {"RequireAndVerifyClientCert", TSLAB__CLIENT_AUTH_REQUIRE_AND_VERIFY},
};

static int tls_version(ctx *c, const yaml_node_t *v, const char *key, unsigned *out)
{
    static const char *const names[] = {"TLS10", "TLS11", "TLS12", "TLS13"};
    const char *s = scalar(v);
    for (unsigned i = 0; s != NULL && i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = 10 + i;
            return 0;
        }
    }
    return fail(c, v, "%s must be one of TLS10, TLS11, TLS12, TLS13", key);
}

static int parse_tls(ctx *c, yaml_node_t *map, tslab__webconfig *w)
{
    if (map->type != YAML_MAPPING_NODE)
        return is_null(map) ? 0 : fail(c, map, "tls_server_config must be a mapping");
    char *cert_file = NULL, *key_file = NULL, *ca_file = NULL, *auth = NULL;
    const yaml_node_t *auth_node = map, *ca_node = NULL;
    int err = 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         err == 0 && p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&c->doc, p->value);
        const char *key = scalar(k);
        if (key == NULL)
            err = fail(c, k, "tls_server_config: keys must be strings");
        else if (strcmp(key, "cert_file") == 0)
            err = get_string(c, v, "tls_server_config.cert_file", &cert_file);
        else if (strcmp(key, "key_file") == 0)
            err = get_string(c, v, "tls_server_config.key_file", &key_file);
        else if (strcmp(key, "client_ca_file") == 0) {
            err = get_string(c, v, "tls_server_config.client_ca_file", &ca_file);
            ca_node = v;
        } else if (strcmp(key, "cert") == 0)
            err = get_string(c, v, "tls_server_config.cert", &w->cert_pem);
        else if (strcmp(key, "key") == 0)
            err = get_string(c, v, "tls_server_config.key", &w->key_pem);
        else if (strcmp(key, "client_ca") == 0) {
            err = get_string(c, v, "tls_server_config.client_ca", &w->client_ca_pem);
            ca_node = v;
        } else if (strcmp(key, "client_auth_type") == 0) {
            err = get_string(c, v, "tls_server_config.client_auth_type", &auth);
            auth_node = v;
        } else if (strcmp(key, "min_version") == 0)
            err = tls_version(c, v, "tls_server_config.min_version", &w->min_version);
        else if (strcmp(key, "max_version") == 0)
            err = tls_version(c, v, "tls_server_config.max_version", &w->max_version);
        else if (strcmp(key, "client_allowed_sans") == 0 || strcmp(key, "cipher_suites") == 0 ||
                 strcmp(key, "curve_preferences") == 0 ||
                 strcmp(key, "prefer_server_cipher_suites") == 0)
            err = fail(c, k, "tls_server_config.%s is not supported by this exporter", key);
        else
            err = fail(c, k, "tls_server_config: unknown key '%s'", key);
    }
    if (err == 0 && auth != NULL) {
        size_t i = 0;
        while (i < sizeof client_auth_names / sizeof client_auth_names[0] &&
               strcmp(auth, client_auth_names[i].name) != 0)
            i++;
        if (i == sizeof client_auth_names / sizeof client_auth_names[0])
            err = fail(c, auth_node,
                       "tls_server_config.client_auth_type '%s' is not one of NoClientCert, "
                       "RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, "
                       "RequireAndVerifyClientCert",
                       auth);
        else
            w->client_auth = client_auth_names[i].value;
    }
    if (err == 0 && (cert_file != NULL) == (w->cert_pem != NULL))
        err = fail(c, map, "tls_server_config needs exactly one of cert_file and cert");
    if (err == 0 && (key_file != NULL) == (w->key_pem != NULL))
        err = fail(c, map, "tls_server_config needs exactly one of key_file and key");
    if (err == 0 && ca_file != NULL && w->client_ca_pem != NULL)
        err = fail(c, ca_node, "tls_server_config: client_ca_file and client_ca both given");
    if (err == 0 && cert_file != NULL)
        err = file_read(c, map, "tls_server_config.cert_file", cert_file, &w->cert_pem);
    if (err == 0 && key_file != NULL)
        err = file_read(c, map, "tls_server_config.key_file", key_file, &w->key_pem);
    if (err == 0 && ca_file != NULL)
        err = file_read(c, ca_node, "tls_server_config.client_ca_file", ca_file, &w->client_ca_pem);
    bool has_ca = w->client_ca_pem != NULL;
    if (err == 0 && has_ca && w->client_auth == TSLAB__CLIENT_AUTH_NONE)
        err = fail(c, ca_node,
                   "tls_server_config: a client CA is configured but client_auth_type is "
                   "NoClientCert (set RequireAndVerifyClientCert to check client certificates)");
    /* libmicrohttpd asks clients for a certificate only when it has a CA list to send. */
    if (err == 0 && !has_ca && w->client_auth != TSLAB__CLIENT_AUTH_NONE)
        err = fail(c, auth_node, "tls_server_config.client_auth_type %s needs client_ca_file here",
                   auth);
    if (err == 0 && w->min_version != 0 && w->max_version != 0 && w->min_version > w->max_version)
        err = fail(c, map, "tls_server_config: min_version is above max_version");
    free(cert_file);
    free(key_file);
    free(ca_file);
    free(auth);
    w->tls = err == 0;
    return err;
}

/* ---- http_server_config ------------------------------------------------------------------- */

/* The headers the toolkit allows, and the values it accepts for two of them (NULL: any). */
static const struct {
    const char *name;
    const char *values[3];
} allowed_headers[] = {
    {"Content-Security-Policy", {NULL}},
    {"X-Frame-Options", {"deny", "sameorigin", NULL}},
    {"X-Content-Type-Options", {"nosniff", NULL}},
    {"X-XSS-Protection", {NULL}},
    {"Strict-Transport-Security", {NULL}},
};

static int parse_headers(ctx *c, yaml_node_t *map, tslab__webconfig *w)
{
    if (map->type != YAML_MAPPING_NODE)
        return is_null(map) ? 0 : fail(c, map, "http_server_config.headers must be a mapping");
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    w->headers = calloc(n + 1, sizeof *w->headers);
    if (w->headers == NULL)
        return -ENOMEM;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&c->doc, p->value);
        const char *key = scalar(k);
        size_t i = 0;
        while (key != NULL && i < sizeof allowed_headers / sizeof allowed_headers[0] &&
               strcmp(key, allowed_headers[i].name) != 0)
            i++;
        if (key == NULL || i == sizeof allowed_headers / sizeof allowed_headers[0])
            return fail(c, k,
                        "http_server_config.headers: '%s' is not one of Content-Security-Policy, "
                        "X-Frame-Options, X-Content-Type-Options, X-XSS-Protection, "
                        "Strict-Transport-Security",
                        key != NULL ? key : "(not a string)");
        const char *val = scalar(v);
        if (val == NULL)
            return fail(c, v, "http_server_config.headers.%s must be a string", key);
        if (strpbrk(val, "\r\n") != NULL)
            return fail(c, v, "http_server_config.headers.%s holds a line break", key);
        if (val[0] == '\0')
            continue; /* "Unset if blank" */
        bool ok = allowed_headers[i].values[0] == NULL;
        for (size_t j = 0; !ok && allowed_headers[i].values[j] != NULL; j++)
            ok = strcasecmp(val, allowed_headers[i].values[j]) == 0;
        if (!ok)
            return fail(c, v, "http_server_config.headers.%s: '%s' is not an accepted value", key,
                        val);
        int err =
            pair_add(c, k, "http_server_config.headers", w->headers, &w->header_count, key, val);
        if (err != 0)
            return err;
    }
    return 0;
}

static int parse_http(ctx *c, yaml_node_t *map, tslab__webconfig *w)
{
    if (map->type != YAML_MAPPING_NODE)
        return is_null(map) ? 0 : fail(c, map, "http_server_config must be a mapping");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&c->doc, p->value);
        const char *key = scalar(k);
        int err;
        bool http2;
        if (key != NULL && strcmp(key, "headers") == 0)
            err = w->headers != NULL ? fail(c, k, "http_server_config.headers is given twice")
                                     : parse_headers(c, v, w);
        else if (key != NULL && strcmp(key, "http2") == 0) /* a permission; we speak HTTP/1.1 */
            err = get_bool(c, v, "http_server_config.http2", &http2);
        else
            err = fail(c, k, "http_server_config: unknown key '%s'",
                       key != NULL ? key : "(not a string)");
        if (err != 0)
            return err;
    }
    return 0;
}

/* ---- basic_auth_users --------------------------------------------------------------------- */

/* "$2a$", "$2b$" or "$2y$", a two-digit cost 04..31, "$", 53 characters of bcrypt's base64. */
static bool is_bcrypt(const char *h)
{
    if (strlen(h) != 60 || h[0] != '$' || h[1] != '2' || strchr("aby", h[2]) == NULL ||
        h[2] == '\0' || h[3] != '$' || h[6] != '$')
        return false;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9' || cost < 4 || cost > 31)
        return false;
    return strspn(h + 7, "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == 53;
}

static int parse_users(ctx *c, yaml_node_t *map, tslab__webconfig *w)
{
    if (map->type != YAML_MAPPING_NODE)
        return is_null(map) ? 0 : fail(c, map, "basic_auth_users must be a mapping");
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    w->users = calloc(n + 1, sizeof *w->users);
    if (w->users == NULL)
        return -ENOMEM;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&c->doc, p->value);
        const char *user = scalar(k), *hash = scalar(v);
        if (user == NULL || user[0] == '\0' || strchr(user, ':') != NULL)
            return fail(c, k,
                        "basic_auth_users: a user name must be a non-empty string without "
                        "':'");
        if (hash == NULL || !is_bcrypt(hash))
            return fail(c, v,
                        "basic_auth_users.%s must be a bcrypt hash ($2y$, $2b$ or $2a$, as "
                        "`htpasswd -nBC 10 \"\" | tr -d ':\\n'` prints)",
                        user);
        int err = pair_add(c, k, "basic_auth_users", w->users, &w->user_count, user, hash);
        if (err != 0)
            return err;
    }
    return 0;
}

/* ---- The file ----------------------------------------------------------------------------- */

static int parse_root(ctx *c, tslab__webconfig *w)
{
    yaml_node_t *root = yaml_document_get_root_node(&c->doc);
    if (root == NULL || is_null(root))
        return 0; /* an empty file: plain HTTP, no authentication, as with the toolkit */
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, root, "the file must hold a mapping (tls_server_config, ...)");
    bool seen[3] = {false, false, false};
    static const char *const sections[] = {"tls_server_config", "http_server_config",
                                           "basic_auth_users"};
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&c->doc, p->value);
        const char *key = scalar(k);
        size_t i = 0;
        while (key != NULL && i < 3 && strcmp(key, sections[i]) != 0)
            i++;
        if (key != NULL && strcmp(key, "rate_limit") == 0)
            return fail(c, k, "rate_limit is not supported by this exporter");
        if (key == NULL || i == 3)
            return fail(c, k,
                        "unknown key '%s' (expected tls_server_config, "
                        "http_server_config or basic_auth_users)",
                        key != NULL ? key : "(not a string)");
        if (seen[i])
            return fail(c, k, "%s is given twice", key);
        seen[i] = true;
        int err = i == 0 ? parse_tls(c, v, w) : i == 1 ? parse_http(c, v, w) : parse_users(c, v, w);
        if (err != 0)
            return err;
    }
    return 0;
}

int tslab__webconfig_load(const char *path, tslab__webconfig *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof *out);
    if (err != NULL && err_size > 0)
        err[0] = '\0';
    ctx c = {.path = path, .err = err, .err_size = err_size};
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        fail(&c, NULL, "cannot open: %s", strerror(e));
        return e == ENOMEM ? -ENOMEM : -EINVAL;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return -ENOMEM;
    }
    yaml_parser_set_input_file(&parser, f);
    int rc;
    if (!yaml_parser_load(&parser, &c.doc)) {
        if (parser.error == YAML_MEMORY_ERROR) {
            rc = -ENOMEM;
        } else {
            fail_line(&c, (size_t)parser.problem_mark.line + 1, "YAML error: %s%s%s",
                      parser.problem ? parser.problem : "malformed", parser.context ? ", " : "",
                      parser.context ? parser.context : "");
            rc = -EINVAL;
        }
        yaml_parser_delete(&parser);
        fclose(f);
        return rc;
    }
    rc = parse_root(&c, out);
    yaml_document_delete(&c.doc);
    /* A second document ("---") would be silently ignored: refuse it. */
    if (rc == 0) {
        yaml_document_t extra;
        if (!yaml_parser_load(&parser, &extra)) {
            rc = fail(&c, NULL, "YAML error after the first document");
        } else {
            if (yaml_document_get_root_node(&extra) != NULL)
                rc = fail(&c, NULL, "holds more than one YAML document");
            yaml_document_delete(&extra);
        }
    }
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc != 0)
        tslab__webconfig_free(out);
    return rc;
}

static void free_secret(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void tslab__webconfig_free(tslab__webconfig *w)
{
    free(w->cert_pem);
    free_secret(w->key_pem);
    free(w->client_ca_pem);
    for (size_t i = 0; w->headers != NULL && i < w->header_count; i++) {
        free(w->headers[i].name);
        free(w->headers[i].value);
    }
    free(w->headers);
    for (size_t i = 0; w->users != NULL && i < w->user_count; i++) {
        free(w->users[i].name);
        free(w->users[i].value);
    }
    free(w->users);
    memset(w, 0, sizeof *w);
}
