// The system OpenSSL (libssl-dev) for LoadKit's TLS layer, built only with the `TLS` trait.
// Several OpenSSL "functions" are macros Swift cannot import; they are wrapped here as
// static inline functions with an `lk_` prefix.
#ifndef LOADKIT_COPENSSL_SHIM_H
#define LOADKIT_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/bio.h>

static inline long lk_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline int lk_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_min_proto_version(ctx, v); }
static inline int lk_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int v) { return (int)SSL_CTX_set_max_proto_version(ctx, v); }
static inline long lk_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long m) { return SSL_CTX_set_session_cache_mode(ctx, m); }
static inline long lk_SSL_CTX_set_options(SSL_CTX *ctx, int ignoreUnexpectedEOF) {
    uint64_t o = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
    (void)ignoreUnexpectedEOF;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    if (ignoreUnexpectedEOF) o |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
    return (long)SSL_CTX_set_options(ctx, o);
}
static inline int lk_SSL_set_tlsext_host_name(SSL *s, const char *name) { return (int)SSL_set_tlsext_host_name(s, name); }
static inline long lk_BIO_set_mem_eof_return(BIO *b, int v) { return BIO_set_mem_eof_return(b, v); }
/// The allocated size of a memory BIO's buffer (it never shrinks while the BIO lives).
static inline size_t lk_BIO_mem_capacity(BIO *b) {
    BUF_MEM *m = NULL;
    BIO_get_mem_ptr(b, &m);
    return m != NULL ? m->max : 0;
}
static inline int lk_ERR_GET_LIB(unsigned long e) { return ERR_GET_LIB(e); }
static inline int lk_ERR_GET_REASON(unsigned long e) { return ERR_GET_REASON(e); }
static inline int lk_SSL_AD_REASON_OFFSET(void) { return SSL_AD_REASON_OFFSET; }

/// Server-side ALPN: picks the first of the server's protocols (wire format in `arg`,
/// first byte = total length) that the client offered; declines ALPN when none match.
static inline int lk_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                 const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    const unsigned char *server = (const unsigned char *)arg;
    unsigned int slen = server[0];
    unsigned char *o = NULL;
    if (SSL_select_next_proto(&o, outlen, server + 1, slen, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = o;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}
static inline void lk_SSL_CTX_set_alpn_select(SSL_CTX *ctx, const unsigned char *serverProtos) {
    SSL_CTX_set_alpn_select_cb(ctx, lk_alpn_select, (void *)serverProtos);
}

#endif
