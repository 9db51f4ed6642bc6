// echo.cpp: an echo server and a client in one process, with the C++
// wrapper (bindings/c/msgr.hpp, installed next to msgr.h).
//   c++ -std=c++17 echo.cpp $(pkg-config --cflags --libs msgr)
#include <msgr.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    int count = argc > 1 ? std::stoi(argv[1]) : 1000;
    try {
        // Server: answer every message on the worker thread.
        msgr::messenger server("osd.0", 0, {{"ms_async_op_threads", "2"}});
        msgr::dispatcher echo;
        echo.can_fast_dispatch = [](msgr::view) { return true; };
        echo.fast_dispatch = [](msgr::connection &c, msgr::view m) {
            c.send(msgr::message(m.type(), m.front()).tid(m.tid()));
        };
        echo.on_accept = [](msgr::connection &c) {
            std::printf("server: %s connected\n", c.peer_name().c_str());
        };
        server.add_dispatcher(std::move(echo));
        server.bind("127.0.0.1:0");
        server.start();

        // Client: pull mode, a batch of requests in one call.
        msgr::messenger client("client.1", 1);
        client.set_policy(MSGR_ENTITY_OSD, MSGR_POLICY_LOSSY_CLIENT);
        client.add_pull();
        client.start();
        msgr::connection conn = client.connect(MSGR_ENTITY_OSD, server.addrs());
        std::vector<msgr::message> batch;
        for (int i = 0; i < count; i++)
            batch.push_back(msgr::message(1, "hello " + std::to_string(i)).tid(static_cast<uint64_t>(i)));
        auto t0 = std::chrono::steady_clock::now();
        conn.send_many(batch);

        int got = 0, bad = 0;
        std::vector<msgr::event> events;
        while (got < count && client.recv(events, 128, 5000)) {
            if (events.empty())
                break; // timed out
            for (auto &e : events) {
                if (e.type != MSGR_EVENT_MESSAGE)
                    continue;
                got++;
                if (e.msg.front() != "hello " + std::to_string(e.msg.tid()))
                    bad++;
            }
        }
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        std::printf("client: %d of %d echoes, %d bad, %.1f ms\n", got, count, bad, ms);
        return got == count && bad == 0 ? 0 : 1;
    } catch (const msgr::error &e) {
        std::fprintf(stderr, "echo: %s\n", e.what());
        return 1;
    }
}
