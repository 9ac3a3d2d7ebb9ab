#include "store/json_columns.h"

#include <nlohmann/json.hpp>

#include "store/sqlite_stmt.h"

namespace qabox::store {

namespace {

using nlohmann::json;

Result<std::string> dump(const json& value, const std::string& where) {
  try {
    // Compact, UTF-8 kept as it is (not \u-escaped), control characters as
    // \n, \t ... or \u00xx: byte for byte what the rows in the field hold.
    return value.dump();
  } catch (const json::exception& e) {
    return invalidArgument(where + " is not valid UTF-8, which JSON text must be: " + e.what());
  }
}

Result<json> parse(std::string_view text, const std::string& where, const char* expected) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return dataLoss(where + " is not " + expected + ": " + e.what());
  }
}

}  // namespace

Result<std::string> encodeStringMap(const std::map<std::string, std::string>& map,
                                    const std::string& where) {
  return dump(json(map), where);
}

Result<std::string> encodeStringList(const std::vector<std::string>& list,
                                     const std::string& where) {
  return dump(json(list), where);
}

Result<std::map<std::string, std::string>> decodeStringMap(std::string_view text,
                                                           const std::string& where) {
  constexpr const char* kExpected = "a JSON object of strings";
  QABOX_ASSIGN_OR_RETURN(json value, parse(text, where, kExpected));
  if (!value.is_object()) return dataLoss(where + " is not " + kExpected);
  std::map<std::string, std::string> out;
  for (auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return dataLoss(where + " is not " + kExpected + ": the value of \"" + key +
                      "\" is not a string");
    }
    out.emplace(key, item.get<std::string>());
  }
  return out;
}

Result<std::vector<std::string>> decodeStringList(std::string_view text, const std::string& where) {
  constexpr const char* kExpected = "a JSON array of strings";
  QABOX_ASSIGN_OR_RETURN(json value, parse(text, where, kExpected));
  if (!value.is_array()) return dataLoss(where + " is not " + kExpected);
  std::vector<std::string> out;
  out.reserve(value.size());
  for (const auto& item : value) {
    if (!item.is_string()) {
      return dataLoss(where + " is not " + kExpected + ": item " + std::to_string(out.size()) +
                      " is not a string");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<std::string> encodePhases(const std::vector<PhaseTime>& phases) {
  json out = json::array();
  for (const PhaseTime& p : phases) out.push_back({{"phase", p.phase}, {"ms", p.took.count()}});
  try {
    return out.dump();
  } catch (const json::exception& e) {
    return invalidArgument(std::string("deploy phases: ") + e.what());
  }
}

Result<std::vector<PhaseTime>> decodePhases(std::string_view text, const std::string& where) {
  constexpr const char* kExpected = "a JSON array of {phase, ms}";
  QABOX_ASSIGN_OR_RETURN(json value, parse(text, where, kExpected));
  if (!value.is_array()) return dataLoss(where + " is not " + kExpected);
  std::vector<PhaseTime> out;
  for (const auto& item : value) {
    if (!item.is_object() || !item.contains("phase") || !item["phase"].is_string() ||
        !item.contains("ms") || !item["ms"].is_number_integer()) {
      return dataLoss(where + " is not " + kExpected + ": item " + std::to_string(out.size()));
    }
    out.push_back(
        {item["phase"].get<std::string>(), std::chrono::milliseconds(item["ms"].get<int64_t>())});
  }
  return out;
}

}  // namespace qabox::store
