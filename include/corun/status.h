// corun::Status — an error that travels up the call chain and collects a breadcrumb at each
// level (NCCL's checks.h habit), so "corun: error: ..." names where it started and how it got out.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace corun {

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string msg) {
    Status s;
    s.ok_ = false;
    s.msg_ = std::move(msg);
    return s;
  }
  bool ok() const { return ok_; }
  const std::string& message() const { return msg_; }
  // Adds one frame ("file:line") to the trail; returns *this for chaining in macros.
  Status& At(const char* file, int line) {
    trail_.emplace_back(std::string(file) + ":" + std::to_string(line));
    return *this;
  }
  const std::vector<std::string>& trail() const { return trail_; }
  std::string ToString(bool with_trail = false) const {
    if (ok_) return "ok";
    std::string s = msg_;
    if (with_trail && !trail_.empty()) {
      s += " [at";
      for (const auto& f : trail_) s += " " + f;
      s += "]";
    }
    return s;
  }

 private:
  bool ok_ = true;
  std::string msg_;
  std::vector<std::string> trail_;
};

}  // namespace corun

// Propagate a failed Status with a breadcrumb.
#define CORUN_CHECK(expr)                                 \
  do {                                                    \
    ::corun::Status _st = (expr);                         \
    if (!_st.ok()) return _st.At(__FILE__, __LINE__);     \
  } while (0)

#define CORUN_FAIL(msg) return ::corun::Status::Error(msg).At(__FILE__, __LINE__)
