// claps-loadgen: the load generator of the clapsd benchmarks (issue 5).
// See load_generator.hpp for the phases and latency.hpp for the latency method.
#include "load_generator.hpp"

#include <arpa/inet.h>

#include <cxxopts.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace claps::loadgen;

namespace {

bool parse_source_ips(const std::string& text, std::vector<in_addr>& out) {
  // "127.0.0.2-127.0.0.20" or "127.0.0.2,127.0.0.3"
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const std::string part =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto dash = part.find('-');
    in_addr first{}, last{};
    if (inet_pton(AF_INET, part.substr(0, dash).c_str(), &first) != 1) return false;
    last = first;
    if (dash != std::string::npos && inet_pton(AF_INET, part.substr(dash + 1).c_str(), &last) != 1)
      return false;
    for (std::uint32_t ip = ntohl(first.s_addr); ip <= ntohl(last.s_addr); ++ip) {
      in_addr addr{};
      addr.s_addr = htonl(ip);
      out.push_back(addr);
      if (out.size() > 1024) return false;
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return !out.empty();
}

void write_histogram(std::FILE* f, const char* name, const latency_histogram& h, bool more) {
  std::fprintf(
      f,
      "  \"%s\": {\"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f, \"samples\": %llu}%s\n",
      name, h.percentile_ms(0.50), h.percentile_ms(0.90), h.percentile_ms(0.99), h.percentile_ms(0.999),
      h.max_ms(), static_cast<unsigned long long>(h.count()), more ? "," : "");
}

template <class T>
void write_optional(std::FILE* f, const char* name, const std::optional<T>& value, const char* format) {
  std::fprintf(f, "  \"%s\": ", name);
  if (value) std::fprintf(f, format, *value);
  else std::fprintf(f, "null");
  std::fprintf(f, ",\n");
}

// Per-endpoint and per-process figures; with one server they repeat the totals.
void write_breakdown(std::FILE* f, const run_results& r) {
  std::fprintf(f, "  \"endpoints\": [");
  for (std::size_t i = 0; i < r.endpoints.size(); ++i) {
    const endpoint_results& e = r.endpoints[i];
    std::fprintf(
        f,
        "%s\n    {\"url\": \"%s\", \"viewers\": %u, \"clappers\": %u, \"frames_received\": %llu, "
        "\"update_frames\": %llu, \"updates_received\": %llu, \"acks\": %llu}",
        i ? "," : "", e.url.c_str(), e.viewers, e.clappers,
        static_cast<unsigned long long>(e.frames_received), static_cast<unsigned long long>(e.update_frames),
        static_cast<unsigned long long>(e.updates_received), static_cast<unsigned long long>(e.acks));
  }
  std::fprintf(f, "\n  ],\n  \"servers\": [");
  auto optional_u64 = [](const std::optional<std::uint64_t>& v) {
    return v ? std::to_string(*v) : std::string("null");
  };
  for (std::size_t i = 0; i < r.processes.size(); ++i) {
    const process_results& p = r.processes[i];
    char cpu[32] = "null", idle_cpu[32] = "null";
    if (p.cpu_s) std::snprintf(cpu, sizeof cpu, "%.3f", *p.cpu_s);
    if (p.idle_cpu_s) std::snprintf(idle_cpu, sizeof idle_cpu, "%.4f", *p.idle_cpu_s);
    std::fprintf(
        f,
        "%s\n    {\"name\": \"%s\", \"pid\": %d, \"cpu_s\": %s, \"idle_cpu_s\": %s, \"rss_kb_before\": %s, \"rss_kb\": %s, "
        "\"syscalls\": %s, \"syscalls_note\": \"%s\"}",
        i ? "," : "", p.name.c_str(), static_cast<int>(p.pid), cpu, idle_cpu,
        optional_u64(p.rss_kb_before).c_str(), optional_u64(p.rss_kb).c_str(),
        optional_u64(p.syscalls).c_str(), p.syscalls_note.c_str());
  }
  std::fprintf(f, "\n  ],\n");
}

bool write_json(const std::string& path, const run_options& o, const std::string& label,
                const std::string& url, const run_results& r, const latency_tracker& tracker) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return false;
  static constexpr const char* spreads[] = {"uniform", "hot", "zipf"};
  std::fprintf(f, "{\n");
  std::fprintf(f, "  \"label\": \"%s\",\n  \"url\": \"%s\",\n  \"protocol\": \"%s\",\n", label.c_str(),
               url.c_str(), o.protocol == wire_protocol::claps ? "claps" : "socketio");
  std::fprintf(f,
               "  \"viewers\": %u,\n  \"clappers\": %u,\n  \"articles\": %u,\n  \"distribution\": \"%s\",\n",
               o.viewers, o.clappers, o.articles, spreads[static_cast<int>(o.spread)]);
  std::fprintf(
      f,
      "  \"subscriptions_per_conn\": %u,\n  \"clap_rate\": %.1f,\n  \"duration_s\": %.3f,\n  \"window_s\": %.3f,\n",
      o.subscriptions_per_conn, o.clap_rate, o.duration_s, r.window_s);
  std::fprintf(f, "  \"connections\": %u,\n  \"connections_wanted\": %u,\n  \"connect_failures\": %llu,\n",
               r.connections, r.connections_wanted, static_cast<unsigned long long>(r.connect_failures));
  std::fprintf(
      f, "  \"connect_s\": %.3f,\n  \"connect_rate\": %.1f,\n  \"ramp_s\": %.3f,\n  \"leave_s\": %.3f,\n",
      r.connect_s, r.connect_rate, o.ramp_s, o.leave_s);
  std::fprintf(f, "  \"claps_sent\": %llu,\n  \"claps_acked\": %llu,\n  \"claps_accepted\": %llu,\n",
               static_cast<unsigned long long>(r.claps_sent), static_cast<unsigned long long>(r.claps_acked),
               static_cast<unsigned long long>(r.claps_accepted));
  std::fprintf(
      f,
      "  \"claps_unacked\": %llu,\n  \"claps_unsent\": %llu,\n  \"claps_refused_by_cap\": %llu,\n  \"user_rotations\": %llu,\n",
      static_cast<unsigned long long>(r.claps_unacked), static_cast<unsigned long long>(r.claps_unsent),
      static_cast<unsigned long long>(r.claps_refused_by_cap),
      static_cast<unsigned long long>(r.user_rotations));
  std::fprintf(f, "  \"accepted_per_s\": %.1f,\n", r.accepted_per_s);
  // Every clap carries a new op id ("c<seq>", one sequence per run; op ids are scoped to the user).
  std::fprintf(f, "  \"op_ids\": \"every clap\",\n  \"idle_window_s\": %.3f,\n  \"acks_by_durability\": {",
               r.idle_window_s);
  bool first_durability = true;
  for (const auto& [kind, count] : r.acks_by_durability) {
    std::string safe;
    for (char ch : kind) safe += (ch == '"' || ch == '\\') ? '_' : ch;
    std::fprintf(f, "%s\"%s\": %llu", first_durability ? "" : ", ", safe.c_str(),
                 static_cast<unsigned long long>(count));
    first_durability = false;
  }
  std::fprintf(f, "},\n");
  std::fprintf(f, "  \"frames_received\": %llu,\n  \"frames_per_s\": %.1f,\n  \"update_frames\": %llu,\n",
               static_cast<unsigned long long>(r.frames_received), r.frames_per_s,
               static_cast<unsigned long long>(r.update_frames));
  std::fprintf(f, "  \"updates_received\": %llu,\n  \"updates_per_s\": %.1f,\n  \"sub_tick_pairs\": %llu,\n",
               static_cast<unsigned long long>(r.updates_received), r.updates_per_s,
               static_cast<unsigned long long>(r.sub_tick_pairs));
  std::fprintf(f, "  \"max_update_frames_per_conn\": %u,\n  \"ticks_in_window\": %.1f,\n",
               r.max_update_frames_per_conn, r.window_s * 1000.0 / o.tick_ms);
  write_histogram(f, "latency_ms", tracker.histogram(), true);
  write_histogram(f, "ack_latency_ms", r.ack_latency, true);
  std::fprintf(
      f,
      "  \"latency_pairs_expected\": %llu,\n  \"latency_pairs_missing\": %llu,\n  \"latency_ring_overflows\": %llu,\n",
      static_cast<unsigned long long>(r.latency_pairs_expected),
      static_cast<unsigned long long>(r.latency_pairs_expected -
                                      std::min(r.latency_pairs_expected, tracker.pairs_seen())),
      static_cast<unsigned long long>(r.latency_ring_overflows));
  std::fprintf(f, "  \"latency_cdf\": [");
  const auto cdf = tracker.histogram().cdf();
  for (std::size_t i = 0; i < cdf.size(); ++i)
    std::fprintf(f, "%s[%.3f, %.6f]", i ? ", " : "", cdf[i].first, cdf[i].second);
  std::fprintf(f, "],\n");
  std::fprintf(f, "  \"errors\": %llu,\n  \"errors_by_kind\": {", static_cast<unsigned long long>(r.errors));
  bool first = true;
  for (const auto& [kind, count] : r.errors_by_kind) {
    std::string safe;
    for (char ch : kind) safe += (ch == '"' || ch == '\\') ? '_' : ch;
    std::fprintf(f, "%s\"%s\": %llu", first ? "" : ", ", safe.c_str(),
                 static_cast<unsigned long long>(count));
    first = false;
  }
  std::fprintf(f, "},\n");
  write_optional(f, "server_rss_kb_before", r.server_rss_kb_before, "%llu");
  write_optional(f, "server_rss_kb", r.server_rss_kb, "%llu");
  write_optional(f, "server_cpu_s", r.server_cpu_s, "%.3f");
  std::optional<double> cpu_pct, cpu_us_per_frame, syscalls_per_frame;
  if (r.server_cpu_s && r.window_s > 0) cpu_pct = *r.server_cpu_s / r.window_s * 100.0;
  if (r.server_cpu_s && r.frames_received) cpu_us_per_frame = *r.server_cpu_s * 1e6 / r.frames_received;
  if (r.server_syscalls && r.frames_received)
    syscalls_per_frame = static_cast<double>(*r.server_syscalls) / r.frames_received;
  write_optional(f, "server_cpu_pct", cpu_pct, "%.1f");
  write_optional(f, "server_cpu_us_per_frame", cpu_us_per_frame, "%.3f");
  write_optional(f, "server_syscalls", r.server_syscalls, "%llu");
  write_optional(f, "syscalls_per_frame", syscalls_per_frame, "%.3f");
  std::fprintf(f, "  \"syscalls_note\": \"%s\",\n", r.syscalls_note.c_str());
  write_breakdown(f, r);
  std::fprintf(f, "  \"loadgen_cpu_s\": %.3f,\n  \"loadgen_cpu_pct\": %.1f\n}\n", r.loadgen_cpu_s,
               r.window_s > 0 ? r.loadgen_cpu_s / r.window_s * 100 : 0.0);
  return std::fclose(f) == 0;
}

void print_table(const run_results& r, const latency_tracker& tracker) {
  const auto& h = tracker.histogram();
  std::printf("%-28s %u of %u (%llu failed)\n", "connections", r.connections, r.connections_wanted,
              static_cast<unsigned long long>(r.connect_failures));
  std::printf("%-28s %.2f s (%.0f viewers/s)\n", "connect", r.connect_s, r.connect_rate);
  std::printf("%-28s sent %llu, acked %llu, accepted %llu (%.0f/s), unsent %llu\n", "claps",
              static_cast<unsigned long long>(r.claps_sent), static_cast<unsigned long long>(r.claps_acked),
              static_cast<unsigned long long>(r.claps_accepted), r.accepted_per_s,
              static_cast<unsigned long long>(r.claps_unsent));
  std::printf("%-28s %llu (%.0f/s), updates %llu (%.0f/s)\n", "frames received",
              static_cast<unsigned long long>(r.frames_received), r.frames_per_s,
              static_cast<unsigned long long>(r.updates_received), r.updates_per_s);
  std::printf("%-28s p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f ms (%llu samples, %llu missing)\n",
              "clap -> viewer latency", h.percentile_ms(0.5), h.percentile_ms(0.9), h.percentile_ms(0.99),
              h.percentile_ms(0.999), h.max_ms(), static_cast<unsigned long long>(h.count()),
              static_cast<unsigned long long>(r.latency_pairs_expected -
                                              std::min(r.latency_pairs_expected, h.count())));
  if (!r.acks_by_durability.empty()) {
    std::printf("%-28s", "acks by durability");
    for (const auto& [kind, count] : r.acks_by_durability)
      std::printf(" %s %llu", kind.c_str(), static_cast<unsigned long long>(count));
    std::printf("\n");
  }
  std::printf("%-28s p50 %.1f  p99 %.1f  max %.1f ms\n", "clap -> ack latency",
              r.ack_latency.percentile_ms(0.5), r.ack_latency.percentile_ms(0.99), r.ack_latency.max_ms());
  if (r.server_cpu_s) {
    std::printf("%-28s %.2f s (%.0f%% of a core)", "server CPU", *r.server_cpu_s,
                *r.server_cpu_s / r.window_s * 100);
    if (r.frames_received) std::printf(", %.2f us/frame", *r.server_cpu_s * 1e6 / r.frames_received);
    std::printf("\n");
  }
  if (r.server_syscalls && r.frames_received)
    std::printf("%-28s %llu (%.2f per frame)\n", "server syscalls",
                static_cast<unsigned long long>(*r.server_syscalls),
                static_cast<double>(*r.server_syscalls) / r.frames_received);
  else if (!r.syscalls_note.empty())
    std::printf("%-28s not counted: %s\n", "server syscalls", r.syscalls_note.c_str());
  if (r.server_rss_kb)
    std::printf("%-28s %llu KiB (before connecting: %llu KiB)\n", "server RSS",
                static_cast<unsigned long long>(*r.server_rss_kb),
                static_cast<unsigned long long>(r.server_rss_kb_before.value_or(0)));
  if (r.endpoints.size() > 1)
    for (const endpoint_results& e : r.endpoints)
      std::printf("  %-26s %u viewers, %u clappers: %llu frames, %llu acks\n", e.url.c_str(), e.viewers,
                  e.clappers, static_cast<unsigned long long>(e.frames_received),
                  static_cast<unsigned long long>(e.acks));
  if (r.processes.size() > 1)
    for (const process_results& p : r.processes)
      std::printf("  %-26s pid %d: CPU %.2f s, %llu syscalls%s\n", p.name.empty() ? "server" : p.name.c_str(),
                  static_cast<int>(p.pid), p.cpu_s.value_or(0),
                  static_cast<unsigned long long>(p.syscalls.value_or(0)),
                  p.idle_cpu_s ? (", idle phase CPU " + std::to_string(*p.idle_cpu_s) + " s").c_str() : "");
  std::printf("%-28s %.0f%% of a core\n", "load generator CPU",
              r.window_s > 0 ? r.loadgen_cpu_s / r.window_s * 100 : 0.0);
  std::printf("%-28s %llu\n", "errors", static_cast<unsigned long long>(r.errors));
  for (const auto& [kind, count] : r.errors_by_kind)
    std::printf("  %-26s %llu\n", kind.c_str(), static_cast<unsigned long long>(count));
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options cli("claps-loadgen",
                       "Load generator for clapsd and its Socket.IO peer (benchmarks only).");
  cli.add_options()(
      "url",
      "server to load, ws://HOST:PORT/ws; repeat it to spread viewers (and clappers) round-robin over several nodes",
      cxxopts::value<std::vector<std::string>>()->default_value("ws://127.0.0.1:8080/ws"))(
      "clap-url", "where clappers connect (repeatable, round-robin); default: the --url list",
      cxxopts::value<std::vector<std::string>>())("viewers", "number of viewer connections",
                                                  cxxopts::value<std::uint32_t>()->default_value("1000"))(
      "articles", "number of articles (named a0, a1, ...)",
      cxxopts::value<std::uint32_t>()->default_value("1"))(
      "distribution", "how viewers (and claps) spread over articles: uniform|hot|zipf",
      cxxopts::value<std::string>()->default_value("hot"))(
      "subscriptions-per-conn", "articles each viewer subscribes to (timeline)",
      cxxopts::value<std::uint32_t>()->default_value("1"))(
      "clappers", "number of clapping connections", cxxopts::value<std::uint32_t>()->default_value("10"))(
      "clap-rate", "claps/s in total; 0 = each clapper keeps --inflight claps outstanding",
      cxxopts::value<double>()->default_value("100"))("inflight",
                                                      "claps outstanding per clapper when --clap-rate is 0",
                                                      cxxopts::value<std::uint32_t>()->default_value("32"))(
      "per-conn-rate", "most claps/s one clapper sends when --clap-rate > 0 (clapsd allows 20)",
      cxxopts::value<double>()->default_value("19"))(
      "user-claps", "claps per user per article before the clapper reconnects as a new user (cap is 50)",
      cxxopts::value<std::uint32_t>()->default_value("45"))("duration", "measured run length, seconds",
                                                            cxxopts::value<double>()->default_value("10"))(
      "ramp", "seconds over which viewers connect (0 = as fast as possible)",
      cxxopts::value<double>()->default_value("0"))("settle", "seconds between connecting and measuring",
                                                    cxxopts::value<double>()->default_value("1"))(
      "drain", "most seconds to wait for acks and updates after the run",
      cxxopts::value<double>()->default_value("5"))(
      "leave",
      "after the drain, close the viewers evenly over this many seconds (0: all at once when the run ends)",
      cxxopts::value<double>()->default_value("0"))(
      "connect-timeout", "seconds after the ramp to give up on unfinished handshakes",
      cxxopts::value<double>()->default_value("60"))("connect-concurrency", "handshakes in flight at most",
                                                     cxxopts::value<std::uint32_t>()->default_value("256"))(
      "tick-ms", "server tick, for the frames-per-tick check", cxxopts::value<double>()->default_value("25"))(
      "protocol", "wire protocol: claps|socketio", cxxopts::value<std::string>()->default_value("claps"))(
      "json", "write results as JSON to this file", cxxopts::value<std::string>())(
      "label", "free text stored in the JSON", cxxopts::value<std::string>()->default_value(""))(
      "server-pid",
      "server process to sample (CPU, RSS, system calls), PID or NAME=PID; repeatable, figures are summed and also reported per process",
      cxxopts::value<std::vector<std::string>>())(
      "window-hook", "executable run as `HOOK start` and `HOOK end` when the measure window opens and closes",
      cxxopts::value<std::string>())(
      "idle-window",
      "seconds between settle and measure with everyone connected and nobody clapping; the CPU of each "
      "--server-pid is sampled over it and --window-hook runs as `HOOK idle-start` and `HOOK idle-end`",
      cxxopts::value<double>()->default_value("0"))("no-syscalls",
                                                    "do not run perf to count the server's system calls")(
      "source-ips", "source addresses, e.g. 127.0.0.2-127.0.0.20", cxxopts::value<std::string>())(
      "seed", "random seed", cxxopts::value<std::uint64_t>()->default_value("1"))(
      "quiet", "no progress line")("h,help", "print help");
  cxxopts::ParseResult args;
  try {
    args = cli.parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "claps-loadgen: %s\n", e.what());
    return 2;
  }
  if (args.count("help")) {
    std::printf("%s\n", cli.help().c_str());
    return 0;
  }

  run_options o;
  const auto protocol = args["protocol"].as<std::string>();
  if (protocol == "claps") {
    o.protocol = wire_protocol::claps;
  } else if (protocol == "socketio") {
    o.protocol = wire_protocol::socketio;
  } else {
    std::fprintf(stderr, "claps-loadgen: --protocol is claps or socketio\n");
    return 2;
  }
  const auto viewer_urls = args["url"].as<std::vector<std::string>>();
  const auto clapper_urls =
      args.count("clap-url") ? args["clap-url"].as<std::vector<std::string>>() : viewer_urls;
  const std::string url = viewer_urls.front();
  for (const auto& [texts, parsed] :
       {std::pair{&viewer_urls, &o.viewer_urls}, std::pair{&clapper_urls, &o.clapper_urls}}) {
    for (const std::string& text : *texts) {
      ws_url& u = parsed->emplace_back();
      if (!parse_ws_url(text, u)) {
        std::fprintf(stderr, "claps-loadgen: --url and --clap-url must look like ws://127.0.0.1:8080/ws\n");
        return 2;
      }
      // Engine.IO v4 over WebSocket only: no HTTP long-polling upgrade dance.
      if (o.protocol == wire_protocol::socketio && u.path.find("EIO=") == std::string::npos)
        u.path = "/socket.io/?EIO=4&transport=websocket";
    }
  }
  const auto spread = args["distribution"].as<std::string>();
  if (spread == "uniform") o.spread = distribution::uniform;
  else if (spread == "hot") o.spread = distribution::hot;
  else if (spread == "zipf") o.spread = distribution::zipf;
  else {
    std::fprintf(stderr, "claps-loadgen: --distribution is uniform, hot or zipf\n");
    return 2;
  }
  o.viewers = args["viewers"].as<std::uint32_t>();
  o.articles = std::max<std::uint32_t>(1, args["articles"].as<std::uint32_t>());
  o.subscriptions_per_conn = std::max<std::uint32_t>(1, args["subscriptions-per-conn"].as<std::uint32_t>());
  o.clappers = args["clappers"].as<std::uint32_t>();
  o.clap_rate = args["clap-rate"].as<double>();
  o.inflight = std::max<std::uint32_t>(1, args["inflight"].as<std::uint32_t>());
  o.per_conn_rate = args["per-conn-rate"].as<double>();
  o.user_claps = std::max<std::uint32_t>(1, args["user-claps"].as<std::uint32_t>());
  o.duration_s = args["duration"].as<double>();
  o.ramp_s = args["ramp"].as<double>();
  o.settle_s = args["settle"].as<double>();
  o.drain_s = args["drain"].as<double>();
  o.leave_s = std::max(0.0, args["leave"].as<double>());
  o.connect_timeout_s = args["connect-timeout"].as<double>();
  o.connect_concurrency = std::max<std::uint32_t>(1, args["connect-concurrency"].as<std::uint32_t>());
  o.tick_ms = args["tick-ms"].as<double>();
  if (args.count("server-pid")) {
    for (const std::string& text : args["server-pid"].as<std::vector<std::string>>()) {
      const auto equals = text.find('=');
      probe_target target;
      if (equals != std::string::npos) target.name = text.substr(0, equals);
      const std::string number = equals == std::string::npos ? text : text.substr(equals + 1);
      target.pid = static_cast<pid_t>(std::strtol(number.c_str(), nullptr, 10));
      // 0 is what run.sh passed before it knew a pid: sample nothing, as before.
      if (target.pid > 0) o.servers.push_back(std::move(target));
    }
  }
  if (args.count("window-hook")) o.window_hook = args["window-hook"].as<std::string>();
  o.idle_window_s = std::max(0.0, args["idle-window"].as<double>());
  o.count_syscalls = !args.count("no-syscalls");
  o.progress = !args.count("quiet");
  o.seed = args["seed"].as<std::uint64_t>();
  if (args.count("source-ips") && !parse_source_ips(args["source-ips"].as<std::string>(), o.source_ips)) {
    std::fprintf(stderr, "claps-loadgen: --source-ips takes A.B.C.D-A.B.C.E or a comma list\n");
    return 2;
  }
  if (o.clap_rate > 0 && o.clappers > 0 && o.clap_rate / o.clappers > o.per_conn_rate)
    std::fprintf(stderr,
                 "claps-loadgen: warning: %.0f claps/s over %u clappers exceeds %.0f per connection; "
                 "some slots will go unsent\n",
                 o.clap_rate, o.clappers, o.per_conn_rate);

  load_generator generator(o);
  run_results results;
  if (!generator.run(results)) return 1;
  print_table(results, generator.latency());
  if (args.count("json") && !write_json(args["json"].as<std::string>(), o, args["label"].as<std::string>(),
                                        url, results, generator.latency())) {
    std::fprintf(stderr, "claps-loadgen: cannot write %s\n", args["json"].as<std::string>().c_str());
    return 1;
  }
  return 0;
}
