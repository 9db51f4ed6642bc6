// msgr.hpp: header-only C++17 wrapper of libmsgr's C API (msgr.h).
//
// RAII handles (messenger, connection, message), exceptions for errors
// (msgr::error carries the MSGR_E* code), std::function dispatchers, and
// std::string_view (plus std::span under C++20) for segments. Nothing here
// is part of the C ABI: it compiles into your program against msgr.h.
//
//   msgr::messenger srv("osd.1", 1);
//   srv.add_dispatcher({.can_fast_dispatch = [](msgr::view m) { return m.type() == 1; },
//                       .fast_dispatch = [](msgr::connection &c, msgr::view m) {
//                           c.send(msgr::message(2).front(m.front())); }});
//   srv.bind("127.0.0.1:0");
//   srv.start();
//
// Threads: as in msgr.h. Callbacks run on library threads; an exception
// escaping a callback is caught there (it must not unwind into C), counted,
// and the first one is rethrown by messenger::shutdown() / wait().
#ifndef MSGR_HPP
#define MSGR_HPP

#include <msgr.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#if __cplusplus >= 202002L
#include <span>
#endif

namespace msgr {

// An MSGR_E* failure: code() is the negative code, name() its MSGR_ name,
// what() the library's detailed text (msgr_last_error).
class error : public std::runtime_error {
  public:
    error(int code, const std::string &what) : std::runtime_error(what), code_(code) {}
    int code() const noexcept { return code_; }
    const char *name() const noexcept { return msgr_err_name(code_); }

  private:
    int code_;
};

namespace detail {
inline std::string last_error_text(int code) {
    char buf[512];
    msgr_last_error(buf, sizeof buf);
    std::string s = msgr_err_name(code);
    s += ": ";
    s += buf[0] ? buf : msgr_strerror(code);
    return s;
}
} // namespace detail

// Throws msgr::error if rc is a failure; returns rc otherwise.
inline int check(int rc) {
    if (rc < 0)
        throw error(rc, detail::last_error_text(rc));
    return rc;
}

// A segment as bytes.
inline std::string_view as_string(const void *p, std::size_t n) {
    return n ? std::string_view(static_cast<const char *>(p), n) : std::string_view();
}

enum class segment : int { front = MSGR_SEG_FRONT, middle = MSGR_SEG_MIDDLE, data = MSGR_SEG_DATA };

class message;

// Read access shared by borrowed views and owned messages.
template <class Derived> class message_reader {
  public:
    uint16_t type() const noexcept { return msgr_msg_type(raw()); }
    msgr_msg_header header() const {
        msgr_msg_header h{};
        h.size = sizeof h;
        check(msgr_msg_get_header(raw(), &h));
        return h;
    }
    uint64_t tid() const { return header().tid; }
    uint64_t seq() const { return header().seq; }
    uint16_t priority() const { return header().priority; }
    std::string_view get(segment s) const {
        const void *p = nullptr;
        std::size_t n = 0;
        check(msgr_msg_get_segment(raw(), static_cast<int>(s), &p, &n));
        return as_string(p, n);
    }
    std::string_view front() const { return get(segment::front); }
    std::string_view middle() const { return get(segment::middle); }
    std::string_view data() const { return get(segment::data); }
#if __cplusplus >= 202002L
    std::span<const std::byte> bytes(segment s) const {
        auto v = get(s);
        return {reinterpret_cast<const std::byte *>(v.data()), v.size()};
    }
#endif

  private:
    const msgr_msg *raw() const noexcept { return static_cast<const Derived *>(this)->get_raw(); }
};

// A message lent to a callback: valid until the callback returns.
// keep() takes a reference and returns an owned message.
class view : public message_reader<view> {
  public:
    explicit view(const msgr_msg *m) noexcept : m_(m) {}
    const msgr_msg *get_raw() const noexcept { return m_; }
    inline message keep() const;

  private:
    const msgr_msg *m_;
};

// An owned message reference (msgr_msg_put in the destructor). Copying
// takes another reference (the copy is then read only, as in the C API).
class message : public message_reader<message> {
  public:
    explicit message(uint16_t type) { check(msgr_msg_alloc(&m_, type)); }
    message(uint16_t type, std::string_view front) : message(type) { this->front(front); }
    // Takes over one reference the caller owns (e.g. msgr_event.msg).
    static message adopt(msgr_msg *m) noexcept { return message(m, 0); }
    message(const message &o) : m_(o.m_) {
        if (m_)
            check(msgr_msg_ref(m_));
    }
    message(message &&o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
    message &operator=(message o) noexcept {
        std::swap(m_, o.m_);
        return *this;
    }
    ~message() {
        if (m_)
            msgr_msg_put(m_);
    }

    message &set(segment s, std::string_view bytes) {
        check(msgr_msg_set_segment(m_, static_cast<int>(s), bytes.data(), bytes.size()));
        return *this;
    }
    message &front(std::string_view b) { return set(segment::front, b); }
    message &middle(std::string_view b) { return set(segment::middle, b); }
    message &data(std::string_view b) { return set(segment::data, b); }
    using message_reader<message>::front;
    using message_reader<message>::middle;
    using message_reader<message>::data;
    // Zero copy: the library calls free_fn(p, hint) when done with [p, p+n).
    message &data_nocopy(void *p, std::size_t n, msgr_free_fn free_fn, void *hint) {
        check(msgr_msg_set_data_nocopy(m_, p, n, free_fn, hint));
        return *this;
    }
    // Room for n bytes in segment s, to fill in place.
    void *reserve(segment s, std::size_t n) {
        void *p = nullptr;
        check(msgr_msg_reserve_segment(m_, static_cast<int>(s), n, &p));
        return p;
    }
    message &priority(uint16_t p) {
        check(msgr_msg_set_priority(m_, p));
        return *this;
    }
    message &version(uint16_t v, uint16_t compat) {
        check(msgr_msg_set_version(m_, v, compat));
        return *this;
    }
    message &tid(uint64_t t) {
        check(msgr_msg_set_tid(m_, t));
        return *this;
    }
    using message_reader<message>::priority;
    using message_reader<message>::tid;

    msgr_msg *get() const noexcept { return m_; }
    const msgr_msg *get_raw() const noexcept { return m_; }
    // Gives up ownership of the reference (the caller must put or send it).
    msgr_msg *release() noexcept { return std::exchange(m_, nullptr); }
    explicit operator bool() const noexcept { return m_ != nullptr; }

  private:
    message(msgr_msg *m, int) noexcept : m_(m) {}
    msgr_msg *m_ = nullptr;
};

inline message view::keep() const {
    msgr_msg *m = const_cast<msgr_msg *>(m_);
    check(msgr_msg_ref(m));
    return message::adopt(m);
}

// A connection handle. A connection from messenger::connect or keep() holds
// a reference (msgr_conn_put in the destructor); the one a callback gets
// is borrowed. Calls on a stale handle throw msgr::error(MSGR_EBADF).
class connection {
  public:
    connection() noexcept = default;
    static connection borrow(msgr_conn c) noexcept { return connection(c, false); }
    static connection adopt(msgr_conn c) noexcept { return connection(c, true); }
    connection(const connection &o) : c_(o.c_), owned_(o.owned_) {
        if (owned_)
            check(msgr_conn_get(c_));
    }
    connection(connection &&o) noexcept
        : c_(std::exchange(o.c_, msgr_conn{0})), owned_(std::exchange(o.owned_, false)) {}
    connection &operator=(connection o) noexcept {
        std::swap(c_, o.c_);
        std::swap(owned_, o.owned_);
        return *this;
    }
    ~connection() {
        if (owned_)
            msgr_conn_put(c_);
    }
    // An owned reference to this connection (from a borrowed one).
    connection keep() const {
        check(msgr_conn_get(c_));
        return adopt(c_);
    }

    // Sends m; on success the library owns this reference, m becomes empty.
    void send(message &&m) {
        msgr_msg *raw = m.get();
        check(msgr_conn_send(c_, raw));
        m.release();
    }
    // Sends another reference to m (m stays yours, read only from now on).
    void send(const message &m) { send(message(m)); }
    // Sends every message in order in one call; the sent ones are released
    // from msgs (on failure msgs keeps the unsent ones and this throws).
    void send_many(std::vector<message> &msgs) {
        std::vector<msgr_msg *> raw;
        raw.reserve(msgs.size());
        for (auto &m : msgs)
            raw.push_back(m.get());
        std::size_t sent = 0;
        int rc = msgr_conn_send_many(c_, raw.data(), raw.size(), &sent);
        for (std::size_t i = 0; i < sent; i++)
            msgs[i].release();
        msgs.erase(msgs.begin(), msgs.begin() + static_cast<std::ptrdiff_t>(sent));
        check(rc);
    }
    void send_keepalive() { check(msgr_conn_send_keepalive(c_)); }
    void mark_down() { check(msgr_conn_mark_down(c_)); }
    msgr_conn_info info() const {
        msgr_conn_info i{};
        i.size = sizeof i;
        check(msgr_conn_get_info(c_, &i));
        return i;
    }
    bool is_connected() const { return info().state == MSGR_CONN_OPEN; }
    std::string peer_addr() const { return str(msgr_conn_peer_addr); }
    std::string peer_name() const { return str(msgr_conn_peer_name); }
    void set_priv(void *p) { check(msgr_conn_set_priv(c_, p)); }
    void *priv() const {
        void *p = nullptr;
        check(msgr_conn_get_priv(c_, &p));
        return p;
    }
    msgr_conn handle() const noexcept { return c_; }
    uint64_t id() const noexcept { return c_.id; }
    bool operator==(const connection &o) const noexcept { return c_.id == o.c_.id; }
    bool operator!=(const connection &o) const noexcept { return c_.id != o.c_.id; }

  private:
    connection(msgr_conn c, bool owned) noexcept : c_(c), owned_(owned) {}
    std::string str(int (*fn)(msgr_conn, char *, std::size_t)) const {
        std::string s(64, '\0');
        for (;;) {
            int rc = fn(c_, &s[0], s.size());
            if (rc == MSGR_ERANGE && s.size() < 65536) {
                s.resize(s.size() * 4);
                continue;
            }
            check(rc);
            s.resize(std::char_traits<char>::length(s.c_str()));
            return s;
        }
    }
    msgr_conn c_{0};
    bool owned_ = false;
};

// A dispatcher: set the callbacks you need (the others stay empty).
// Threads and ownership as msgr_dispatcher_ops in msgr.h.
struct dispatcher {
    std::function<bool(connection &, view)> dispatch;
    std::function<bool(view)> can_fast_dispatch;
    std::function<void(connection &, view)> fast_dispatch;
    std::function<void(connection &)> on_connect;
    std::function<void(connection &)> on_accept;
    std::function<bool(connection &)> on_reset;
    std::function<void(connection &)> on_remote_reset;
    std::function<bool(connection &)> on_refused;
};

// One pull-mode event (msgr_messenger_recv).
struct event {
    int type = 0;          // MSGR_EVENT_*
    connection conn;       // borrowed: keep() it to hold it
    void *conn_priv = nullptr;
    message msg = message::adopt(nullptr); // MSGR_EVENT_MESSAGE only
};

using option = std::pair<std::string, std::string>;

class messenger {
  public:
    using log_fn = std::function<void(int level, std::string_view line)>;

    messenger(std::string_view name, uint32_t nonce, const std::vector<option> &opts = {},
              log_fn log = {})
        : st_(std::make_unique<state>()) {
        std::string n(name);
        std::vector<msgr_option> o;
        o.reserve(opts.size());
        for (auto &kv : opts)
            o.push_back(msgr_option{kv.first.c_str(), kv.second.c_str()});
        msgr_messenger_config cfg = MSGR_MESSENGER_CONFIG_INIT;
        cfg.name = n.c_str();
        cfg.nonce = nonce;
        cfg.options = o.data();
        cfg.noptions = o.size();
        if (log) {
            st_->log = std::move(log);
            cfg.log = &messenger::log_tramp;
            cfg.log_user = st_.get();
        }
        check(msgr_messenger_create(&m_, &cfg));
    }
    messenger(messenger &&o) noexcept
        : m_(std::exchange(o.m_, msgr_messenger{0})), st_(std::move(o.st_)) {}
    messenger &operator=(messenger &&o) noexcept {
        if (this != &o) {
            destroy();
            m_ = std::exchange(o.m_, msgr_messenger{0});
            st_ = std::move(o.st_);
        }
        return *this;
    }
    messenger(const messenger &) = delete;
    messenger &operator=(const messenger &) = delete;
    ~messenger() { destroy(); }

    void set_policy(int peer_type, const msgr_policy &p) {
        check(msgr_messenger_set_policy(m_, peer_type, &p));
    }
    void set_policy(int peer_type, int kind, uint64_t features_required = 0) {
        msgr_policy p{};
        check(msgr_policy_init(&p, kind, features_required));
        set_policy(peer_type, p);
    }
    void bind(const std::string &addr) { check(msgr_messenger_bind(m_, addr.c_str())); }
    void bind_range(const std::string &addr, int min_port, int max_port) {
        check(msgr_messenger_bind_range(m_, addr.c_str(), min_port, max_port));
    }
    std::string addrs() const { return str(msgr_messenger_get_addrs); }
    std::string name() const { return str(msgr_messenger_get_name); }

    void add_dispatcher(dispatcher d, int where = MSGR_TAIL) {
        auto *h = new holder{std::move(d), st_.get()};
        msgr_dispatcher_ops ops{};
        ops.size = sizeof ops;
        if (h->d.dispatch)
            ops.dispatch = &messenger::t_dispatch;
        if (h->d.can_fast_dispatch && h->d.fast_dispatch) {
            ops.can_fast_dispatch = &messenger::t_can_fast;
            ops.fast_dispatch = &messenger::t_fast;
        }
        if (h->d.on_connect)
            ops.handle_connect = &messenger::t_connect;
        if (h->d.on_accept)
            ops.handle_accept = &messenger::t_accept;
        if (h->d.on_reset)
            ops.handle_reset = &messenger::t_reset;
        if (h->d.on_remote_reset)
            ops.handle_remote_reset = &messenger::t_remote_reset;
        if (h->d.on_refused)
            ops.handle_refused = &messenger::t_refused;
        ops.release = &messenger::t_release;
        int rc = msgr_messenger_add_dispatcher(m_, &ops, h, where);
        if (rc < 0) {
            delete h; // never registered: release will not be called
            check(rc);
        }
    }
    void add_pull(int where = MSGR_TAIL) { check(msgr_messenger_add_pull(m_, where)); }
    int event_fd() const {
        int fd = -1;
        check(msgr_messenger_event_fd(m_, &fd));
        return fd;
    }
    // Receives up to max events into out (cleared first). Returns false once
    // the messenger is shut down and drained; true otherwise (out may be
    // empty if timeout_ms passed).
    bool recv(std::vector<event> &out, std::size_t max = 64, int timeout_ms = -1) {
        out.clear();
        std::vector<msgr_event> raw(max);
        int n = msgr_messenger_recv(m_, raw.data(), raw.size(), sizeof(msgr_event), timeout_ms);
        if (n == MSGR_ESHUTDOWN)
            return false;
        if (n == MSGR_ETIMEDOUT || n == MSGR_EAGAIN)
            return true;
        check(n);
        out.reserve(static_cast<std::size_t>(n));
        for (int i = 0; i < n; i++) {
            event e;
            e.type = raw[i].type;
            e.conn = connection::borrow(raw[i].conn);
            e.conn_priv = raw[i].conn_priv;
            e.msg = message::adopt(raw[i].msg);
            out.push_back(std::move(e));
        }
        return true;
    }

    void start() { check(msgr_messenger_start(m_)); }
    void shutdown() {
        check(msgr_messenger_shutdown(m_));
        rethrow();
    }
    void wait() {
        check(msgr_messenger_wait(m_));
        rethrow();
    }
    connection connect(int peer_type, const std::string &addrs) {
        msgr_conn c{0};
        check(msgr_messenger_connect(m_, peer_type, addrs.c_str(), &c));
        return connection::adopt(c);
    }
    std::string perf_json() const {
        char *js = nullptr;
        check(msgr_messenger_perf_dump(m_, &js));
        std::string s(js);
        msgr_free(js);
        return s;
    }
    // How many exceptions escaped callbacks (each was caught at the boundary).
    std::size_t callback_exceptions() const {
        std::lock_guard<std::mutex> g(st_->mu);
        return st_->nexc;
    }
    msgr_messenger handle() const noexcept { return m_; }

  private:
    struct state {
        std::mutex mu;
        std::exception_ptr first;
        std::size_t nexc = 0;
        log_fn log;
        void caught(std::exception_ptr e) {
            std::lock_guard<std::mutex> g(mu);
            if (!first)
                first = e;
            nexc++;
        }
    };
    struct holder {
        dispatcher d;
        state *st;
    };

    void destroy() noexcept {
        if (m_.id != 0) {
            msgr_messenger_destroy(m_);
            m_.id = 0;
        }
    }
    void rethrow() {
        std::exception_ptr e;
        {
            std::lock_guard<std::mutex> g(st_->mu);
            e = std::exchange(st_->first, nullptr);
        }
        if (e)
            std::rethrow_exception(e);
    }
    std::string str(int (*fn)(msgr_messenger, char *, std::size_t)) const {
        std::string s(128, '\0');
        for (;;) {
            int rc = fn(m_, &s[0], s.size());
            if (rc == MSGR_ERANGE && s.size() < 65536) {
                s.resize(s.size() * 4);
                continue;
            }
            check(rc);
            s.resize(std::char_traits<char>::length(s.c_str()));
            return s;
        }
    }

    // Trampolines: no exception may cross into the C library.
    template <class F> static auto guarded(void *user, F &&f) noexcept -> decltype(f()) {
        auto *h = static_cast<holder *>(user);
        try {
            return f();
        } catch (...) {
            h->st->caught(std::current_exception());
            return decltype(f())();
        }
    }
    static int t_dispatch(void *u, msgr_conn c, msgr_msg *m) {
        return guarded(u, [&] {
            auto conn = connection::borrow(c);
            return static_cast<holder *>(u)->d.dispatch(conn, view(m)) ? 1 : 0;
        });
    }
    static int t_can_fast(void *u, const msgr_msg *m) {
        return guarded(u, [&] { return static_cast<holder *>(u)->d.can_fast_dispatch(view(m)) ? 1 : 0; });
    }
    static void t_fast(void *u, msgr_conn c, msgr_msg *m) {
        guarded(u, [&] {
            auto conn = connection::borrow(c);
            static_cast<holder *>(u)->d.fast_dispatch(conn, view(m));
        });
    }
    template <std::function<void(connection &)> dispatcher::*F>
    static void t_event(void *u, msgr_conn c) {
        guarded(u, [&] {
            auto conn = connection::borrow(c);
            (static_cast<holder *>(u)->d.*F)(conn);
        });
    }
    template <std::function<bool(connection &)> dispatcher::*F>
    static int t_event_bool(void *u, msgr_conn c) {
        return guarded(u, [&] {
            auto conn = connection::borrow(c);
            return (static_cast<holder *>(u)->d.*F)(conn) ? 1 : 0;
        });
    }
    static void t_connect(void *u, msgr_conn c) { t_event<&dispatcher::on_connect>(u, c); }
    static void t_accept(void *u, msgr_conn c) { t_event<&dispatcher::on_accept>(u, c); }
    static void t_remote_reset(void *u, msgr_conn c) { t_event<&dispatcher::on_remote_reset>(u, c); }
    static int t_reset(void *u, msgr_conn c) { return t_event_bool<&dispatcher::on_reset>(u, c); }
    static int t_refused(void *u, msgr_conn c) { return t_event_bool<&dispatcher::on_refused>(u, c); }
    static void t_release(void *u) { delete static_cast<holder *>(u); }
    static void log_tramp(void *u, msgr_messenger, int level, const char *line) {
        auto *st = static_cast<state *>(u);
        try {
            st->log(level, line);
        } catch (...) {
            st->caught(std::current_exception());
        }
    }

    msgr_messenger m_{0};
    std::unique_ptr<state> st_;
};

} // namespace msgr

#endif // MSGR_HPP
