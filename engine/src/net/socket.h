// Blocking-style TCP over non-blocking sockets: every send and receive has a deadline (poll), so a
// dead peer or a pulled cable becomes an error naming the peer instead of a hang. TCP_NODELAY, since
// the layer syncs are small messages that must not wait for Nagle.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace glm {

class NetError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// host:port, for --workers lists; throws NetError naming the bad entry.
struct Endpoint {
  std::string host;
  int port = 0;
  static Endpoint parse(const std::string& address);
  std::string str() const { return host + ":" + std::to_string(port); }
};

class Socket {
 public:
  Socket() = default;
  Socket(int fd, std::string peer);
  ~Socket();
  Socket(Socket&& other) noexcept;
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  static Socket connect(const Endpoint& to, int timeoutMs);

  const std::string& peer() const { return peer_; }
  bool open() const { return fd_ >= 0; }
  void close();
  // Every later wait ends by `ms` from now, whatever timeout it is given (0: no deadline).
  void setDeadline(int ms);
  // Throw NetError when the peer closes, resets, or makes no progress for timeoutMs; `what` says what
  // was being waited for.
  void sendAll(const void* data, size_t bytes, int timeoutMs, const char* what);
  void recvAll(void* data, size_t bytes, int timeoutMs, const char* what);

 private:
  void wait(short events, int timeoutMs, const char* what);
  int fd_ = -1;
  std::string peer_;
  int64_t deadlineMs_ = 0;  // steady clock; 0: none
};

class Listener {
 public:
  // Binds host:port (port 0: any free port); throws NetError.
  Listener(const std::string& host, int port);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  int port() const { return port_; }
  // Whether the bound address is a loopback one (127.0.0.0/8 or ::1), which only this machine reaches.
  bool loopback() const { return loopback_; }
  // Waits for the next connection.
  Socket accept();

 private:
  int fd_ = -1;
  int port_ = 0;
  bool loopback_ = false;
};

}  // namespace glm
