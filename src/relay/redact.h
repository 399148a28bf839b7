/*
 * relay/redact.h — hide credentials in text the relay shows or logs,
 * private to the relay.
 *
 * Model
 *   Camera and push URLs carry passwords (rtsp://admin:secret@cam/...,
 *   srt://host?passphrase=...), and ffmpeg repeats them in its messages.
 *   Every URL, command line or ffmpeg line the relay prints, logs or serves
 *   goes through relay_redact() first. It rewrites, anywhere in the text:
 *
 *   - the password of scheme://user:password@host as ***, keeping the
 *     user ("rtsp://admin:***@cam/stream"). The userinfo ends at the last
 *     '@' before the first '/', '?' or '#' of the authority, as ffmpeg
 *     splits URLs. When the authority has no '@' but the rest of the word
 *     does ("rtsp://u:p/w@host", a password with a raw '/'), everything
 *     between the first ':' and that '@' is hidden: a redaction may hide
 *     too much, never too little.
 *   - the value of password=, passwd=, pass=, pwd=, passphrase=, secret=,
 *     token=, key= and apikey= (case-insensitive; also as the end of a
 *     longer name after a character that is not a letter or digit, such as
 *     access_token= or stream_key=), up to the next '&', '#' or the end of
 *     the word.
 *
 *   A word ends at white space, a quote, '<' or '>'. Text without
 *   credentials is copied unchanged.
 */
#ifndef STW_RELAY_REDACT_H
#define STW_RELAY_REDACT_H

#include <stddef.h>

/* Copy @in (borrowed, NUL-terminated) to @out (@outlen bytes, always
 * NUL-terminated when @outlen > 0) with its credentials replaced by "***".
 * Returns 0, or -ENOSPC if the result was cut to fit (the cut only drops
 * the end; no part of a hidden password is ever written). @in and @out must
 * not overlap. */
int relay_redact(const char *in, char *out, size_t outlen);

#endif
