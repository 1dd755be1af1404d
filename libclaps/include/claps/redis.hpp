// claps/redis.hpp - Redis for several clapsd nodes (target claps::redis).
//
// Three pieces, all on a caller-supplied uv_loop_t, none starting a thread:
//   redis_client  one command connection to the Redis master, found directly
//                 (redis://) or through Sentinel, or on Redis Cluster one per
//                 master, routed by key slot; every request carries a
//                 deadline, so a stopped or partitioned master fails requests
//                 with errc::store_timeout instead of hanging them.
//   redis_bus     pub/sub between nodes on its own connection: one channel
//                 per article, subscribed only while local viewers watch it;
//                 sharded pub/sub (SSUBSCRIBE) on Redis Cluster.
//   redis_store   a claps::store that wraps the node's local store (LMDB),
//                 its journal: it decides each tick's claps across nodes in
//                 Redis (the exact cap and op ids), and writes this node's
//                 absolute, versioned values there.
//
// hiredis 0.14 has no async timeouts, no Sentinel client, no cluster support
// and no sharded pub/sub; all are done here. hiredis types never appear in
// this header.
//
// Handle rule (libuv's): destroying a client, bus or store closes its uv
// handles; the loop must run once more before uv_loop_close() so the close
// callbacks can free them. Destroy in reverse order of construction
// (store, bus, client), or close() the store first when an engine must keep
// it a while longer. Outstanding requests fail with store_disconnected when
// their client is destroyed.
//
// Thread rule: everything here belongs to the loop's thread.
#pragma once

#include <claps/store.hpp>
#include <claps/time.hpp>

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace claps {

struct redis_endpoint {
  std::string host;  // an IP address or a name (resolved with uv_getaddrinfo)
  std::uint16_t port = 6379;
};

/// Where Redis is and how patient to be with it.
struct redis_options {
  /// The master's address when `sentinels` is empty.
  redis_endpoint address{"127.0.0.1", 6379};
  /// Sentinel mode when not empty: each is asked in turn for `master_name`.
  std::vector<redis_endpoint> sentinels;
  /// Redis Cluster mode when not empty (then `address`, `sentinels` and
  /// `database` are not used): the seed nodes, any of which (master or
  /// replica) is asked for the slot map. See redis_client for the rules.
  std::vector<redis_endpoint> cluster;
  std::string master_name;
  /// AUTH [username] password sent to sentinels (their requirepass or ACL
  /// user), when sentinel_password is not empty.
  std::string sentinel_username;
  std::string sentinel_password;
  /// AUTH [username] password after connecting, when password is not empty.
  std::string username;
  std::string password;
  /// SELECT after connecting, when not 0.
  int database = 0;
  /// Connecting (TCP, AUTH, SELECT, ROLE) must finish within this.
  millis connect_timeout{2000};
  /// Every request must be answered within this; otherwise the connection is
  /// dropped and every outstanding request fails (store_timeout).
  millis request_timeout{2000};
  /// Reconnect delay: doubles from min to max after each failed attempt.
  millis reconnect_min{50};
  millis reconnect_max{2000};
};

/// Parses `redis://[[user]:password@]HOST[:PORT][/DB]` into `out` (address,
/// credentials, database), leaving the rest of `out` as it was.
/// Errors: std::errc::invalid_argument with nothing changed.
std::error_code parse_redis_url(std::string_view url, redis_options& out);

/// Parses `HOST:PORT,HOST:PORT,...` into out.sentinels and sets master_name.
/// Errors: std::errc::invalid_argument (empty list, bad port, empty name).
std::error_code parse_redis_sentinels(std::string_view list, std::string_view master_name,
                                      redis_options& out);

/// Parses `HOST:PORT,HOST:PORT,...` (port 6379 when left out) into
/// out.cluster, the seed nodes of a Redis Cluster.
/// Errors: std::errc::invalid_argument (empty list or item, bad port), with
/// nothing changed.
std::error_code parse_redis_cluster(std::string_view list, redis_options& out);

/// The Redis Cluster hash slot of `key` (0-16383): CRC16/XMODEM of the key
/// mod 16384, where a key holding "{...}" with at least one character between
/// its first '{' and the next '}' hashes only that part (the hash tag), so
/// that "t:{A}" and "u:{A}:U" share article A's slot.
std::uint16_t redis_key_slot(std::string_view key) noexcept;

/// A Redis reply, copied out of hiredis.
struct redis_reply {
  enum class kind : std::uint8_t { nil, status, error, integer, string, array };
  kind type = kind::nil;
  std::int64_t integer = 0;
  std::string str;  // status, error and string replies
  std::vector<redis_reply> elements;

  bool is_error() const noexcept { return type == kind::error; }
};

/// Called exactly once per accepted request: with a reply (which may be a
/// Redis error reply) or with store_timeout / store_disconnected.
using redis_reply_handler = std::function<void(std::error_code, const redis_reply&)>;

struct redis_client_callbacks {
  /// Connected and ready (authenticated, database selected, ROLE is master).
  std::function<void(const redis_endpoint& master)> connected;
  /// The connection was lost or given up; the client is reconnecting.
  std::function<void(std::error_code)> disconnected;
};

struct redis_client_stats {
  std::uint64_t connects = 0;     // times the client became ready
  std::uint64_t disconnects = 0;  // times a ready connection was lost
  std::uint64_t timeouts = 0;     // connections dropped for a missed deadline
  std::uint64_t requests = 0;
  std::uint64_t failed_requests = 0;
  std::uint64_t switch_announcements = 0;  // Sentinel +switch-master for our master
  std::uint64_t not_master = 0;            // servers found not (or no longer) a writable master:
                                           // ROLE not master, or READONLY/MASTERDOWN/LOADING replies
  // Redis Cluster only:
  std::uint64_t moved = 0;               // MOVED replies followed
  std::uint64_t ask = 0;                 // ASK replies followed (ASKING, then the command)
  std::uint64_t tryagain = 0;            // TRYAGAIN and CLUSTERDOWN replies retried after a short delay
  std::uint64_t slot_map_refreshes = 0;  // CLUSTER SLOTS answers read
};

class redis_client;
namespace detail {
class cluster_router;
/// The client's router in cluster mode, else null (for the bus and store).
cluster_router* cluster_router_of(const redis_client& client) noexcept;
}  // namespace detail

/// One command connection to the Redis master. Reconnects by itself, with
/// backoff; in Sentinel mode it rediscovers the master before every connect
/// and also listens to +switch-master on every sentinel, so it moves as soon
/// as a failover is announced. A READONLY, MASTERDOWN or LOADING reply (the
/// server was demoted or is not ready) drops the link and rediscovers too.
///
/// Redis Cluster mode (options.cluster not empty): one command connection
/// per master, found with CLUSTER SLOTS asked of a ready master or else of
/// a seed or any node of an earlier map (in turn, each given connect_timeout).
///   - Routing: command() goes to the master owning the slot of args[1]
///     (redis_key_slot): every command must name its key there, as GET, SET,
///     HGETALL, SPUBLISH do. eval() goes to the master of keys_and_args[0]
///     and needs key_count >= 1; all its keys must share that slot (Redis
///     refuses with CROSSSLOT otherwise). Keyless commands (a single
///     argument, or eval() with no key) fail at once with errc::bad_request.
///   - MOVED is followed at once (the slot is remembered, the whole map is
///     asked again), ASK sends ASKING and the command pipelined on the
///     named master's link without changing the map, TRYAGAIN and
///     CLUSTERDOWN are retried every 50 ms; all of it within the request's
///     request_timeout (then errc::store_timeout), at most 8 redirects.
///     A link still connecting to the new owner is waited for the same way.
///   - EVALSHA's NOSCRIPT fallback works per master: a promoted replica or a
///     new master answers NOSCRIPT once and gets the source with EVAL.
///   - The slot map is asked again after a redirect, at once when a master's
///     link is lost (a failover promotes a replica at another address: the
///     old link stops answering), every 250 ms while not ready and every 5 s
///     while ready (masters added later).
///   - Ready (`connected`) when the map covers all 16384 slots and every
///     master's link is ready (AUTH done, ROLE master); `disconnected` as
///     soon as one of them is lost. The state is the whole cluster's: a
///     caller cannot use the healthy masters while one slot's master is
///     failing over (no per-slot degradation).
///   - `connected` names master(): the owner of slot 0.
class redis_client {
public:
  /// Starts connecting at once. `loop` must outlive the client.
  redis_client(uv_loop_t* loop, redis_options options, redis_client_callbacks callbacks = {});
  ~redis_client();
  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  /// Sends a command. When it returns an error (store_disconnected while not
  /// ready) the handler is never called; otherwise it is called exactly once,
  /// later, from the loop, never from inside command().
  std::error_code command(std::span<const std::string_view> args, redis_reply_handler done);
  std::error_code command(std::initializer_list<std::string_view> args, redis_reply_handler done);

  /// Runs a Lua script by SHA1 (EVALSHA), falling back to EVAL with the
  /// source when the server answers NOSCRIPT (after a failover or flush).
  /// `keys_and_args` are KEYS followed by ARGV; `key_count` of them are keys.
  std::error_code eval(std::string_view script, std::size_t key_count,
                       std::span<const std::string> keys_and_args, redis_reply_handler done);

  /// More observers of connection state (the store and bus use this).
  /// Callbacks run from the loop; remove before the observer dies.
  std::uint64_t add_listener(redis_client_callbacks callbacks);
  void remove_listener(std::uint64_t id);

  /// True between `connected` and `disconnected`.
  bool ready() const noexcept;
  /// The master currently connected to (empty host when none); in cluster
  /// mode the owner of slot 0 in the current slot map.
  const redis_endpoint& master() const noexcept;
  /// Every master of the current slot map (cluster mode; otherwise master()
  /// alone while connected, or nothing).
  std::vector<redis_endpoint> masters() const;
  redis_client_stats stats() const noexcept;
  const redis_options& options() const noexcept;

private:
  friend detail::cluster_router* detail::cluster_router_of(const redis_client& client) noexcept;
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct redis_bus_callbacks {
  /// A message published on a watched article's channel.
  std::function<void(std::string_view article, std::string_view payload)> message;
  /// All watched channels are subscribed again after a reconnect: messages
  /// may have been missed, so the caller should resync what it shows.
  std::function<void()> resubscribed;
  /// Health of the subscription connection: empty when healthy.
  std::function<void(std::error_code)> status;
};

struct redis_bus_stats {
  std::uint64_t messages = 0;  // received on watched channels
  std::uint64_t published = 0;
  std::uint64_t subscribes = 0;    // SUBSCRIBE commands sent
  std::uint64_t unsubscribes = 0;  // UNSUBSCRIBE commands sent
  std::uint64_t resubscribes = 0;  // reconnects after which everything was resubscribed
  std::size_t channels = 0;        // gauge: articles watched
};

/// Fan-out between nodes over Redis pub/sub. Subscriptions live on a
/// dedicated connection (a subscribed connection may send nothing else);
/// publishing goes through the command client, whose master the
/// subscription connection follows. On Redis Cluster (the client's
/// options().cluster) it is sharded pub/sub: SPUBLISH through the client,
/// routed by the channel's slot, and SSUBSCRIBE on one subscriber connection
/// per master, each channel on the master owning its slot; when a slot moves
/// (Redis drops its channels with an unsolicited sunsubscribe, or a master
/// fails over) the bus re-reads the slot map, subscribes where the slot is
/// now and calls `resubscribed`. healthy() is then: the slot map is complete
/// and every master's subscriber connection is ready. The `subscribes` and
/// `unsubscribes` stats count SSUBSCRIBE/SUNSUBSCRIBE commands there. Channel of an article:
/// `<prefix>{<article>}`, "claps:ch:{<article>}" by default: the hash tag
/// puts it in the article's slot (see Redis Cluster below). Delivery is at
/// most once: after a reconnect `resubscribed` tells the caller to resync.
class redis_bus {
public:
  /// `publisher` must outlive the bus. The subscription connection uses
  /// publisher.options(). Starts connecting at once.
  redis_bus(uv_loop_t* loop, redis_client& publisher, redis_bus_callbacks callbacks = {},
            std::string channel_prefix = "claps:ch:");
  ~redis_bus();
  redis_bus(const redis_bus&) = delete;
  redis_bus& operator=(const redis_bus&) = delete;

  /// Subscribes to `article`'s channel; already subscribed: nothing happens.
  /// Who watches what is counted by the engine alone (redis_store calls this
  /// when an article gains its first local watcher).
  void watch(std::string_view article);
  /// Unsubscribes from `article`'s channel. Unknown: ignored.
  void unwatch(std::string_view article);
  /// True while `article`'s channel is (to be) subscribed.
  bool watching(std::string_view article) const;

  /// More observers (the store uses this). Remove before the observer dies.
  std::uint64_t add_listener(redis_bus_callbacks callbacks);
  void remove_listener(std::uint64_t id);

  /// PUBLISHes `payload` on the article's channel (fire and forget).
  /// Errors: store_disconnected while the command client is not ready.
  std::error_code publish(std::string_view article, std::string_view payload);

  /// True while the subscription connection is ready and subscribed.
  bool healthy() const noexcept;
  redis_bus_stats stats() const noexcept;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct redis_store_options {
  /// This node's id: 1-128 bytes of [A-Za-z0-9._:-], stable across restarts.
  std::string node_id;
  /// Who may write as node_id: an id kept with this node's local data (clapsd
  /// keeps a random one in its data directory). When set, the store claims
  /// node_id for this owner in Redis on every connect (node:{id}, never
  /// expires) before writing anything. If another owner holds it - a second
  /// process or a second data directory started with the same node id - the
  /// store writes nothing to Redis, stays degraded and reports
  /// callbacks.node_id_taken, so the two can never overwrite each other's
  /// per-node values. Empty: no claim (the caller guarantees uniqueness).
  std::string owner;
  /// Prefix of every key, channel and script argument this store writes.
  std::string key_prefix = "claps:";
  /// The per-user cap the arbitration enforces across nodes (match the engine's).
  std::int32_t clap_cap = 50;
  /// How long a cross-node op id is remembered (match the engine's window).
  millis op_id_window{std::chrono::minutes(15)};
  /// A node's viewer counts expire this long after its last heartbeat, so a
  /// crashed node's viewers vanish within viewer_ttl + refresh_interval.
  millis viewer_ttl{20000};
  /// How often this node re-writes its viewer counts and its heartbeat in
  /// the table of nodes (redis_store::nodes()).
  millis heartbeat_interval{5000};
  /// How often remote totals and viewers of watched articles are re-read
  /// (heals lost pub/sub messages and expires crashed nodes' viewers). Parts
  /// loaded for an unwatched article (load()) are trusted this long.
  millis refresh_interval{5000};
  /// Keys written within this window are re-asserted after every reconnect,
  /// healing writes an asynchronous failover dropped. Losses older than that
  /// are found by the marker (see the class comment) and healed by a full
  /// walk of the journal. Older keys are forgotten as new ones are written.
  millis reassert_window{std::chrono::minutes(5)};
  /// How long an op id's record stays pending (written by arbitrate(), not
  /// yet confirmed after the local commit). A node that dies in between
  /// holds the op id that long; other nodes answer errc::unavailable
  /// meanwhile. Past it, the next node asked for that op id takes it over:
  /// it subtracts the op from the dead node's values in Redis (while they
  /// still carry the version the decision wrote) and applies it afresh, so
  /// the resent op counts once even if the dead node never returns. A node
  /// that returns later with the op in its journal (it committed, then died
  /// before the client saw the ack, and stayed away longer than this) counts
  /// it a second time: keep this well above a commit's worst latency and a
  /// restart's duration.
  millis pending_ttl{30000};
  /// Most articles one arbitration script call decides; a tick with more
  /// takes several calls. 0: no limit. One master (also behind Sentinel)
  /// takes any keys in one call, so a call's fixed cost is paid once per
  /// tick. On Redis Cluster every key of a call must share one hash slot:
  /// the store sorts the tick's articles by slot and also ends a call where
  /// the slot changes, so any value works there.
  std::size_t max_articles_per_script = 128;
  /// Journal rows read per step of a full re-assertion; each step's writes
  /// are paced with the other background requests.
  std::size_t reassert_page = 256;
  /// Versions reserved in the local store at a time (one durable write each).
  std::uint64_t version_block = 4096;
  /// Most keys remembered as dirty (unwritten to Redis) and, separately, as
  /// recent. Past it all recent keys are forgotten and new dirty keys are
  /// forgotten and counted; a full walk of the journal then writes them.
  std::size_t max_remembered_keys = 1'000'000;
};

struct redis_store_callbacks {
  /// Entering (true) or leaving (false) degraded mode: Redis unreachable or
  /// missing some of this node's keys; commits acknowledged as durability::local.
  std::function<void(bool degraded)> degraded;
  /// Another owner holds options.node_id (see redis_store_options::owner);
  /// `holder` is its owner id. Checked again on every reconnect.
  std::function<void(std::string_view holder)> node_id_taken;
};

struct redis_store_stats {
  std::uint64_t commits = 0;
  std::uint64_t cluster_commits = 0;       // acknowledged as durability::cluster
  std::uint64_t local_commits = 0;         // acknowledged as durability::local (degraded)
  std::uint64_t arbitrations = 0;          // arbitrate() calls sent
  std::uint64_t arbitration_scripts = 0;   // script calls they took (one per article)
  std::uint64_t arbitration_failures = 0;  // script calls that failed: their ops were decided locally
  std::uint64_t op_retries = 0;            // ops whose op id another node was still applying
  std::uint64_t op_takeovers = 0;          // ops applied after another node's pending record passed its
                                           // deadline (that node never committed them; its count was undone)
  std::uint64_t stale_writes = 0;          // writes Redis ignored: an equal or newer version was there
  std::uint64_t reasserts = 0;             // keys re-written after a reconnect or from the journal
  std::uint64_t journal_walks = 0;         // full re-assertions of the journal completed
  std::uint64_t remote_op_conflicts = 0;   // op ids another node had already used
  std::uint64_t cross_node_replays = 0;    // ops answered with another node's result
  std::uint64_t cap_overshoot = 0;         // claps over the cap across nodes (outage overlap)
  std::uint64_t published = 0;
  std::uint64_t remote_messages = 0;
  std::uint64_t forgotten_keys = 0;  // dirty keys dropped past max_remembered_keys
  std::size_t dirty_keys = 0;        // gauge: waiting to be written to Redis
  std::size_t recent_keys = 0;       // gauge: written within reassert_window (re-asserted after a reconnect)
  bool degraded = false;             // gauge
  bool node_id_taken = false;        // gauge: another owner holds node_id
  bool walking_journal = false;      // gauge: a full re-assertion is in progress
};

/// One node sharing Redis with this store, as the store knows it now
/// (redis_store::nodes()).
struct redis_node_info {
  std::string node_id;
  bool self = false;  // this store's own node
  /// Milliseconds since the node's last heartbeat (Redis's clock, as read at
  /// this store's last heartbeat, plus the time since); empty while this
  /// store has not read the table of nodes, or the node is not in it.
  std::optional<std::uint64_t> heartbeat_age_ms;
  /// Heard from within viewer_ttl: Redis still counts its viewers.
  bool live = false;
  /// Its part of the totals and its viewers, summed over the articles this
  /// store holds parts of (watched here, or loaded lately), and how many
  /// those are. Not the node's claps on every article: nobody reads those.
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
  std::size_t articles = 0;
};

/// A claps::store for one node of several: the exact cap and op ids across
/// nodes, and the other nodes' totals and viewers, with the node's own local
/// store (LMDB) as its journal, the source of truth for its claps.
///
/// Use it as an engine's store; the engine then does the rest (see
/// <claps/store.hpp>): each tick it hands the store its queued claps and undos
/// (arbitrate()), which decides them in Redis in one script call (so at most
/// one round trip per tick; see max_articles_per_script). For each op the
/// script claims its op id, applies the cap over every node's claps of the
/// user, and writes this node's new absolute values with a fresh version;
/// every key of one article shares the article's hash slot. Then the engine commits the decided batch
/// (commit()): to the local store first, then the op ids' records are
/// confirmed and the new totals published. The ack says durability::cluster
/// when Redis decided and holds every op of the batch.
///
/// A crash between the script and the local commit leaves Redis counting
/// claps the journal lacks; they were never acknowledged, and the node's
/// re-assertion at start overwrites them (every re-assertion carries a
/// version higher than any the node sent: versions come from blocks reserved
/// durably in the local store). Their op records stay pending until
/// options.pending_ttl, so no node replays them.
///
/// With Redis unreachable, arbitrate() fails and the engine decides locally:
/// the cap minus the other nodes' last known claps (overshoot is at most cap
/// x nodes and counted in cap_overshoot once Redis is back). The batch's keys
/// are remembered as dirty and re-asserted once Redis is back.
///
/// The journal re-asserts itself: at start, a full walk of the local store
/// writes every total, tally and op record this node holds (paced with the
/// other background requests); then a marker key says that this master holds
/// everything (on Redis Cluster one marker per master, each in a slot that
/// master owns, since each holds only its slots of the journal). After every reconnect the keys written within
/// options.reassert_window are written again (an asynchronous failover may
/// have dropped them), and when the marker is missing (Redis came back empty,
/// or a replica that never had it was promoted) the journal is walked in full
/// again.
///
/// Redis keys (prefix "claps:"), all of one article on the article's slot:
///   t:{A}        hash  node -> "version:total"   this node's part of article A
///   u:{A}:U      hash  node -> "version:claps"   user U's claps on A via node
///   v:{A}        hash  node -> "viewers:expires_ms" (Redis TIME based)
///   o:{A}:U:OP   string "version:deadline/node|P|accepted|mine" (pending) or "node|C|..."
///                (confirmed), op id OP of user U on A
///   node:{N}     string owner of node id N (redis_store_options::owner)
///   hb:{nodes}   hash  node -> last heartbeat, ms by Redis TIME (the table of nodes)
///   mark:{N}     string this node's marker: Redis holds its whole journal
///   mark:{N#k}   the same on Redis Cluster, one per master: k is the smallest
///                number whose slot that master owns
///   ch:{A}       pub/sub channel (the bus's), payload "node version total viewers"
///
/// Commits complete later, from the loop: before destroying the engine, flush
/// it and run the loop until engine::idle().
class redis_store final : public store {
public:
  /// `local`, `client` and `bus` must outlive the store. `options.node_id`
  /// must be a valid id (asserted).
  redis_store(uv_loop_t* loop, store& local, redis_client& client, redis_bus& bus,
              redis_store_options options, redis_store_callbacks callbacks = {});
  ~redis_store() override;
  redis_store(const redis_store&) = delete;
  redis_store& operator=(const redis_store&) = delete;

  // ---- claps::store ----
  std::error_code read_total(std::string_view article, std::int64_t& total) override;
  std::error_code read_tally(std::string_view user, std::string_view article, std::int32_t& claps) override;
  std::error_code read_op(std::string_view user, std::string_view article, std::string_view op_id,
                          stored_op& out, bool& found) override;
  void commit(const commit_batch& batch, commit_handler done) override;
  std::error_code reserve_versions(std::uint64_t count, std::uint64_t& first) override;
  std::error_code read_journal(journal_table table, std::string_view after, std::size_t max,
                               std::vector<journal_row>& out, std::string& next) override;
  std::int32_t remote_tally(std::string_view user, std::string_view article) override;
  bool remote_part(std::string_view article, std::int64_t& total, std::uint32_t& viewers) override;
  bool arbitrates() const override { return true; }
  std::error_code arbitrate(std::span<const op_intent> intents, arbitrate_handler done) override;
  void room_changed(std::string_view article, bool watched, std::uint32_t viewers) override;
  void attach(store_listener* listener) override;
  /// The local store's (the journal's): a node whose journal is short of
  /// space refuses new keys, since every op it decides must land there.
  store_space space() const override;

  // ---- reads of articles no local viewer watches ----

  /// Loads the other nodes' parts of `articles` (and `user`'s claps through
  /// them, when `user` is not empty) once, so that the engine's next
  /// snapshot or read of them is global (snapshot::global). Call it before
  /// engine::subscribe() or engine::read() when loaded() is false. `done`
  /// runs once, later, from the loop, with the first error if any (the
  /// parts of those articles then stay unknown). Errors (and then `done`
  /// never runs): store_disconnected while Redis is not ready; bad_request
  /// for an empty list.
  std::error_code load(std::string_view user, std::span<const std::string_view> articles,
                       std::function<void(std::error_code)> done);
  /// True when snapshots of `articles` would be global now, without load():
  /// this node watches them or read them within refresh_interval, and no
  /// `user` is asked about (a user's claps through other nodes are always
  /// read afresh).
  bool loaded(std::string_view user, std::span<const std::string_view> articles);

  /// Stops all work with Redis and closes the store's uv handles, so that the
  /// client and bus may be destroyed (and the loop closed) while an engine
  /// still holds this store: from then on commits are local only (and
  /// acknowledged durability::local), arbitrate() and load() fail with
  /// store_disconnected, and room changes are ignored. Idempotent; the
  /// destructor calls it.
  void close();

  /// True while commits are only locally durable, or Redis lacks some of
  /// this node's keys.
  bool degraded() const noexcept;
  /// Every node this store knows of, sorted by id, this one included: those
  /// in Redis's table of nodes (each node writes its heartbeat there every
  /// heartbeat_interval with one script call, which returns the table; an id
  /// silent for a day is dropped) and those whose parts it holds. Reads no
  /// Redis: the table is as of this store's last heartbeat. Loop thread only;
  /// the result is a copy.
  std::vector<redis_node_info> nodes() const;
  redis_store_stats stats() const noexcept;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace claps
