// The C++ wrapper (msgr.hpp) end to end: RAII, exceptions with codes,
// std::function dispatchers, pull mode, and an exception thrown in a
// callback that is caught at the boundary and rethrown by shutdown().
#include <msgr.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
            std::exit(1);                                                            \
        }                                                                            \
    } while (0)

int main() {
    // Errors are exceptions carrying the code and the library's detail.
    try {
        msgr::messenger bad("client.1", 1, {{"ms_no_such_option", "1"}});
        CHECK(false);
    } catch (const msgr::error &e) {
        CHECK(e.code() == MSGR_EINVAL);
        CHECK(std::string(e.name()) == "MSGR_EINVAL");
        CHECK(std::string(e.what()).find("ms_no_such_option") != std::string::npos);
    }
    {
        msgr::message m(7, "hello");
        CHECK(m.type() == 7 && m.front() == "hello");
        msgr::message shared = m; // another reference: read only now
        try {
            m.tid(5);
            CHECK(false);
        } catch (const msgr::error &e) {
            CHECK(e.code() == MSGR_ESTATE);
        }
    }

    std::atomic<int> accepted{0}, fast{0};
    msgr::messenger srv("osd.2", 2, {{"ms_async_op_threads", "1"}});
    msgr::dispatcher d;
    d.can_fast_dispatch = [](msgr::view m) { return m.type() == 1 || m.type() == 3; };
    d.fast_dispatch = [&](msgr::connection &c, msgr::view m) {
        if (m.type() == 3)
            throw std::runtime_error("boom"); // caught at the C boundary
        fast++;
        c.send(msgr::message(2, m.front()).tid(m.tid()));
    };
    d.on_accept = [&](msgr::connection &c) {
        CHECK(c.peer_name() == "client.3");
        accepted++;
    };
    srv.add_dispatcher(std::move(d), MSGR_HEAD);
    srv.bind("127.0.0.1:0");
    std::string addr = srv.addrs();
    CHECK(addr.rfind("v2:127.0.0.1:", 0) == 0);
    srv.start();

    msgr::messenger cli("client.3", 3);
    cli.add_pull();
    cli.start();
    msgr::connection c = cli.connect(MSGR_ENTITY_OSD, addr);
    {
        std::vector<msgr::message> batch;
        for (int i = 0; i < 100; i++)
            batch.emplace_back(msgr::message(1, "ping " + std::to_string(i)).tid(static_cast<uint64_t>(i)));
        c.send_many(batch);
        CHECK(batch.empty());
    }
    c.send(msgr::message(3, "throw"));
    int replies = 0;
    std::vector<msgr::event> evs;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (replies < 100 && std::chrono::steady_clock::now() < deadline) {
        CHECK(cli.recv(evs, 32, 1000));
        for (auto &e : evs) {
            if (e.type != MSGR_EVENT_MESSAGE)
                continue;
            CHECK(e.conn == c);
            CHECK(e.msg.type() == 2);
            CHECK(e.msg.front() == "ping " + std::to_string(e.msg.tid()));
            replies++;
        }
    }
    CHECK(replies == 100 && fast == 100);
    CHECK(c.info().peer_type == MSGR_ENTITY_OSD);
    CHECK(c.peer_name() == "osd.2");
    for (int i = 0; i < 100 && accepted == 0; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(accepted == 1);
    for (int i = 0; i < 200 && srv.callback_exceptions() == 0; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(srv.callback_exceptions() == 1);
    c = msgr::connection(); // drops the reference
    try {
        srv.shutdown();
        CHECK(false);
    } catch (const std::runtime_error &e) {
        CHECK(std::string(e.what()) == "boom");
    }
    cli.shutdown();
    std::printf("cpp_wrapper: ok\n");
    return 0;
}
