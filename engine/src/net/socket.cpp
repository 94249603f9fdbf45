#include "socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace glm {

namespace {

std::string seconds(int ms) {
  char s[32];
  std::snprintf(s, sizeof s, "%g s", ms / 1000.0);
  return s;
}

void setNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

void noDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool isLoopback(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return (ntohl(reinterpret_cast<const sockaddr_in*>(&a)->sin_addr.s_addr) >> 24) == 127;
  if (a.ss_family != AF_INET6) return false;
  const in6_addr& in = reinterpret_cast<const sockaddr_in6*>(&a)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(&in) || (IN6_IS_ADDR_V4MAPPED(&in) && in.s6_addr[12] == 127);
}

std::string addressOf(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (a.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
    port = ntohs(in->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

}  // namespace

Endpoint Endpoint::parse(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) throw NetError("worker address \"" + address + "\" is not host:port");
  Endpoint e;
  e.host = address.substr(0, colon);
  if (e.host.size() > 2 && e.host.front() == '[' && e.host.back() == ']') e.host = e.host.substr(1, e.host.size() - 2);
  const std::string port = address.substr(colon + 1);
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end || p < 1 || p > 65535) throw NetError("worker address \"" + address + "\": port must be 1..65535");
  e.port = static_cast<int>(p);
  return e;
}

Socket::Socket(int fd, std::string peer) : fd_(fd), peer_(std::move(peer)) {}
Socket::~Socket() { close(); }
Socket::Socket(Socket&& o) noexcept : fd_(o.fd_), peer_(std::move(o.peer_)) { o.fd_ = -1; }
Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    peer_ = std::move(o.peer_);
    o.fd_ = -1;
  }
  return *this;
}

void Socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Socket Socket::connect(const Endpoint& to, int timeoutMs) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(to.host.c_str(), std::to_string(to.port).c_str(), &hints, &found);
  if (rc != 0) throw NetError("worker " + to.str() + ": cannot resolve the host (" + gai_strerror(rc) + ")");
  std::string last = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    setNonBlocking(fd);
    Socket s(fd, "worker " + to.str());
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = std::strerror(errno);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    const int ready = poll(&p, 1, timeoutMs);
    int error = 0;
    socklen_t len = sizeof error;
    if (ready <= 0) {
      last = "no answer within " + seconds(timeoutMs);
      continue;
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      last = std::strerror(error);
      continue;
    }
    noDelay(fd);
    freeaddrinfo(found);
    return s;
  }
  freeaddrinfo(found);
  throw NetError("worker " + to.str() + ": cannot connect (" + last + "); is `glm-engine worker` running there?");
}

void Socket::setDeadline(int ms) { deadlineMs_ = ms > 0 ? nowMs() + ms : 0; }

void Socket::wait(short events, int timeoutMs, const char* what) {
  pollfd p{fd_, events, 0};
  int ready;
  bool deadline = false;
  do {
    int limit = timeoutMs;
    if (deadlineMs_ != 0 && deadlineMs_ - nowMs() < limit) {
      limit = static_cast<int>(std::max<int64_t>(deadlineMs_ - nowMs(), 0));
      deadline = true;
    }
    ready = poll(&p, 1, limit);
  } while (ready < 0 && errno == EINTR);
  if (ready == 0 && deadline) throw NetError(peer_ + ": the handshake did not finish in time while " + what);
  if (ready == 0) throw NetError(peer_ + ": no progress within " + seconds(timeoutMs) + " while " + what + " (peer stopped or network down)");
  if (ready < 0) throw NetError(peer_ + ": poll failed while " + what + " (" + std::strerror(errno) + ")");
}

void Socket::sendAll(const void* data, size_t bytes, int timeoutMs, const char* what) {
  if (fd_ < 0) throw NetError(peer_ + ": the connection is closed");
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (bytes > 0) {
    const ssize_t n = ::send(fd_, p, bytes, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      bytes -= static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wait(POLLOUT, timeoutMs, what);
    } else if (n < 0 && errno != EINTR) {
      throw NetError(peer_ + ": connection lost while " + what + " (" + std::strerror(errno) + ")");
    }
  }
}

void Socket::recvAll(void* data, size_t bytes, int timeoutMs, const char* what) {
  if (fd_ < 0) throw NetError(peer_ + ": the connection is closed");
  uint8_t* p = static_cast<uint8_t*>(data);
  while (bytes > 0) {
    const ssize_t n = ::recv(fd_, p, bytes, 0);
    if (n > 0) {
      p += n;
      bytes -= static_cast<size_t>(n);
    } else if (n == 0) {
      throw NetError(peer_ + ": the peer closed the connection while " + what);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait(POLLIN, timeoutMs, what);
    } else if (errno != EINTR) {
      throw NetError(peer_ + ": connection lost while " + what + " (" + std::strerror(errno) + ")");
    }
  }
}

Listener::Listener(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) throw NetError("--host " + host + ": cannot resolve (" + gai_strerror(rc) + ")");
  fd_ = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
  const int one = 1;
  if (fd_ >= 0) setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd_ < 0 || bind(fd_, found->ai_addr, found->ai_addrlen) != 0 || listen(fd_, 4) != 0) {
    const std::string why = std::strerror(errno);
    freeaddrinfo(found);
    if (fd_ >= 0) ::close(fd_);
    throw NetError("cannot listen on " + host + ":" + std::to_string(port) + " (" + why + ")");
  }
  freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  loopback_ = isLoopback(bound);
  port_ = bound.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port) : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
}

Socket Listener::accept() {
  for (;;) {
    sockaddr_storage from{};
    socklen_t len = sizeof from;
    const int fd = ::accept(fd_, reinterpret_cast<sockaddr*>(&from), &len);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      throw NetError(std::string("accept failed (") + std::strerror(errno) + ")");
    }
    setNonBlocking(fd);
    noDelay(fd);
    return Socket(fd, "root " + addressOf(from));
  }
}

}  // namespace glm
