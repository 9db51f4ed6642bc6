/* The message API: pure C, no messenger needed. */
#include "testutil.h"

static int frees;
static void *freed_ptr;
static void *freed_hint;
static void free_fn(void *data, void *hint) {
    frees++;
    freed_ptr = data;
    freed_hint = hint;
}

static void check_seg(const msgr_msg *m, int seg, const void *want, size_t len) {
    const void *p;
    size_t n;
    OK(msgr_msg_get_segment(m, seg, &p, &n));
    CHECK(n == len);
    if (len == 0)
        CHECK(p == NULL);
    else
        CHECK(memcmp(p, want, len) == 0);
}

int main(void) {
    msgr_msg *m, *c;
    msgr_msg_header h;
    void *buf;
    static char big[100000];
    size_t i;

    OK(msgr_msg_alloc(&m, 77));
    memset(&h, 0, sizeof h);
    h.size = sizeof h;
    OK(msgr_msg_get_header(m, &h));
    CHECK(h.type == 77 && h.priority == MSGR_PRIO_DEFAULT && h.version == 1 &&
          h.compat_version == 1 && h.tid == 0 && h.seq == 0 && h.src_num == -1);
    CHECK(h.front_len == 0 && h.middle_len == 0 && h.data_len == 0);
    CHECK(msgr_msg_type(m) == 77);
    CHECK(msgr_msg_type(NULL) == 0);

    OK(msgr_msg_set_priority(m, MSGR_PRIO_HIGH));
    OK(msgr_msg_set_version(m, 5, 3));
    OK(msgr_msg_set_tid(m, 0x1122334455667788ull));
    OK(msgr_msg_set_segment(m, MSGR_SEG_FRONT, "front", 5));
    OK(msgr_msg_set_segment(m, MSGR_SEG_MIDDLE, "mid", 3));
    for (i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    OK(msgr_msg_set_segment(m, MSGR_SEG_DATA, big, sizeof big));
    OK(msgr_msg_get_header(m, &h));
    CHECK(h.priority == MSGR_PRIO_HIGH && h.version == 5 && h.compat_version == 3 &&
          h.tid == 0x1122334455667788ull);
    CHECK(h.front_len == 5 && h.middle_len == 3 && h.data_len == sizeof big);
    check_seg(m, MSGR_SEG_FRONT, "front", 5);
    check_seg(m, MSGR_SEG_MIDDLE, "mid", 3);
    check_seg(m, MSGR_SEG_DATA, big, sizeof big);

    /* Replacing a segment, and emptying it. */
    OK(msgr_msg_set_segment(m, MSGR_SEG_FRONT, "another front", 13));
    check_seg(m, MSGR_SEG_FRONT, "another front", 13);
    OK(msgr_msg_set_segment(m, MSGR_SEG_MIDDLE, NULL, 0));
    check_seg(m, MSGR_SEG_MIDDLE, NULL, 0);

    /* Reserve: write in place. */
    OK(msgr_msg_reserve_segment(m, MSGR_SEG_MIDDLE, 4, &buf));
    memcpy(buf, "abcd", 4);
    check_seg(m, MSGR_SEG_MIDDLE, "abcd", 4);

    /* Copy is deep and keeps the header. */
    OK(msgr_msg_copy(m, &c));
    OK(msgr_msg_get_header(c, &h));
    CHECK(h.type == 77 && h.priority == MSGR_PRIO_HIGH && h.tid == 0x1122334455667788ull);
    check_seg(c, MSGR_SEG_FRONT, "another front", 13);
    check_seg(c, MSGR_SEG_DATA, big, sizeof big);
    OK(msgr_msg_put(c));

    /* Shared messages are read only. */
    OK(msgr_msg_ref(m));
    CHECK_RC(msgr_msg_set_tid(m, 1), MSGR_ESTATE);
    CHECK_RC(msgr_msg_set_segment(m, MSGR_SEG_FRONT, "x", 1), MSGR_ESTATE);
    OK(msgr_msg_put(m));
    OK(msgr_msg_set_tid(m, 1));

    /* Zero copy: free_fn once, when the last reference goes; replacing the
     * segment frees the old buffer. */
    OK(msgr_msg_set_data_nocopy(m, big, 100, free_fn, (void *)0x5));
    check_seg(m, MSGR_SEG_DATA, big, 100);
    OK(msgr_msg_ref(m));
    OK(msgr_msg_put(m));
    CHECK(frees == 0);
    OK(msgr_msg_set_data_nocopy(m, big + 1, 10, free_fn, (void *)0x6));
    CHECK(frees == 1 && freed_ptr == big && freed_hint == (void *)0x5);
    OK(msgr_msg_put(m));
    CHECK(frees == 2 && freed_ptr == big + 1 && freed_hint == (void *)0x6);

    /* Oversized lengths, bad segments, NULL data. */
    OK(msgr_msg_alloc(&m, 1));
#if SIZE_MAX > 0xFFFFFFFFu
    CHECK_RC(msgr_msg_set_segment(m, MSGR_SEG_FRONT, big, (size_t)MSGR_SEGMENT_MAX + 1), MSGR_EMSGSIZE);
    CHECK_RC(msgr_msg_reserve_segment(m, MSGR_SEG_DATA, (size_t)1 << 40, &buf), MSGR_EMSGSIZE);
    CHECK_RC(msgr_msg_set_data_nocopy(m, big, (size_t)1 << 33, free_fn, NULL), MSGR_EMSGSIZE);
#endif
    CHECK(frees == 2); /* a failed nocopy never calls free_fn */
    CHECK_RC(msgr_msg_set_segment(m, 3, "x", 1), MSGR_EINVAL);
    CHECK_RC(msgr_msg_set_segment(m, -1, "x", 1), MSGR_EINVAL);
    CHECK_RC(msgr_msg_set_segment(m, MSGR_SEG_FRONT, NULL, 1), MSGR_EINVAL);
    OK(msgr_msg_set_segment(m, MSGR_SEG_FRONT, NULL, 0));
    {
        const void *p;
        size_t n;
        CHECK_RC(msgr_msg_get_segment(m, 7, &p, &n), MSGR_EINVAL);
        CHECK_RC(msgr_msg_get_segment(m, MSGR_SEG_FRONT, NULL, &n), MSGR_EINVAL);
        CHECK_RC(msgr_msg_get_segment(m, MSGR_SEG_FRONT, &p, NULL), MSGR_EINVAL);
        CHECK_RC(msgr_msg_get_segment(NULL, MSGR_SEG_FRONT, &p, &n), MSGR_EINVAL);
        CHECK(p == NULL && n == 0);
    }
    /* Header struct sizes: too small is EINVAL; a larger (newer) struct
     * gets its unknown tail zeroed. */
    {
        unsigned char raw[sizeof(msgr_msg_header) + 16];
        msgr_msg_header *hp = (msgr_msg_header *)(void *)raw;
        memset(raw, 0xAB, sizeof raw);
        hp->size = 8;
        CHECK_RC(msgr_msg_get_header(m, hp), MSGR_EINVAL);
        hp->size = sizeof raw;
        OK(msgr_msg_get_header(m, hp));
        for (i = sizeof(msgr_msg_header); i < sizeof raw; i++)
            CHECK(raw[i] == 0);
        CHECK_RC(msgr_msg_get_header(m, NULL), MSGR_EINVAL);
        CHECK_RC(msgr_msg_get_header(NULL, hp), MSGR_EINVAL);
    }
    OK(msgr_msg_put(m));

    /* NULL everywhere. */
    CHECK_RC(msgr_msg_alloc(NULL, 1), MSGR_EINVAL);
    CHECK_RC(msgr_msg_ref(NULL), MSGR_EINVAL);
    CHECK_RC(msgr_msg_put(NULL), MSGR_EINVAL);
    CHECK_RC(msgr_msg_copy(NULL, &c), MSGR_EINVAL);
    CHECK(c == NULL);
    CHECK_RC(msgr_msg_set_priority(NULL, 1), MSGR_EINVAL);
    CHECK_RC(msgr_msg_set_version(NULL, 1, 1), MSGR_EINVAL);
    CHECK_RC(msgr_msg_set_tid(NULL, 1), MSGR_EINVAL);
    CHECK_RC(msgr_msg_set_segment(NULL, 0, "x", 1), MSGR_EINVAL);
    CHECK_RC(msgr_msg_reserve_segment(NULL, 0, 1, &buf), MSGR_EINVAL);
    CHECK_RC(msgr_msg_set_data_nocopy(NULL, big, 1, free_fn, NULL), MSGR_EINVAL);
    CHECK(frees == 2);

    /* Many small messages: inline storage, no leak. */
    for (i = 0; i < 10000; i++) {
        m = make_msg(9, "0123456789", 10);
        OK(msgr_msg_put(m));
    }
    check_no_leaks();
    printf("messages: ok\n");
    return 0;
}
