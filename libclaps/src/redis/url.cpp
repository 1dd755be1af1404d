// Parsing of redis:// URLs, sentinel and cluster seed lists; the cluster key slot.
#include <claps/redis.hpp>

#include <charconv>

namespace claps {

namespace {

std::error_code invalid() { return std::make_error_code(std::errc::invalid_argument); }

bool parse_number(std::string_view s, long long low, long long high, long long& out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size() && out >= low && out <= high;
}

// HOST[:PORT], with [v6]:PORT for IPv6 literals.
bool parse_host_port(std::string_view s, redis_endpoint& out) {
  std::string_view host = s;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos) return false;
    host = s.substr(1, close - 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
  } else if (const auto colon = s.rfind(':'); colon != std::string_view::npos) {
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (host.empty()) return false;
  long long p = out.port;
  if (!port.empty() && !parse_number(port, 1, 65535, p)) return false;
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(p);
  return true;
}

}  // namespace

std::error_code parse_redis_url(std::string_view url, redis_options& out) {
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) return invalid();
  std::string_view rest = url.substr(scheme.size());
  std::string username, password;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view credentials = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = credentials.find(':');
    if (colon == std::string_view::npos) {
      password = std::string(credentials);  // redis://secret@host, as redis-cli accepts
    } else {
      username = std::string(credentials.substr(0, colon));
      password = std::string(credentials.substr(colon + 1));
    }
    if (password.empty()) return invalid();
  }
  long long db = 0;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    const std::string_view db_text = rest.substr(slash + 1);
    if (!db_text.empty() && !parse_number(db_text, 0, 1 << 20, db)) return invalid();
    rest = rest.substr(0, slash);
  }
  redis_endpoint address;
  if (!parse_host_port(rest, address)) return invalid();
  out.address = std::move(address);
  out.username = std::move(username);
  out.password = std::move(password);
  out.database = static_cast<int>(db);
  return {};
}

std::error_code parse_redis_sentinels(std::string_view list, std::string_view master_name,
                                      redis_options& out) {
  if (master_name.empty()) return invalid();
  std::vector<redis_endpoint> sentinels;
  while (!list.empty()) {
    const auto comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    redis_endpoint e;
    e.port = 26379;
    if (!parse_host_port(item, e)) return invalid();
    sentinels.push_back(std::move(e));
    if (comma == std::string_view::npos) break;
    list = list.substr(comma + 1);
    if (list.empty()) return invalid();
  }
  if (sentinels.empty()) return invalid();
  out.sentinels = std::move(sentinels);
  out.master_name = std::string(master_name);
  return {};
}

std::error_code parse_redis_cluster(std::string_view list, redis_options& out) {
  std::vector<redis_endpoint> seeds;
  while (true) {
    const auto comma = list.find(',');
    redis_endpoint e;
    e.port = 6379;
    if (!parse_host_port(list.substr(0, comma), e)) return invalid();
    seeds.push_back(std::move(e));
    if (comma == std::string_view::npos) break;
    list = list.substr(comma + 1);
  }
  out.cluster = std::move(seeds);
  return {};
}

// CRC16/XMODEM (polynomial 0x1021, initial 0), as the cluster specification
// gives it; keys are short, so bit by bit is fast enough.
std::uint16_t redis_key_slot(std::string_view key) noexcept {
  if (const auto open = key.find('{'); open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  std::uint16_t crc = 0;
  for (const char c : key) {
    crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(c) << 8);
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
  }
  return static_cast<std::uint16_t>(crc & 16383);
}

}  // namespace claps
