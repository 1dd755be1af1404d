// ws_session.hpp - one WebSocket connection: its identity, inbound
// reassembly, rate limit, and the gated output path.
//
// Output rule (the fan-out design, see issue 5): a tick update is written
// straight from the tick with lws_write() when the connection holds no unsent
// data (lws_partial_buffered() == 0 and nothing queued). Otherwise tick
// updates collapse into "latest count per article" (counts are state, not
// events) and are flushed from LWS_CALLBACK_SERVER_WRITEABLE as one frame.
// Replies (acks, errors, snapshots, hello) are held until the end of the loop
// pass that made them (reply_flush_list) or the next tick update, whichever
// comes first, then written together, in order: as "batch" frames when the
// client asked for ?batch=1 (each as large as lws writes in one send()), else
// one frame each. Past --slow-client-bytes of
// unsent output the client is closed with 1008.
#pragma once
#include <memory>

#include "metrics.hpp"
#include "subscribers.hpp"
#include "client_address.hpp"

#include <libwebsockets.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace claps::server {

struct session_limits {
  std::size_t max_message_bytes = 4096;
  std::size_t slow_client_bytes = 256 * 1024;
  /// Text frames are framed here and sent with one send() when lws holds no
  /// unsent output (lws takes over only what the kernel did not accept);
  /// false sends every frame through lws_write(). See write_frame().
  bool direct_writes = true;
};

/// Sessions holding replies made in the current loop pass. The owner
/// (ws_service) writes them out once the pass's callbacks are done, so a
/// tick's worth of acks to one connection leaves together.
struct reply_flush_list {
  std::vector<std::uint64_t> ids;
  /// Called when the list gets its first id: arm the end-of-pass flush.
  std::function<void()> arm;
};

/// A subscribe waiting for the other nodes' parts (several nodes): an
/// unsubscribe that arrives meanwhile takes its articles out of it, so the
/// subscription does not outlive the client's wish.
struct pending_subscribe {
  std::vector<std::string> articles;
  bool reading = true;
  std::string id;
};

class ws_session final : public endpoint {
public:
  /// `user` must outlive the session: clapsd passes client_limits'
  /// copy (admitted_user()), which lives while the connection is counted.
  ws_session(lws* wsi, const std::string& user, ip_address address, const session_limits& limits,
             server_metrics& metrics, reply_flush_list& flushes, std::uint64_t now_ms, bool batch_replies);

  lws* wsi() const noexcept { return wsi_; }
  /// The subscriber id endpoint_registry::add() gives a session: its
  /// address, so the session need not store it.
  std::uint64_t id() const noexcept {
    return reinterpret_cast<std::uintptr_t>(static_cast<const endpoint*>(this));
  }
  /// Its index in ws_service's list of sessions (swap-removed on close).
  std::uint32_t slot() const noexcept { return slot_; }
  void set_slot(std::uint32_t slot) noexcept { slot_ = slot; }
  const std::string& user() const noexcept { return *user_; }
  /// The client's address (through --trusted-proxy), counted in client_limits.
  const ip_address& address() const noexcept { return address_; }
  /// Subscribes waiting for the other nodes' parts (several nodes only).
  std::span<const std::shared_ptr<pending_subscribe>> pending_subscribes() const noexcept;
  void add_pending_subscribe(std::shared_ptr<pending_subscribe> p);
  void remove_pending_subscribe(const std::shared_ptr<pending_subscribe>& p);
  bool closing() const noexcept { return closing_; }
  /// Closing, or told to close once its queued output is out (shutdown).
  bool leaving() const noexcept { return closing_ || close_when_flushed_; }

  // ---- input ----
  enum class rx_status { partial, complete, too_large };
  /// Feeds one chunk from LWS_CALLBACK_RECEIVE. On `complete`, `message`
  /// views the whole message until release_message().
  rx_status receive(const char* data, std::size_t len, bool message_complete, std::string_view& message);
  void release_message();

  // ---- output ----
  /// Queues a reply frame (built with begin_frame()) for the end of this
  /// loop pass.
  void send_reply(std::string frame);
  /// Writes the queued replies now, unless lws still holds unsent output
  /// (then the writeable callback does). Called at the end of a loop pass.
  void flush_replies();
  void on_update(std::span<const article_update* const> updates, tick_scratch& scratch) override;
  /// Queues the ack and records its latency since `received` (claps_ack_latency_seconds).
  void on_result(const op_result& result, std::string_view op_id, op_received_at received) override;
  void on_refused(std::error_code ec, std::string_view op_id) override;
  /// LWS_CALLBACK_SERVER_WRITEABLE; returns what the callback should return.
  int on_writeable();

  /// Closes from anywhere (also outside lws callbacks) with a close code.
  void close_now(lws_close_status code, std::string_view reason);
  /// Closes with 1001 once queued output is written and every clap or undo
  /// it submitted is answered, so no ack is cut off by the close.
  void close_when_flushed();
  /// A clap or undo of this session went to the engine; on_result() or
  /// on_refused() answers it.
  void op_submitted() noexcept {
    if (ops_unanswered_ < UINT16_MAX) ++ops_unanswered_;
  }
  /// lws is closing the connection itself (the peer sent a close, or lws
  /// failed the connection and sends its own): replies already held are
  /// written, then nothing more, since no data frame may follow a close
  /// frame, and later messages are ignored.
  void lws_closing();

  // ---- liveness (driven by ws_service::sweep) ----
  /// Anything from the peer (a message, a pong) proves it alive.
  void heard(std::uint64_t now_ms) noexcept { last_heard_ms_ = now_ms; }
  std::uint64_t last_heard_ms() const noexcept { return last_heard_ms_; }
  std::uint64_t last_ping_ms() const noexcept { return last_ping_ms_; }
  /// Sends a ping unless output is pending (then the peer is busy reading).
  void ping(std::uint64_t now_ms);
  /// Drops the connection without a close handshake (a silent peer).
  void drop();

private:
  bool can_write_directly() const noexcept;
  bool write_frame(char* frame, std::size_t size);  // frame includes headroom
  // lws_write() of `len` bytes; false (and closing) when the socket failed.
  bool write_through_lws(unsigned char* bytes, std::size_t len, lws_write_protocol kind);
  bool socket_failed();
  bool write_replies();
  void drop_spent_replies();
  std::size_t max_single_send_payload() const noexcept;
  void request_writeable();
  void keep_latest(const article_update& update);
  void enforce_output_bound();
  void op_answered();
  void release_output();
  void send_close_frame();
  void kill_soon(int secs);
  std::size_t unsent_bytes() const noexcept;
  void build_pending_frame(std::string& out);

  struct pending_count {
    std::string article;
    std::int64_t total;
    std::uint32_t viewers;
  };

  // An idle connection is mostly this object (issue 12): what only some
  // connections need, briefly, lives behind a pointer made when needed.
  lws* wsi_;
  int fd_ = -1;              // the socket, for direct writes
  const std::string* user_;  // client_limits' copy, shared by the user's connections
  ip_address address_;
  std::unique_ptr<std::vector<std::shared_ptr<pending_subscribe>>> pending_subscribes_;
  const session_limits& limits_;
  server_metrics& metrics_;
  reply_flush_list& flushes_;
  std::unique_ptr<std::string> rx_;     // fragments of a message larger than one read
  std::vector<std::string> replies_;    // queued replies, in order; no capacity while empty
  std::vector<pending_count> pending_;  // collapsed tick updates
  std::size_t reply_bytes_ = 0;
  std::size_t pending_bytes_ = 0;
  std::size_t inflight_bytes_ = 0;  // size of the frame lws holds partly unsent
  std::uint64_t last_heard_ms_ = 0;
  std::uint64_t last_ping_ms_ = 0;
  bool writeable_requested_ = false;
  bool closing_ = false;
  bool close_when_flushed_ = false;
  bool close_frame_sent_ = false;
  bool batch_replies_ = false;  // ?batch=1: several replies go as one frame
  bool flush_listed_ = false;   // in flushes_ for this pass
  std::uint16_t close_code_ = LWS_CLOSE_STATUS_NORMAL;
  std::uint16_t ops_unanswered_ = 0;  // fits the padding before slot_; the rate limit keeps it small
  std::uint32_t slot_ = 0;
  const char* close_reason_ = "";
};

}  // namespace claps::server
