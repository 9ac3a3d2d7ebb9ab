#pragma once

// A SQLite VFS for tests that wraps the default one and fails the N-th call
// of one kind (xRead, xWrite, xSync, xTruncate) with that kind's
// SQLITE_IOERR_* code, as a failing disk would. Registered under its own
// name and used only by a store whose StoreOptions::vfs names it; the
// agent never does.

#include <atomic>
#include <string>

#include "core/status.h"

namespace qabox::store {

enum class FaultOp { kRead, kWrite, kSync, kTruncate };
inline constexpr int kFaultOps = 4;
const char* faultOpName(FaultOp op);  // "read", "write", "sync", "truncate"

// What to fail, shared by every file the VFS opens. Counting starts at
// arm(); 0 disarms.
class FaultPlan {
 public:
  // Fails the `nth` call of `op` from now on (and every later one of that
  // op when `persistent`).
  void arm(FaultOp op, int nth, bool persistent = false);
  void disarm() { arm(FaultOp::kRead, 0); }
  // How many calls of `op` were made since arm(), and whether one failed.
  int calls(FaultOp op) const { return calls_[static_cast<int>(op)].load(); }
  bool fired() const { return fired_.load(); }

  // The VFS's side: true when this call of `op` is to fail.
  bool shouldFail(FaultOp op);

 private:
  std::atomic<int> op_{0};
  std::atomic<int> nth_{0};
  std::atomic<bool> persistent_{false};
  std::atomic<bool> fired_{false};
  std::atomic<int> calls_[kFaultOps] = {};
};

// Registers (once per name) a VFS called `name` over the default VFS that
// consults `plan`, which must outlive every connection using it.
Status registerFaultVfs(const std::string& name, FaultPlan& plan);

}  // namespace qabox::store
