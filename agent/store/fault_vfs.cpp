#include "store/fault_vfs.h"

#include <sqlite3.h>

#include <map>
#include <memory>
#include <mutex>

namespace qabox::store {

const char* faultOpName(FaultOp op) {
  switch (op) {
    case FaultOp::kRead: return "read";
    case FaultOp::kWrite: return "write";
    case FaultOp::kSync: return "sync";
    case FaultOp::kTruncate: return "truncate";
  }
  return "?";
}

void FaultPlan::arm(FaultOp op, int nth, bool persistent) {
  nth_.store(0);
  for (auto& c : calls_) c.store(0);
  fired_.store(false);
  op_.store(static_cast<int>(op));
  persistent_.store(persistent);
  nth_.store(nth);
}

bool FaultPlan::shouldFail(FaultOp op) {
  const int n = calls_[static_cast<int>(op)].fetch_add(1) + 1;
  const int nth = nth_.load();
  if (nth == 0 || static_cast<int>(op) != op_.load()) return false;
  if (n == nth || (persistent_.load() && n > nth)) {
    fired_.store(true);
    return true;
  }
  return false;
}

namespace {

// One file: ours first (so SQLite's cast to sqlite3_file works), then the
// real VFS's file in the same allocation.
struct FaultFile {
  sqlite3_file base;
  FaultPlan* plan;
  sqlite3_file* real() { return reinterpret_cast<sqlite3_file*>(this + 1); }
};

struct FaultVfs {
  sqlite3_vfs vfs{};
  sqlite3_vfs* real = nullptr;
  FaultPlan* plan = nullptr;
  std::string name;
  std::once_flag methodsSet;
  sqlite3_io_methods methods{};
};

FaultFile* ff(sqlite3_file* f) { return reinterpret_cast<FaultFile*>(f); }
sqlite3_file* real(sqlite3_file* f) { return ff(f)->real(); }
FaultVfs* fv(sqlite3_vfs* v) { return static_cast<FaultVfs*>(v->pAppData); }

int xClose(sqlite3_file* f) { return real(f)->pMethods->xClose(real(f)); }
int xRead(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  if (ff(f)->plan->shouldFail(FaultOp::kRead)) return SQLITE_IOERR_READ;
  return real(f)->pMethods->xRead(real(f), buf, n, off);
}
int xWrite(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  if (ff(f)->plan->shouldFail(FaultOp::kWrite)) return SQLITE_IOERR_WRITE;
  return real(f)->pMethods->xWrite(real(f), buf, n, off);
}
int xTruncate(sqlite3_file* f, sqlite3_int64 size) {
  if (ff(f)->plan->shouldFail(FaultOp::kTruncate)) return SQLITE_IOERR_TRUNCATE;
  return real(f)->pMethods->xTruncate(real(f), size);
}
int xSync(sqlite3_file* f, int flags) {
  if (ff(f)->plan->shouldFail(FaultOp::kSync)) return SQLITE_IOERR_FSYNC;
  return real(f)->pMethods->xSync(real(f), flags);
}
int xFileSize(sqlite3_file* f, sqlite3_int64* size) {
  return real(f)->pMethods->xFileSize(real(f), size);
}
int xLock(sqlite3_file* f, int l) { return real(f)->pMethods->xLock(real(f), l); }
int xUnlock(sqlite3_file* f, int l) { return real(f)->pMethods->xUnlock(real(f), l); }
int xCheckReservedLock(sqlite3_file* f, int* out) {
  return real(f)->pMethods->xCheckReservedLock(real(f), out);
}
int xFileControl(sqlite3_file* f, int op, void* arg) {
  return real(f)->pMethods->xFileControl(real(f), op, arg);
}
int xSectorSize(sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); }
int xDeviceCharacteristics(sqlite3_file* f) {
  return real(f)->pMethods->xDeviceCharacteristics(real(f));
}
int xShmMap(sqlite3_file* f, int pg, int sz, int extend, void volatile** p) {
  return real(f)->pMethods->xShmMap(real(f), pg, sz, extend, p);
}
int xShmLock(sqlite3_file* f, int off, int n, int flags) {
  return real(f)->pMethods->xShmLock(real(f), off, n, flags);
}
void xShmBarrier(sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); }
int xShmUnmap(sqlite3_file* f, int del) { return real(f)->pMethods->xShmUnmap(real(f), del); }
int xFetch(sqlite3_file* f, sqlite3_int64 off, int n, void** p) {
  return real(f)->pMethods->xFetch(real(f), off, n, p);
}
int xUnfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return real(f)->pMethods->xUnfetch(real(f), off, p);
}

sqlite3_io_methods methodsOver(const sqlite3_io_methods& r) {
  sqlite3_io_methods m{};
  m.iVersion = r.iVersion;
  m.xClose = xClose;
  m.xRead = xRead;
  m.xWrite = xWrite;
  m.xTruncate = xTruncate;
  m.xSync = xSync;
  m.xFileSize = xFileSize;
  m.xLock = xLock;
  m.xUnlock = xUnlock;
  m.xCheckReservedLock = xCheckReservedLock;
  m.xFileControl = xFileControl;
  m.xSectorSize = xSectorSize;
  m.xDeviceCharacteristics = xDeviceCharacteristics;
  if (r.iVersion >= 2) {
    m.xShmMap = xShmMap;
    m.xShmLock = xShmLock;
    m.xShmBarrier = xShmBarrier;
    m.xShmUnmap = xShmUnmap;
  }
  if (r.iVersion >= 3) {
    m.xFetch = xFetch;
    m.xUnfetch = xUnfetch;
  }
  return m;
}

int xOpen(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* outFlags) {
  FaultVfs* v = fv(vfs);
  FaultFile* f = ff(file);
  f->base.pMethods = nullptr;
  f->plan = v->plan;
  int rc = v->real->xOpen(v->real, name, f->real(), flags, outFlags);
  if (rc != SQLITE_OK || f->real()->pMethods == nullptr) return rc;
  // One table for all files: every file of the default VFS has the same
  // methods (unix), so the first one opened fixes the version.
  std::call_once(v->methodsSet, [&] { v->methods = methodsOver(*f->real()->pMethods); });
  f->base.pMethods = &v->methods;
  return rc;
}

int xDelete(sqlite3_vfs* v, const char* n, int sync) {
  return fv(v)->real->xDelete(fv(v)->real, n, sync);
}
int xAccess(sqlite3_vfs* v, const char* n, int flags, int* out) {
  return fv(v)->real->xAccess(fv(v)->real, n, flags, out);
}
int xFullPathname(sqlite3_vfs* v, const char* n, int size, char* out) {
  return fv(v)->real->xFullPathname(fv(v)->real, n, size, out);
}
void* xDlOpen(sqlite3_vfs* v, const char* n) { return fv(v)->real->xDlOpen(fv(v)->real, n); }
void xDlError(sqlite3_vfs* v, int n, char* out) { fv(v)->real->xDlError(fv(v)->real, n, out); }
void (*xDlSym(sqlite3_vfs* v, void* h, const char* sym))(void) {
  return fv(v)->real->xDlSym(fv(v)->real, h, sym);
}
void xDlClose(sqlite3_vfs* v, void* h) { fv(v)->real->xDlClose(fv(v)->real, h); }
int xRandomness(sqlite3_vfs* v, int n, char* out) {
  return fv(v)->real->xRandomness(fv(v)->real, n, out);
}
int xSleep(sqlite3_vfs* v, int us) { return fv(v)->real->xSleep(fv(v)->real, us); }
int xCurrentTime(sqlite3_vfs* v, double* out) {
  return fv(v)->real->xCurrentTime(fv(v)->real, out);
}
int xGetLastError(sqlite3_vfs* v, int n, char* out) {
  return fv(v)->real->xGetLastError(fv(v)->real, n, out);
}
int xCurrentTimeInt64(sqlite3_vfs* v, sqlite3_int64* out) {
  return fv(v)->real->xCurrentTimeInt64(fv(v)->real, out);
}

}  // namespace

Status registerFaultVfs(const std::string& name, FaultPlan& plan) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<FaultVfs>> registered;
  std::lock_guard lock(mu);
  if (auto it = registered.find(name); it != registered.end()) {
    it->second->plan = &plan;
    return Status::ok();
  }
  sqlite3_vfs* base = sqlite3_vfs_find(nullptr);
  if (base == nullptr) return internalError("fault vfs: no default SQLite VFS");
  auto v = std::make_unique<FaultVfs>();
  v->real = base;
  v->plan = &plan;
  v->name = name;
  sqlite3_vfs& s = v->vfs;
  s.iVersion = 2;
  s.szOsFile = static_cast<int>(sizeof(FaultFile)) + base->szOsFile;
  s.mxPathname = base->mxPathname;
  s.zName = v->name.c_str();
  s.pAppData = v.get();
  s.xOpen = xOpen;
  s.xDelete = xDelete;
  s.xAccess = xAccess;
  s.xFullPathname = xFullPathname;
  s.xDlOpen = xDlOpen;
  s.xDlError = xDlError;
  s.xDlSym = xDlSym;
  s.xDlClose = xDlClose;
  s.xRandomness = xRandomness;
  s.xSleep = xSleep;
  s.xCurrentTime = xCurrentTime;
  s.xGetLastError = xGetLastError;
  s.xCurrentTimeInt64 = xCurrentTimeInt64;
  if (int rc = sqlite3_vfs_register(&s, 0); rc != SQLITE_OK) {
    return internalError("fault vfs " + name + ": " + sqlite3_errstr(rc));
  }
  registered.emplace(name, std::move(v));
  return Status::ok();
}

}  // namespace qabox::store
