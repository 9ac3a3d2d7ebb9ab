#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace qabox {

// Codes mirror grpc::StatusCode so the server maps them one to one.
enum class Code {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

const char* codeName(Code code);

// An error is a value: a code and a message a person can act on. Messages
// name the thing and the rule, with no trailing period.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }

  bool isOk() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: ticket ..." for logs.
  std::string toString() const;

  // Prefixes the message with context: `Status(...).withContext("clone")`.
  Status withContext(const std::string& context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status invalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status failedPrecondition(std::string m) {
  return {Code::kFailedPrecondition, std::move(m)};
}
inline Status internalError(std::string m) { return {Code::kInternal, std::move(m)}; }
inline Status unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status resourceExhausted(std::string m) { return {Code::kResourceExhausted, std::move(m)}; }
inline Status deadlineExceeded(std::string m) { return {Code::kDeadlineExceeded, std::move(m)}; }
inline Status unimplemented(std::string m) { return {Code::kUnimplemented, std::move(m)}; }
inline Status alreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
inline Status aborted(std::string m) { return {Code::kAborted, std::move(m)}; }

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool isOk() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return isOk(); }

  const T& value() const& { return std::get<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  Status status() const { return isOk() ? Status::ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace qabox

// Returns early with the Status of an expression that failed.
#define QABOX_RETURN_IF_ERROR(expr)                  \
  do {                                               \
    ::qabox::Status qabox_status_ = (expr);          \
    if (!qabox_status_.isOk()) return qabox_status_; \
  } while (0)

#define QABOX_CONCAT_INNER(a, b) a##b
#define QABOX_CONCAT(a, b) QABOX_CONCAT_INNER(a, b)
// QABOX_ASSIGN_OR_RETURN(auto x, f()); declares x from a Result or returns its Status.
#define QABOX_ASSIGN_OR_RETURN(lhs, expr) \
  QABOX_ASSIGN_OR_RETURN_IMPL(QABOX_CONCAT(qabox_result_, __LINE__), lhs, expr)
#define QABOX_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.isOk()) return tmp.status();             \
  lhs = std::move(tmp).value()
