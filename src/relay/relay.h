/*
 * src/relay/relay.h — private to the relay: its configuration, inputs,
 * hub, test-pattern source and HTTP server.
 *
 * Model
 *   steward relay is a tree of scopes (DESIGN.md section 4):
 *
 *     relay (root, owned by relay_main)
 *       http       one thread running the libevent loop: listener, API,
 *                  viewers; closed first at shutdown (stop accepting,
 *                  close viewers)
 *       sources    one child scope per input, each with its source thread;
 *                  closed second (stop the producers)
 *
 *   An input (relay_input) is a name, a hub and a source. The hub holds the
 *   latest frame; the source publishes into it from its own thread and the
 *   HTTP loop fans that frame out to the input's viewers. The input, its
 *   hub and its source state are owned by the input's scope: its cleanups
 *   free them after the source thread returned. The HTTP scope is closed
 *   before the sources, so the loop never sees a hub freed under it.
 *
 *   In this slice the set of inputs is fixed before the HTTP thread starts
 *   and read-only afterwards, so the input table needs no lock.
 *
 * Threads
 *   relay_hub_* may be called from any thread. Everything in http.c runs
 *   on the loop thread only; libevent is never called from another thread
 *   (the sources wake the loop through the hub's eventfd), so it is used
 *   without evthread locking.
 */
#ifndef STW_RELAY_H
#define STW_RELAY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "steward/frame.h"
#include "steward/scope.h"

/* ---- configuration ---- */

#define RELAY_INPUTS_MAX 64
#define RELAY_NAME_MAX 32

typedef struct relay_config {
    char host[64];
    int port;                             /* 0: ephemeral */
    bool default_input;                   /* create the "test" input */
    unsigned max_viewers;                 /* all inputs together */
    unsigned max_viewers_input;           /* per input */
    unsigned inflight;                    /* frames in flight per viewer */
    int viewer_sndbuf;                    /* SO_SNDBUF of a viewer socket, bytes */
    int timeout_s;                        /* request read/write, viewer write stall */
    int max_header_bytes;                 /* request line + headers */
    int max_body_bytes;                   /* request body */
    unsigned width, height, fps, quality; /* the test pattern */
} relay_config;

/* ---- hub ---- */

typedef struct relay_hub relay_hub;

typedef struct relay_hub_stat {
    uint64_t seq;        /* frames published so far; seq of the latest */
    uint64_t frames_in;  /* published by the source */
    uint64_t frames_out; /* handed to viewer sockets */
    uint64_t dropped;    /* skipped for a busy viewer, or lost by the source */
    unsigned viewers;    /* streaming viewers now */
} relay_hub_stat;

/* A new hub for @name (borrowed, must outlive the hub) with an eventfd
 * that becomes readable on every publish. *@out is owned by the caller
 * (transfer full). Returns 0, -ENOMEM or the eventfd errno. */
int relay_hub_new(const char *name, relay_hub **out);

/* Drop the latest frame, close the eventfd, free *@h; sets it to NULL.
 * Accepts NULL. No other thread may use the hub any more. */
void relay_hub_free(relay_hub **h);

/* Make @f (transfer full) the latest frame, drop the previous one, bump
 * the sequence number and wake the notify fd. */
void relay_hub_publish(relay_hub *h, stw_frame *f);

/* The latest frame (a new reference, transfer full) or NULL before the
 * first publish; *@seq (may be NULL) gets its sequence number. */
stw_frame *relay_hub_latest(relay_hub *h, uint64_t *seq);

/* The eventfd (borrowed): readable after a publish until drained. */
int relay_hub_notify_fd(const relay_hub *h);

/* Reset the notify fd to not readable. */
void relay_hub_drain_notify(relay_hub *h);

/* Counters, safe from any thread. */
void relay_hub_count_out(relay_hub *h, uint64_t n);
void relay_hub_count_dropped(relay_hub *h, uint64_t n);
void relay_hub_viewers_add(relay_hub *h, int delta);
void relay_hub_stats(const relay_hub *h, relay_hub_stat *out);

/* ---- inputs ---- */

typedef struct relay_input {
    char name[RELAY_NAME_MAX]; /* [A-Za-z0-9_-]+ */
    const char *kind;          /* "test" */
    relay_hub *hub;            /* owned */
    stw_scope *scope;          /* child of the sources scope, owns this */
    unsigned width, height, fps;
} relay_input;

/* True if @name is a valid input name (1..31 of [A-Za-z0-9_-]). */
bool relay_name_valid(const char *name, size_t len);

/* ---- the test-pattern source ---- */

/* Start the test pattern of @cfg on @in: its state is freed and its
 * thread joined by @in->scope. Returns 0, -ENOMEM, -EINVAL or a spawn
 * error; on failure whatever was set up is undone by closing the scope. */
int relay_source_test_start(relay_input *in, const relay_config *cfg);

/* ---- the HTTP server ---- */

typedef struct relay_http relay_http;

/*
 * Bind @cfg's address now (so the caller can print the real port), then
 * run the server on a thread of @scope. @inputs (borrowed, @ninputs of
 * them) must stay valid until @scope is closed. *@port_out gets the bound
 * port. The server, its listener and every connection are freed by the
 * thread when @scope is cancelled. Returns 0 or a negative errno.
 */
int relay_http_start(stw_scope *scope, const relay_config *cfg, relay_input *const *inputs,
                     unsigned ninputs, int *port_out);

/* steward relay [options]: argv[0] is "relay". Returns the exit code. */
int stw_relay_main(int argc, char **argv);

#endif
