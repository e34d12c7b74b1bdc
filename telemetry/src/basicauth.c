/* SPDX-License-Identifier: MIT */
/* HTTP basic authentication against the bcrypt hashes of the web configuration (libcrypt's
 * crypt_rn, which knows $2a$, $2b$ and $2y$).
 *
 * bcrypt costs tens of milliseconds by design (cost 10: about 70 ms here) and every scrape
 * authenticates, so the last password that matched for each user is remembered, as the
 * exporter-toolkit does; not in clear but as an HMAC-SHA-256 under a key drawn at start-up
 * (GnuTLS), so a memory dump shows no password and no unsalted digest. Comparisons run in time
 * independent of where the inputs differ. */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "telemetry.h"

#define MAC_SIZE 32 /* SHA-256 */

typedef struct user {
    char *name;
    char *hash;
    unsigned char mac[MAC_SIZE]; /* of the last password that matched */
    bool cached;
} user;

struct tslab__basic_auth {
    user *users;
    size_t count;
    unsigned char key[32];
    struct crypt_data data; /* crypt_rn's scratch (about 32 KiB): one check at a time */
};

static bool same_bytes(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(x[i] ^ y[i]);
    return diff == 0;
}

tslab__basic_auth *tslab__basic_auth_new(const tslab__webconfig_pair *users, size_t n)
{
    tslab__basic_auth *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->users = calloc(n, sizeof *a->users);
    if (a->users == NULL || gnutls_rnd(GNUTLS_RND_KEY, a->key, sizeof a->key) != 0) {
        tslab__basic_auth_free(a);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        a->users[i].name = strdup(users[i].name);
        a->users[i].hash = strdup(users[i].value);
        a->count = i + 1;
        if (a->users[i].name == NULL || a->users[i].hash == NULL) {
            tslab__basic_auth_free(a);
            return NULL;
        }
    }
    return a;
}

/* Does `password` hash to `hash`? */
static bool bcrypt_matches(tslab__basic_auth *a, const char *password, const char *hash)
{
    const char *out = crypt_rn(password, hash, &a->data, (int)sizeof a->data);
    size_t len = strlen(hash);
    return out != NULL && strlen(out) == len && same_bytes(out, hash, len);
}

bool tslab__basic_auth_check(tslab__basic_auth *a, const char *name, const char *password)
{
    if (a == NULL || a->count == 0 || name == NULL || password == NULL)
        return false;
    user *u = NULL;
    size_t name_len = strlen(name);
    for (size_t i = 0; i < a->count; i++) {
        if (strlen(a->users[i].name) == name_len && same_bytes(a->users[i].name, name, name_len))
            u = &a->users[i];
    }
    if (u == NULL) {
        /* As long as a wrong password of a known user: a timing difference would tell which
         * user names exist. */
        (void)bcrypt_matches(a, password, a->users[0].hash);
        return false;
    }
    unsigned char mac[MAC_SIZE];
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, a->key, sizeof a->key, password, strlen(password),
                         mac) != 0)
        return false;
    if (u->cached && same_bytes(mac, u->mac, MAC_SIZE))
        return true;
    if (!bcrypt_matches(a, password, u->hash))
        return false;
    memcpy(u->mac, mac, MAC_SIZE);
    u->cached = true;
    return true;
}

void tslab__basic_auth_free(tslab__basic_auth *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; a->users != NULL && i < a->count; i++) {
        free(a->users[i].name);
        free(a->users[i].hash);
    }
    free(a->users);
    explicit_bzero(a, sizeof *a);
    free(a);
}
