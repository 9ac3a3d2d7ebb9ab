#include "init/app_env.h"

#include <map>

namespace qabox::init {
namespace {

constexpr size_t kMaxErrors = 20;
constexpr size_t kMaxKey = 256;
constexpr const char* kPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool keyStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool keyChar(char c) { return keyStart(c) || (c >= '0' && c <= '9'); }
// What a shell takes literally outside quotes.
bool plainChar(char c) {
  return keyChar(c) || c == '.' || c == '/' || c == ':' || c == '@' || c == '%' || c == '+' ||
         c == ',' || c == '-' || c == '=';
}

class Reader {
 public:
  explicit Reader(std::string_view text) : t_(text) {}

  AppEnv run() {
    while (i_ < t_.size()) line();
    return std::move(out_);
  }

 private:
  void line() {
    const size_t startLine = line_;
    if (t_[i_] == '\n') return advanceLine();
    if (t_[i_] == '#') return skipLine();
    if (t_.substr(i_, 7) == "export ") i_ += 7;
    size_t k = i_;
    while (k < t_.size() && keyChar(t_[k]) && k - i_ <= kMaxKey) ++k;
    if (k == i_ || !keyStart(t_[i_]) || k - i_ > kMaxKey || k >= t_.size() || t_[k] != '=') {
      return fail(startLine, "not KEY='value'");
    }
    std::string key(t_.substr(i_, k - i_));
    i_ = k + 1;
    std::string value;
    if (!readValue(value, startLine)) return;
    out_.vars.emplace_back(std::move(key), std::move(value));
  }

  // Up to the unquoted end of line; false (reported) when malformed.
  bool readValue(std::string& value, size_t startLine) {
    while (i_ < t_.size() && t_[i_] != '\n') {
      char c = t_[i_];
      if (c == '\'') {
        size_t end = t_.find('\'', i_ + 1);
        if (end == std::string_view::npos) {
          i_ = t_.size();
          fail(startLine, "a quote is not closed");
          return false;
        }
        std::string_view part = t_.substr(i_ + 1, end - i_ - 1);
        for (char p : part) line_ += p == '\n';
        value.append(part);
        i_ = end + 1;
      } else if (c == '\\' && i_ + 1 < t_.size() && t_[i_ + 1] != '\n') {
        value += t_[i_ + 1];
        i_ += 2;
      } else if (plainChar(c)) {
        value += c;
        ++i_;
      } else {
        fail(startLine, std::string("unexpected ") + describe(c));
        return false;
      }
    }
    if (i_ < t_.size()) advanceLine();
    return true;
  }

  static std::string describe(char c) {
    if (c == ' ' || c == '\t') return "space (quote the value)";
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return "byte " + std::to_string(static_cast<unsigned char>(c));
    }
    return std::string("'") + c + "'";
  }

  void fail(size_t atLine, const std::string& why) {
    if (out_.errors.size() < kMaxErrors) {
      out_.errors.push_back("app.env: line " + std::to_string(atLine) + ": " + why +
                            "; the line is skipped");
    }
    skipLine();
  }

  void skipLine() {
    size_t nl = t_.find('\n', i_);
    i_ = nl == std::string_view::npos ? t_.size() : nl;
    if (i_ < t_.size()) advanceLine();
  }

  void advanceLine() {
    ++i_;
    ++line_;
  }

  std::string_view t_;
  size_t i_ = 0;
  size_t line_ = 1;
  AppEnv out_;
};

}  // namespace

AppEnv parseAppEnv(std::string_view text) { return Reader(text).run(); }

std::vector<std::string> processEnvironment(const AppEnv& env, const std::string& home) {
  std::map<std::string, std::string> vars{{"PATH", kPath}, {"HOME", home}};
  for (const auto& [k, v] : env.vars) {
    if (v.find('\0') == std::string::npos) vars[k] = v;
  }
  std::vector<std::string> out;
  out.reserve(vars.size());
  for (const auto& [k, v] : vars) out.push_back(k + "=" + v);
  return out;
}

}  // namespace qabox::init
