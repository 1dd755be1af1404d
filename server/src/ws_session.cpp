#include "ws_session.hpp"

#include "frames.hpp"

#include <claps/error.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <sys/socket.h>

namespace claps::server {
namespace {
// An estimate of one collapsed item's encoded size beyond its article id.
constexpr std::size_t item_overhead = 48;
// How long a slow consumer past its byte bound has to take its 1008 close.
constexpr int slow_close_grace_s = 5;
// How long a client has to answer our close frame.
constexpr int close_ack_timeout_s = 3;
// lws 4.1 keeps LWS_WRITE_CLOSE (the close opcode, 4) out of its public
// enum; its ws writer frames it like any other opcode.
constexpr auto lws_write_close = static_cast<lws_write_protocol>(4);
}  // namespace

ws_session::ws_session(lws* wsi, const std::string& user, ip_address address, const session_limits& limits,
                       server_metrics& metrics, reply_flush_list& flushes, std::uint64_t now_ms,
                       bool batch_replies)
    : wsi_(wsi),
      user_(&user),
      address_(address),
      limits_(limits),
      metrics_(metrics),
      flushes_(flushes),
      last_heard_ms_(now_ms),
      last_ping_ms_(now_ms),
      batch_replies_(batch_replies) {
  fd_ = static_cast<int>(lws_get_socket_fd(wsi));
  hot_peer = wsi;
}

void ws_session::ping(std::uint64_t now_ms) {
  // Record the ping only once it is written: a ping skipped behind buffered
  // output is retried by the next sweep, instead of 25 s later (past the
  // idle limit, which dropped healthy viewers).
  if (closing_ || lws_partial_buffered(wsi_)) return;
  last_ping_ms_ = now_ms;
  // A payload, because lws 4.1 reports no LWS_CALLBACK_RECEIVE_PONG for an
  // empty pong.
  unsigned char frame[LWS_PRE + 1];
  frame[LWS_PRE] = 'p';
  lws_write(wsi_, frame + LWS_PRE, 1, LWS_WRITE_PING);
}

void ws_session::drop() {
  if (closing_) return;
  closing_ = true;
  release_output();
  kill_soon(LWS_TO_KILL_ASYNC);
}

void ws_session::kill_soon(int secs) {
  lws_set_timeout(wsi_, PENDING_TIMEOUT_KILLED_BY_PARENT, secs);
  // Outside lws's own callbacks, a new lws timeout is only noticed at lws's
  // next wakeup; on a quiet loop that may be never, so wake it.
  lws_cancel_service(lws_get_context(wsi_));
}

ws_session::rx_status ws_session::receive(const char* data, std::size_t len, bool message_complete,
                                          std::string_view& message) {
  const std::size_t held = rx_ ? rx_->size() : 0;
  if (held + len > limits_.max_message_bytes) return rx_status::too_large;
  if (held == 0 && message_complete) {
    message = std::string_view(data, len);
    return rx_status::complete;
  }
  if (!rx_) rx_ = std::make_unique<std::string>();
  rx_->append(data, len);
  if (!message_complete) return rx_status::partial;
  message = *rx_;
  return rx_status::complete;
}

// A message larger than one lws read is rare: its buffer goes with it, so it
// does not stay on an idle connection.
void ws_session::release_message() { rx_.reset(); }

std::span<const std::shared_ptr<pending_subscribe>> ws_session::pending_subscribes() const noexcept {
  if (!pending_subscribes_) return {};
  return *pending_subscribes_;
}

void ws_session::add_pending_subscribe(std::shared_ptr<pending_subscribe> p) {
  if (!pending_subscribes_)
    pending_subscribes_ = std::make_unique<std::vector<std::shared_ptr<pending_subscribe>>>();
  pending_subscribes_->push_back(std::move(p));
}

void ws_session::remove_pending_subscribe(const std::shared_ptr<pending_subscribe>& p) {
  if (!pending_subscribes_) return;
  std::erase(*pending_subscribes_, p);
  if (pending_subscribes_->empty()) pending_subscribes_.reset();
}

bool ws_session::can_write_directly() const noexcept {
  return !closing_ && replies_.empty() && pending_.empty() && !lws_partial_buffered(wsi_);
}

bool ws_session::write_frame(char* frame, std::size_t size) {
  auto* payload = reinterpret_cast<unsigned char*>(frame) + frame_headroom;
  const std::size_t len = size - frame_headroom;
  if (!limits_.direct_writes || fd_ < 0 || lws_partial_buffered(wsi_))
    return write_through_lws(payload, len, LWS_WRITE_TEXT);
  // RFC 6455 section 5.2, server to client: FIN + text opcode, no mask, and
  // the payload length in 7, 7+16 or 7+64 bits. The header goes into the
  // headroom in front of the payload, where lws_write() would put the same
  // bytes, so a frame shared by many viewers gets the same header each time.
  // lws_write() costs a role dispatch and lws_issue_raw()'s bookkeeping per
  // frame; here a frame costs one send() (13% less CPU per frame, measured:
  // benchmarks/findings.md). What the kernel does not take goes to lws as
  // raw bytes, so its buffer, its writeable callbacks and
  // lws_partial_buffered() work as before.
  std::size_t header_len = 2;
  if (len >= 126) header_len = len <= 0xffff ? 4 : 10;
  unsigned char* start = payload - header_len;
  start[0] = 0x81;
  if (header_len == 2) {
    start[1] = static_cast<unsigned char>(len);
  } else {
    start[1] = header_len == 4 ? 126 : 127;
    for (std::size_t i = 2; i < header_len; ++i)
      start[i] = static_cast<unsigned char>(std::uint64_t{len} >> (8 * (header_len - 1 - i)));
  }
  const std::size_t total = header_len + len;
  const ssize_t sent = ::send(fd_, start, total, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent == static_cast<ssize_t>(total)) return true;
  if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return socket_failed();
  const std::size_t done = sent < 0 ? 0 : static_cast<std::size_t>(sent);
  return write_through_lws(start + done, total - done, LWS_WRITE_RAW);
}

bool ws_session::write_through_lws(unsigned char* bytes, std::size_t len, lws_write_protocol kind) {
  if (lws_write(wsi_, bytes, len, kind) < 0) return socket_failed();
  if (lws_partial_buffered(wsi_)) {
    inflight_bytes_ = len;
    request_writeable();
  }
  return true;
}

bool ws_session::socket_failed() {
  // lws notices it too; CLOSED cleans up.
  closing_ = true;
  kill_soon(LWS_TO_KILL_ASYNC);
  return false;
}

void ws_session::request_writeable() {
  if (writeable_requested_) return;
  writeable_requested_ = true;
  lws_callback_on_writable(wsi_);
}

void ws_session::send_reply(std::string frame) {
  if (closing_) return;
  reply_bytes_ += frame.size();
  replies_.push_back(std::move(frame));
  if (writeable_requested_ || lws_partial_buffered(wsi_)) {
    // lws still holds output: the writeable callback sends these after it.
    request_writeable();
  } else if (!flush_listed_) {
    // Held to the end of this loop pass, so the acks of one commit (which
    // the engine completes one by one) leave together.
    flush_listed_ = true;
    flushes_.ids.push_back(id());
    if (flushes_.ids.size() == 1 && flushes_.arm) flushes_.arm();
  }
  enforce_output_bound();
}

void ws_session::flush_replies() {
  flush_listed_ = false;
  if (closing_ || replies_.empty()) return;
  if (writeable_requested_ || lws_partial_buffered(wsi_)) {
    request_writeable();
    return;
  }
  write_replies();
}

std::size_t ws_session::max_single_send_payload() const noexcept {
  // lws 4.1 writes at most tx_packet_size bytes per send(), or (when that is
  // 0) rx_buffer_size + LWS_PRE + 4 (measured: 532 bytes for 512); the rest
  // of a longer frame waits for writeable callbacks, one send() and one epoll
  // re-arm each. The frame header takes 4 bytes up to 64 KiB, 10 beyond.
  constexpr std::size_t lws_default_rx_buffer = 4096;
  const lws_protocols* protocol = lws_get_protocol(wsi_);
  std::size_t packet = protocol ? protocol->tx_packet_size : 0;
  if (packet == 0)
    packet = (protocol && protocol->rx_buffer_size ? protocol->rx_buffer_size : lws_default_rx_buffer) +
             LWS_PRE + 4;
  return packet - (packet > 65535 + 4 ? 10 : 4);
}

bool ws_session::write_replies() {
  if (batch_replies_ && replies_.size() > 1) {
    // As few frames as lws writes in one send() each: one, however many
    // replies, when tx_packet_size allows; a reply too large for that alone.
    const std::size_t limit = max_single_send_payload();
    const std::size_t wrapping = batch_prefix.size() + batch_suffix.size();
    std::size_t first = 0;
    std::string frame;
    bool ok = true;
    while (ok && first < replies_.size() && !lws_partial_buffered(wsi_)) {
      std::size_t last = first + 1;
      std::size_t bytes = wrapping + payload(replies_[first]).size();
      while (last < replies_.size() && bytes + 1 + payload(replies_[last]).size() <= limit)
        bytes += 1 + payload(replies_[last++]).size();
      if (last - first == 1) {
        ok = write_frame(replies_[first].data(), replies_[first].size());
      } else {
        begin_frame(frame);
        frame.reserve(frame_headroom + bytes);
        frame += batch_prefix;
        for (std::size_t i = first; i < last; ++i) {
          if (i != first) frame += ',';
          frame += payload(replies_[i]);
        }
        frame += batch_suffix;
        ok = write_frame(frame.data(), frame.size());
      }
      for (std::size_t i = first; i < last; ++i) reply_bytes_ -= replies_[i].size();
      first = last;
    }
    replies_.erase(replies_.begin(), replies_.begin() + static_cast<std::ptrdiff_t>(first));
    drop_spent_replies();
    if (ok && !replies_.empty()) request_writeable();
    return ok;
  }
  std::size_t sent = 0;
  bool ok = true;
  while (ok && sent < replies_.size() && !lws_partial_buffered(wsi_)) {
    std::string& frame = replies_[sent++];
    reply_bytes_ -= frame.size();
    ok = write_frame(frame.data(), frame.size());
  }
  replies_.erase(replies_.begin(), replies_.begin() + static_cast<std::ptrdiff_t>(sent));
  drop_spent_replies();
  if (ok && !replies_.empty()) request_writeable();
  return ok;
}

// Most connections reply rarely (a hello, a snapshot): an empty queue keeps
// no capacity, at the cost of one allocation for the next reply.
void ws_session::drop_spent_replies() {
  if (replies_.empty()) std::vector<std::string>().swap(replies_);
}

void ws_session::on_update(std::span<const article_update* const> updates, tick_scratch& scratch) {
  if (closing_ || updates.empty()) return;
  // The acks of this tick's commit were completed just before its updates:
  // they go first, and then the update can still take the shared frame.
  if (!replies_.empty() && !writeable_requested_ && !lws_partial_buffered(wsi_) && !write_replies()) return;
  if (can_write_directly()) {
    if (updates.size() == 1) {
      // The shared frame encoded once for every viewer. lws_write writes the
      // WebSocket header into the headroom in front of the payload; it is the
      // same header for every viewer, so sharing the buffer is safe. The
      // string is the engine's mutable encode() output, viewed as const.
      const auto encoded = updates.front()->encoded;
      write_frame(const_cast<char*>(encoded.data()), encoded.size());
    } else {
      std::string& frame = scratch.frame;
      begin_frame(frame);
      frame += counts_prefix;
      for (std::size_t i = 0; i < updates.size(); ++i) {
        if (i) frame += ',';
        frame += update_item(updates[i]->encoded);
      }
      frame += counts_suffix;
      write_frame(frame.data(), frame.size());
    }
    ++metrics_.update_frames_sent;
    return;
  }
  for (const auto* u : updates) keep_latest(*u);
  ++metrics_.update_frames_deferred;
  request_writeable();
  enforce_output_bound();
}

void ws_session::keep_latest(const article_update& update) {
  for (auto& p : pending_) {
    if (p.article == update.article) {
      p.total = update.total;
      p.viewers = update.viewers;
      return;
    }
  }
  pending_.push_back({std::string(update.article), update.total, update.viewers});
  pending_bytes_ += update.article.size() + item_overhead;
}

void ws_session::on_result(const op_result& result, std::string_view op_id, op_received_at received) {
  std::string frame;
  encode_ack(frame, result, op_id);
  ++metrics_.acks_sent;
  send_reply(std::move(frame));
  const std::chrono::duration<double> waited = std::chrono::steady_clock::now() - received;
  metrics_.ack_latency.observe(waited.count());
  op_answered();
}

void ws_session::on_refused(std::error_code ec, std::string_view op_id) {
  std::string frame;
  encode_error(frame, wire_name(ec), ec.message(), op_id, wire_reason(ec));
  send_reply(std::move(frame));
  op_answered();
}

void ws_session::op_answered() {
  if (ops_unanswered_ > 0) --ops_unanswered_;
  // The last answer a closing session waited for: its close can follow it.
  if (ops_unanswered_ == 0 && close_when_flushed_ && !closing_) request_writeable();
}

std::size_t ws_session::unsent_bytes() const noexcept {
  return inflight_bytes_ + reply_bytes_ + pending_bytes_;
}

void ws_session::enforce_output_bound() {
  if (closing_ || unsent_bytes() <= limits_.slow_client_bytes) return;
  ++metrics_.slow_client_drops;
  // Memory is released now. The close frame can only follow what lws already
  // holds, so it goes out if the client reads again within the grace period;
  // otherwise the connection is killed when the grace period ends.
  closing_ = true;
  release_output();
  close_code_ = LWS_CLOSE_STATUS_POLICY_VIOLATION;
  close_reason_ = "slow consumer: too much unsent output";
  kill_soon(slow_close_grace_s);
  request_writeable();
}

void ws_session::release_output() {
  replies_.clear();
  replies_.shrink_to_fit();
  pending_.clear();
  pending_.shrink_to_fit();
  reply_bytes_ = pending_bytes_ = 0;
}

void ws_session::build_pending_frame(std::string& out) {
  begin_frame(out);
  out += counts_prefix;
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    if (i) out += ',';
    append_count_item(out, pending_[i].article, pending_[i].total, pending_[i].viewers);
  }
  out += counts_suffix;
  pending_.clear();
  pending_bytes_ = 0;
}

void ws_session::send_close_frame() {
  // lws 4.1 on libuv kills the socket without a close frame when a writeable
  // callback returns -1, so the close frame is written here instead; lws then
  // closes when the client answers it, or at the timeout set here.
  close_frame_sent_ = true;
  std::string frame(frame_headroom, '\0');
  frame += static_cast<char>((close_code_ >> 8) & 0xff);
  frame += static_cast<char>(close_code_ & 0xff);
  frame += close_reason_;
  lws_write(wsi_, reinterpret_cast<unsigned char*>(frame.data()) + frame_headroom,
            frame.size() - frame_headroom, lws_write_close);
  lws_set_timeout(wsi_, PENDING_TIMEOUT_CLOSE_ACK, close_ack_timeout_s);
}

int ws_session::on_writeable() {
  writeable_requested_ = false;
  if (close_frame_sent_) return 0;
  if (closing_) {
    if (lws_partial_buffered(wsi_)) {
      request_writeable();
      return 0;
    }
    send_close_frame();
    return 0;
  }
  if (lws_partial_buffered(wsi_)) {
    request_writeable();
    return 0;
  }
  inflight_bytes_ = 0;
  // Replies first, in order; then the collapsed counts as one frame.
  if (!write_replies()) return -1;
  if (replies_.empty() && !pending_.empty() && !lws_partial_buffered(wsi_)) {
    std::string frame;
    build_pending_frame(frame);
    if (!write_frame(frame.data(), frame.size())) return -1;
    ++metrics_.update_frames_sent;
  }
  const bool drained = replies_.empty() && pending_.empty() && !lws_partial_buffered(wsi_);
  if (!drained) {
    request_writeable();
    return 0;
  }
  // Waiting for answers to its ops: op_answered() asks for writeable again.
  if (close_when_flushed_ && ops_unanswered_ == 0) {
    closing_ = true;
    send_close_frame();
  }
  return 0;
}

void ws_session::close_now(lws_close_status code, std::string_view reason) {
  if (closing_) return;
  closing_ = true;
  release_output();
  lws_close_reason(wsi_, code, reinterpret_cast<unsigned char*>(const_cast<char*>(reason.data())),
                   reason.size());
  // Returning -1 only works inside a callback; this works from anywhere.
  kill_soon(LWS_TO_KILL_ASYNC);
}

void ws_session::lws_closing() {
  // Replies to the messages before the one that ended the connection were
  // held for the end of this loop pass: they go now, ahead of lws's close.
  if (!closing_ && !replies_.empty() && !writeable_requested_ && !lws_partial_buffered(wsi_)) write_replies();
  closing_ = true;
  close_frame_sent_ = true;  // lws writes its own
  release_output();
}

void ws_session::close_when_flushed() {
  if (closing_ || close_when_flushed_) return;
  close_when_flushed_ = true;
  close_code_ = LWS_CLOSE_STATUS_GOINGAWAY;
  close_reason_ = "server shutting down";
  request_writeable();
}

}  // namespace claps::server
