/* SPDX-License-Identifier: MIT */
/* The web configuration parser (webconfig.c) and basic authentication (basicauth.c): a complete
 * file read into the right fields, and every kind of malformed file refused with a message that
 * names the line and the key.
 *
 * usage: test_webconfig (works in a fresh directory under $TMPDIR) */
#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "telemetry.h"
#include "testhelper.h"

static char dir[256];

/* Writes `text` to dir/name; returns the path (static buffer rotation of 4). */
static const char *write_file(const char *name, const char *text)
{
    static char paths[4][512];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, 512, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char pem[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

/* A bcrypt hash of `password` at the lowest cost, made with libcrypt itself. */
static void bcrypt(const char *password, char *out, size_t size)
{
    char salt[64];
    REQUIRE(crypt_gensalt_rn("$2b$", 4, NULL, 0, salt, sizeof salt) != NULL);
    struct crypt_data data;
    memset(&data, 0, sizeof data);
    const char *h = crypt_rn(password, salt, &data, (int)sizeof data);
    REQUIRE(h != NULL && strlen(h) == 60 && strlen(h) < size);
    strcpy(out, h);
}

static void test_valid(void)
{
    write_file("server.crt", pem);
    write_file("server.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    write_file("ca.crt", pem);
    char hash[64], file[2048];
    bcrypt("s3cret", hash, sizeof hash);
    snprintf(file, sizeof file,
             "# comment\n"
             "tls_server_config:\n"
             "  cert_file: %s/server.crt\n"
             "  key_file: \"%s/server.key\"\n"
             "  client_auth_type: RequireAndVerifyClientCert\n"
             "  client_ca_file: %s/ca.crt\n"
             "  min_version: TLS12\n"
             "  max_version: TLS13\n"
             "http_server_config:\n"
             "  http2: false\n"
             "  headers:\n"
             "    X-Frame-Options: deny\n"
             "    Content-Security-Policy: \"default-src 'self'\"\n"
             "    X-XSS-Protection: \"\"\n"
             "basic_auth_users:\n"
             "  alice: %s\n"
             "  bob: '$2y$10$hLqFl9jSjoAAy95Z/zw8Ye8wkdMBM8c5Bn1ptYqP/AXyV0.oy0S8m'\n",
             dir, dir, dir, hash);
    tslab__webconfig w;
    char err[512];
    int rc = tslab__webconfig_load(write_file("web.yml", file), &w, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    REQUIRE(rc == 0);
    CHECK(w.tls);
    CHECK(w.cert_pem != NULL && strcmp(w.cert_pem, pem) == 0);
    CHECK(w.key_pem != NULL && strstr(w.key_pem, "PRIVATE KEY") != NULL);
    CHECK(w.client_ca_pem != NULL && strcmp(w.client_ca_pem, pem) == 0);
    CHECK_EQ_I(w.client_auth, TSLAB__CLIENT_AUTH_REQUIRE_AND_VERIFY);
    CHECK_EQ_I(w.min_version, 12);
    CHECK_EQ_I(w.max_version, 13);
    CHECK_EQ_I(w.header_count, 2); /* the blank one is unset */
    CHECK(strcmp(w.headers[0].name, "X-Frame-Options") == 0 &&
          strcmp(w.headers[0].value, "deny") == 0);
    CHECK(strcmp(w.headers[1].name, "Content-Security-Policy") == 0 &&
          strcmp(w.headers[1].value, "default-src 'self'") == 0);
    CHECK_EQ_I(w.user_count, 2);
    CHECK(strcmp(w.users[0].name, "alice") == 0 && strcmp(w.users[0].value, hash) == 0);
    CHECK(strcmp(w.users[1].name, "bob") == 0);

    /* basic authentication against those hashes */
    tslab__basic_auth *a = tslab__basic_auth_new(w.users, w.user_count);
    REQUIRE(a != NULL);
    CHECK(tslab__basic_auth_check(a, "alice", "s3cret"));
    CHECK(tslab__basic_auth_check(a, "alice", "s3cret")); /* from the cache */
    CHECK(!tslab__basic_auth_check(a, "alice", "s3cre"));
    CHECK(!tslab__basic_auth_check(a, "alice", "s3cret2"));
    CHECK(!tslab__basic_auth_check(a, "alice", ""));
    CHECK(!tslab__basic_auth_check(a, "Alice", "s3cret"));
    CHECK(!tslab__basic_auth_check(a, "carol", "s3cret"));
    CHECK(!tslab__basic_auth_check(a, "bob", "s3cret"));
    CHECK(tslab__basic_auth_check(a, "alice", "s3cret")); /* a failure did not evict it */
    tslab__basic_auth_free(a);
    /* $2y$ is the same algorithm as $2b$ */
    tslab__webconfig_pair y = {"yves", hash};
    char yhash[64];
    strcpy(yhash, hash);
    yhash[2] = 'y';
    y.value = yhash;
    a = tslab__basic_auth_new(&y, 1);
    REQUIRE(a != NULL);
    CHECK(tslab__basic_auth_check(a, "yves", "s3cret"));
    CHECK(!tslab__basic_auth_check(a, "yves", "wrong"));
    tslab__basic_auth_free(a);
    tslab__webconfig_free(&w);

    /* inline PEM instead of files, and the toolkit's null-valued sections */
    snprintf(file, sizeof file,
             "tls_server_config:\n  cert: |\n    -----BEGIN CERTIFICATE-----\n    AAAA\n"
             "    -----END CERTIFICATE-----\n  key: \"-----BEGIN KEY-----\"\n"
             "http_server_config:\nbasic_auth_users: ~\n");
    rc = tslab__webconfig_load(write_file("inline.yml", file), &w, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    CHECK_EQ_I(rc, 0);
    CHECK(w.tls && w.cert_pem != NULL && strncmp(w.cert_pem, "-----BEGIN", 10) == 0);
    CHECK_EQ_I(w.user_count, 0);
    tslab__webconfig_free(&w);

    /* an empty file, or only comments: plain HTTP, as with the toolkit */
    const char *empties[] = {"", "# nothing\n", "---\n"};
    for (size_t i = 0; i < 3; i++) {
        CHECK_EQ_I(tslab__webconfig_load(write_file("empty.yml", empties[i]), &w, err, sizeof err),
                   0);
        CHECK(!w.tls && w.user_count == 0 && w.header_count == 0);
        tslab__webconfig_free(&w);
    }
}

/* The file must be refused with a message holding `want` (and `line` as ":N:" when nonzero). */
static void refused(const char *text, const char *want, int line)
{
    tslab__webconfig w;
    char err[512];
    int rc = tslab__webconfig_load(write_file("bad.yml", text), &w, err, sizeof err);
    if (rc != -EINVAL || strstr(err, want) == NULL) {
        fprintf(stderr, "file:\n%s-> rc %d, message '%s', wanted '%s'\n", text, rc, err, want);
        test_count_failures(1);
        if (rc == 0)
            tslab__webconfig_free(&w);
        return;
    }
    CHECK(w.cert_pem == NULL && w.users == NULL && w.headers == NULL); /* freed on error */
    CHECK(strncmp(err, dir, strlen(dir)) == 0);                        /* names the file */
    if (line != 0) {
        char tag[16];
        snprintf(tag, sizeof tag, ".yml:%d: ", line);
        if (strstr(err, tag) == NULL) {
            fprintf(stderr, "message '%s' does not name line %d\n", err, line);
            test_count_failures(1);
        }
    }
}

static void test_malformed(void)
{
    char hash[64];
    bcrypt("pw", hash, sizeof hash);
    char cert_line[600], ca_line[600], buf[2048];
    snprintf(cert_line, sizeof cert_line, "  cert_file: %s/server.crt\n  key_file: %s/server.key\n",
             dir, dir);
    snprintf(ca_line, sizeof ca_line, "  client_ca_file: %s/ca.crt\n", dir);

    /* YAML itself */
    refused("tls_server_config: [1, 2\n", "YAML error", 0);
    refused("basic_auth_users: {}\n---\nc: d\n", "more than one YAML document", 0);
    refused("- tls_server_config\n", "must hold a mapping", 1);
    refused("just a string\n", "must hold a mapping", 1);
    /* unknown or unsupported keys */
    refused("tls_config:\n  cert_file: x\n", "unknown key 'tls_config'", 1);
    refused("rate_limit:\n  interval: 1s\n  burst: 20\n", "rate_limit is not supported", 1);
    snprintf(buf, sizeof buf, "tls_server_config:\n%s  certfile: x\n", cert_line);
    refused(buf, "unknown key 'certfile'", 4);
    snprintf(buf, sizeof buf, "tls_server_config:\n%s  client_allowed_sans: [a]\n", cert_line);
    refused(buf, "client_allowed_sans is not supported", 4);
    snprintf(buf, sizeof buf, "tls_server_config:\n%s  cipher_suites: [a]\n", cert_line);
    refused(buf, "cipher_suites is not supported", 4);
    refused("http_server_config:\n  gzip: true\n", "unknown key 'gzip'", 2);
    /* wrong types */
    refused("tls_server_config: [1, 2]\n", "tls_server_config must be a mapping", 1);
    refused("tls_server_config: yes\n", "tls_server_config must be a mapping", 1);
    refused("tls_server_config:\n  cert_file: [a, b]\n", "cert_file must be a string, not a list",
            2);
    refused("tls_server_config:\n  key_file: {a: b}\n", "key_file must be a string, not a mapping",
            2);
    refused("basic_auth_users: [alice]\n", "basic_auth_users must be a mapping", 1);
    refused("http_server_config:\n  headers: [a]\n", "headers must be a mapping", 2);
    refused("http_server_config:\n  http2: maybe\n", "http2 must be true or false", 2);
    refused("http_server_config:\n  headers:\n    X-Frame-Options: [deny]\n",
            "X-Frame-Options must be a string", 3);
    /* missing or unreadable certificate and key */
    snprintf(buf, sizeof buf, "tls_server_config:\n  key_file: %s/server.key\n", dir);
    refused(buf, "needs exactly one of cert_file and cert", 2);
    snprintf(buf, sizeof buf, "tls_server_config:\n  cert_file: %s/server.crt\n", dir);
    refused(buf, "needs exactly one of key_file and key", 2);
    refused("tls_server_config:\n  client_auth_type: NoClientCert\n",
            "needs exactly one of cert_file and cert", 2);
    snprintf(buf, sizeof buf, "tls_server_config:\n  cert_file: %s/missing.crt\n  key_file: x\n",
             dir);
    refused(buf, "cert_file: cannot read", 0);
    snprintf(buf, sizeof buf, "tls_server_config:\n  cert_file: %s/notpem.txt\n  key_file: x\n",
             dir);
    write_file("notpem.txt", "hello\n");
    refused(buf, "holds no PEM data", 0);
    snprintf(buf, sizeof buf, "tls_server_config:\n%s  cert: inline\n", cert_line);
    refused(buf, "exactly one of cert_file and cert", 0);
    /* client authentication */
    snprintf(buf, sizeof buf, "tls_server_config:\n%s  client_auth_type: VerifyAll\n", cert_line);
    refused(buf, "client_auth_type 'VerifyAll' is not one of", 4);
    snprintf(buf, sizeof buf, "tls_server_config:\n%s%s", cert_line, ca_line);
    refused(buf, "client_auth_type is NoClientCert", 4);
    snprintf(buf, sizeof buf,
             "tls_server_config:\n%s  client_auth_type: RequireAndVerifyClientCert\n", cert_line);
    refused(buf, "RequireAndVerifyClientCert needs client_ca_file", 4);
    snprintf(buf, sizeof buf, "tls_server_config:\n%s  min_version: TLS14\n", cert_line);
    refused(buf, "min_version must be one of TLS10", 4);
    snprintf(buf, sizeof buf, "tls_server_config:\n%s  min_version: TLS13\n  max_version: TLS12\n",
             cert_line);
    refused(buf, "min_version is above max_version", 0);
    /* users and headers */
    refused("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice must be a bcrypt",
            2);
    refused("basic_auth_users:\n  alice: $2y$10$short\n", "must be a bcrypt", 2);
    refused("basic_auth_users:\n  alice: $1$abcdefgh$abcdefghijklmnopqrstuv\n", "must be a bcrypt",
            2);
    snprintf(buf, sizeof buf, "basic_auth_users:\n  alice: %s\n  alice: %s\n", hash, hash);
    refused(buf, "basic_auth_users.alice is given twice", 3);
    snprintf(buf, sizeof buf, "basic_auth_users:\n  'a:b': %s\n", hash);
    refused(buf, "without ':'", 2);
    refused("http_server_config:\n  headers:\n    X-Foo: bar\n",
            "'X-Foo' is not one of Content-Security-Policy", 3);
    refused("http_server_config:\n  headers:\n    X-Frame-Options: allowall\n",
            "'allowall' is not an accepted value", 3);
    refused("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n",
            "not an accepted value", 3);
    refused("http_server_config:\n  headers:\n    X-XSS-Protection: \"1\\r\\nSet-Cookie: a\"\n",
            "holds a line break", 3);
    refused("basic_auth_users: {}\nbasic_auth_users: {}\n", "basic_auth_users is given twice", 2);

    /* a file that does not exist */
    tslab__webconfig w;
    char err[512];
    char path[512];
    snprintf(path, sizeof path, "%s/nope.yml", dir);
    CHECK_EQ_I(tslab__webconfig_load(path, &w, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "nope.yml: cannot open") != NULL);
}

int main(int argc, char **argv)
{
    /* "--bcrypt PASSWORD": print a bcrypt hash of it (cost 4) for the end-to-end test, which
     * needs no other tool to make one. */
    if (argc == 3 && strcmp(argv[1], "--bcrypt") == 0) {
        char hash[64];
        bcrypt(argv[2], hash, sizeof hash);
        printf("%s\n", hash);
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/tslab-webconfig-XXXXXX", tmp ? tmp : "/tmp");
    REQUIRE(mkdtemp(dir) != NULL);
    test_valid();
    test_malformed();
    const char *names[] = {"server.crt", "server.key", "ca.crt",     "web.yml",
                           "inline.yml", "empty.yml",  "notpem.txt", "bad.yml"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    return test_result("test_webconfig");
}
