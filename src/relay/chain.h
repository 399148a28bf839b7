/*
 * src/relay/chain.h — loop detection across relays, private to the relay.
 *
 * Model
 *   Every relay has a random instance id (relay_config.instance, 16 hex
 *   digits). When one of its inputs pulls a stream over HTTP it sends
 *   RELAY_LOOP_HEADER ("X-Steward-Relay") with a list: its own id, then
 *   the ids its own viewers of that input sent (the relays downstream of
 *   it), at most RELAY_VIA_IDS. A relay that finds its own id in the list
 *   of a request refuses it (508 Loop Detected): its stream would come
 *   back to it. In a ring A -> B -> A, the second pull of the ring carries
 *   the first relay's id, whichever input started first, and is refused;
 *   an edge that pulls an origin is never refused.
 *
 *   The list an input sends is kept on the input (relay_input.via, under
 *   in->lock): the loop updates it as viewers come and go (http_chain.c),
 *   the source thread reads it at every connect.
 */
#ifndef STW_RELAY_CHAIN_H
#define STW_RELAY_CHAIN_H

#include <stdbool.h>

#define RELAY_VIA_IDS 8
#define RELAY_VIA_ID_LEN 16
#define RELAY_VIA_MAX (RELAY_VIA_IDS * (RELAY_VIA_ID_LEN + 1)) /* "id,id,...", NUL */

struct relay_input;

/* True if the header value @list (untrusted, may be NULL) names @id. */
bool relay_via_has(const char *list, const char *id);

/* Add the ids of @list (untrusted, may be NULL: comma-separated, spaces
 * allowed; anything but 16 hex digits is skipped) to @acc (RELAY_VIA_MAX
 * bytes, "" or a list this function made), without duplicates, at most
 * RELAY_VIA_IDS in all. */
void relay_via_merge(char *acc, const char *list);

/* Set / copy out (RELAY_VIA_MAX bytes) the list of @in's downstream
 * relays. Any thread. */
void relay_input_set_via(struct relay_input *in, const char *via);
void relay_input_via(struct relay_input *in, char *out);

/* The header line an input's pull sends: "X-Steward-Relay: ID[,VIA]"
 * into @out (@len bytes). */
void relay_via_header(struct relay_input *in, const char *instance, char *out, unsigned len);

#endif
