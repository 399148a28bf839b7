#include "stw_test.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "redact.h"

static void expect(const char *in, const char *want)
{
    char out[512];
    assert_int_equal(relay_redact(in, out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

static void test_redact_userinfo(void **state)
{
    (void)state;
    expect("rtsp://admin:secret@192.168.1.10:554/stream1",
           "rtsp://admin:***@192.168.1.10:554/stream1");
    expect("rtmp://user:p%40ss@host/live/key", "rtmp://user:***@host/live/key");
    /* A raw '@' or ':' in the password: the last '@' of the authority ends it. */
    expect("rtsp://admin:p@ss:w0rd@cam/s", "rtsp://admin:***@cam/s");
    /* No password, or no userinfo at all: unchanged. */
    expect("rtsp://admin@cam/s", "rtsp://admin@cam/s");
    expect("rtsp://cam:554/s?x=a", "rtsp://cam:554/s?x=a");
    expect("http://example.com/", "http://example.com/");
    expect("plain text: no urls", "plain text: no urls");
    expect("", "");
    expect("://", "://");
    expect("rtsp://u:@cam/", "rtsp://u:@cam/");
    /* A raw '/' in the password ends the authority early: still hidden. */
    expect("rtsp://u:pa/ss@cam/s", "rtsp://u:***@cam/s");
    expect("rtsp://u:pa?ss@cam/s", "rtsp://u:***@cam/s");
    /* The price: an '@' later in the word hides more than needed. */
    expect("rtsp://cam:554/s?x=a@b", "rtsp://cam:***@b");
    /* Inside ffmpeg's messages, several per line, quoted. */
    expect("Input #0, rtsp, from 'rtsp://admin:hunter2@cam1/live':",
           "Input #0, rtsp, from 'rtsp://admin:***@cam1/live':");
    expect("[tcp @ 0x55] Connection to tcp://a:b@h:1 failed; retry rtsp://c:d@h2/x",
           "[tcp @ 0x55] Connection to tcp://a:***@h:1 failed; retry rtsp://c:***@h2/x");
    expect("\"srt://u:pw@h:9000\"", "\"srt://u:***@h:9000\"");
}

static void test_redact_query(void **state)
{
    (void)state;
    expect("http://cam/video.cgi?user=admin&password=s3cret&res=hd",
           "http://cam/video.cgi?user=admin&password=***&res=hd");
    expect("http://cam/?PASSWD=x#frag", "http://cam/?PASSWD=***#frag");
    expect("srt://host:9000?mode=caller&passphrase=longsecret",
           "srt://host:9000?mode=caller&passphrase=***");
    expect("rtmp://h/app?access_token=abc&stream_key=def",
           "rtmp://h/app?access_token=***&stream_key=***");
    expect("http://h/?pwd=1;pass=2", "http://h/?pwd=***");
    /* Only whole names: "monkey=" is not a key, "bypass=" is not a pass. */
    expect("monkey=banana bypass=1", "monkey=banana bypass=1");
    /* Both rules in one URL. */
    expect("rtsp://a:b@h/s?token=t", "rtsp://a:***@h/s?token=***");
    expect("password= empty", "password= empty");
    expect("key=v 'secret=w' token=x\n", "key=*** 'secret=***' token=***\n");
}

static void test_redact_truncates(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(relay_redact("rtsp://admin:secret@cam/stream", out, sizeof(out)), -ENOSPC);
    assert_string_equal(out, "rtsp://admin:**");
    assert_int_equal(relay_redact("rtsp://admin:secret@cam/stream", out, 14), -ENOSPC);
    assert_string_equal(out, "rtsp://admin:");
    assert_int_equal(relay_redact("abc", out, 4), 0);
    assert_string_equal(out, "abc");
    assert_int_equal(relay_redact("abcd", out, 4), -ENOSPC);
    assert_string_equal(out, "abc");
    assert_int_equal(relay_redact("abc", out, 1), -ENOSPC);
    assert_string_equal(out, "");
    assert_int_equal(relay_redact("", out, 1), 0);
    assert_int_equal(relay_redact("abc", NULL, 0), -ENOSPC);
}

/* Whatever the input, the secret never shows up in the output. */
static void test_redact_never_leaks(void **state)
{
    (void)state;
    const char *pre[] = {"", "x ", "'", "rtsp://", "http://u:", "?password=", "&token=", "@"};
    const char *post[] = {"", "@h", "@h/p", " y", "'", "&a=b", "@/", ":@"};
    char in[128], out[256];
    for (size_t a = 0; a < sizeof(pre) / sizeof(pre[0]); a++) {
        for (size_t b = 0; b < sizeof(post) / sizeof(post[0]); b++) {
            snprintf(in, sizeof(in), "rtsp://user:%sTOPSECRET%s", pre[a], post[b]);
            relay_redact(in, out, sizeof(out));
            /* A password is one word, closed by an '@'. */
            bool one_word = strpbrk(in, " '") == NULL;
            if (one_word && strchr(strstr(in, "TOPSECRET"), '@') != NULL &&
                strstr(out, "TOPSECRET") != NULL)
                fail_msg("leaked: '%s' -> '%s'", in, out);
            snprintf(in, sizeof(in), "%spassword=TOPSECRET%s", pre[a], post[b]);
            relay_redact(in, out, sizeof(out));
            if (strstr(out, "TOPSECRET") != NULL)
                fail_msg("leaked: '%s' -> '%s'", in, out);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STW_TEST(test_redact_userinfo),
        STW_TEST(test_redact_query),
        STW_TEST(test_redact_truncates),
        STW_TEST(test_redact_never_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
