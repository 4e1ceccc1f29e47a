#include "bootstrap.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "checks.h"

namespace corun {
namespace {

bool EnvInt(const char* name, int* v) {
  const char* s = std::getenv(name);
  if (!s || !*s) return false;
  char* end = nullptr;
  long x = std::strtol(s, &end, 10);
  if (*end != '\0') return false;
  *v = static_cast<int>(x);
  return true;
}

Status ReadAll(int fd, void* buf, size_t n) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) CORUN_FAIL("bootstrap: connection closed while reading from rank 0");
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Status::Ok();
}

bool SendAll(int fd, const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

Status DetectProcessModel(ProcessModel* pm) {
  int r = 0, w = 0, lr = 0;
  if (EnvInt("OMPI_COMM_WORLD_RANK", &r) && EnvInt("OMPI_COMM_WORLD_SIZE", &w)) {
    pm->kind = "mpi";
    if (!EnvInt("OMPI_COMM_WORLD_LOCAL_RANK", &lr)) lr = r;
  } else if (EnvInt("RANK", &r) && EnvInt("WORLD_SIZE", &w)) {
    pm->kind = "torchrun";
    if (!EnvInt("LOCAL_RANK", &lr)) lr = r;
  } else if (EnvInt("PMI_RANK", &r) && EnvInt("PMI_SIZE", &w)) {
    pm->kind = "pmi";
    if (!EnvInt("MPI_LOCALRANKID", &lr)) lr = r;
  } else {
    pm->kind = "threads";
    return Status::Ok();
  }
  if (w < 1 || r < 0 || r >= w || lr < 0)
    CORUN_FAIL("inconsistent launcher environment: rank " + std::to_string(r) + " of world " + std::to_string(w));
  pm->rank = r;
  pm->world = w;
  pm->local_rank = lr;
  if (const char* a = std::getenv("MASTER_ADDR")) pm->addr = a;
  int port = 0;
  // torchrun's own store listens on MASTER_PORT; corun takes the next port unless told.
  if (EnvInt("CORUN_BOOTSTRAP_PORT", &port)) pm->port = port;
  else if (EnvInt("MASTER_PORT", &port)) pm->port = port + 1;
  else pm->port = 29511;
  return Status::Ok();
}

int FreeLocalPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) ::close(fd);
  return port;
}

Status ExchangeUniqueId(const ProcessModel& pm, ncclUniqueId* id, int timeout_s) {
  if (!pm.multi_process() || pm.rank == 0) NCCLCHECK(ncclGetUniqueId(id));
  if (!pm.multi_process()) return Status::Ok();
  return ExchangeBytes(pm, id, sizeof(*id), timeout_s);
}

Status ExchangeBytes(const ProcessModel& pm, void* buf, size_t n, int timeout_s, int notice_s) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(timeout_s);
  bool noticed = false;
  auto notice = [&](const std::string& what) {
    if (noticed || std::chrono::steady_clock::now() < start + std::chrono::seconds(notice_s)) return;
    noticed = true;
    std::fprintf(stderr, "corun: bootstrap: %s after %d s (gives up after %d s; every rank needs the same "
                 "MASTER_ADDR and MASTER_PORT or CORUN_BOOTSTRAP_PORT)\n", what.c_str(), notice_s, timeout_s);
  };
  if (pm.rank == 0) {
    int srv = ::socket(AF_INET, SOCK_STREAM, 0);
    if (srv < 0) CORUN_FAIL("bootstrap: socket() failed");
    int one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(static_cast<uint16_t>(pm.port));
    if (::bind(srv, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(srv, 128) != 0) {
      ::close(srv);
      CORUN_FAIL("bootstrap: cannot listen on port " + std::to_string(pm.port) +
                 " (set CORUN_BOOTSTRAP_PORT to a free port)");
    }
    for (int served = 1; served < pm.world;) {
      timeval tv{1, 0};
      fd_set fds;
      FD_ZERO(&fds);
      FD_SET(srv, &fds);
      if (::select(srv + 1, &fds, nullptr, nullptr, &tv) > 0) {
        int c = ::accept(srv, nullptr, nullptr);
        if (c >= 0) {
          const bool sent = SendAll(c, buf, n);
          ::close(c);
          if (sent) ++served;
        }
      }
      notice("rank 0 listening on port " + std::to_string(pm.port) + ": " + std::to_string(served) + " of " +
             std::to_string(pm.world) + " ranks connected");
      if (std::chrono::steady_clock::now() > deadline) {
        ::close(srv);
        CORUN_FAIL("bootstrap: only " + std::to_string(served) + " of " + std::to_string(pm.world) +
                   " ranks connected within " + std::to_string(timeout_s) + " s");
      }
    }
    ::close(srv);
    return Status::Ok();
  }
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(pm.addr.c_str(), std::to_string(pm.port).c_str(), &hints, &res) != 0 || !res)
    CORUN_FAIL("bootstrap: cannot resolve MASTER_ADDR '" + pm.addr + "'");
  while (true) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
      Status s = ReadAll(fd, buf, n);
      ::close(fd);
      freeaddrinfo(res);
      return s;
    }
    if (fd >= 0) ::close(fd);
    notice("rank " + std::to_string(pm.rank) + " still waiting for rank 0 at " + pm.addr + ":" + std::to_string(pm.port));
    if (std::chrono::steady_clock::now() > deadline) {
      freeaddrinfo(res);
      CORUN_FAIL("bootstrap: rank " + std::to_string(pm.rank) + " could not reach rank 0 at " + pm.addr + ":" +
                 std::to_string(pm.port) + " within " + std::to_string(timeout_s) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace corun
