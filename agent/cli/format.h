#pragma once

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/message.h>
#include <google/protobuf/timestamp.pb.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qabox/v1/qabox.pb.h"

// Pure formatting: every function takes the message (and "now" where time is
// shown) and returns text, so the output is tested without a terminal or a
// server.
namespace qabox::cli {

using TimePoint = std::chrono::system_clock::time_point;

// Colours are decided once by the caller (terminal and NO_COLOR); the
// formatters only apply them.
struct Style {
  bool color = false;
};

// "45s", "3m", "2h", "5d": the largest whole unit, as tables want.
std::string shortDuration(std::chrono::milliseconds d);
// "3m ago" in the past, "in 2h" in the future, "-" when unset.
std::string relativeTime(const google::protobuf::Timestamp& t, TimePoint now);
// "2h" since `t`, "-" when unset.
std::string age(const google::protobuf::Timestamp& t, TimePoint now);
// "2024-05-01T10:22:03Z", "-" when unset.
std::string absoluteTime(const google::protobuf::Timestamp& t);
// "0.02s", "12.3s", "1m02s": how long a phase took.
std::string elapsed(std::chrono::milliseconds d);
std::chrono::milliseconds toMillis(const google::protobuf::Duration& d);
// "512 B", "1.5 KiB", "7.8 GiB".
std::string humanBytes(uint64_t bytes);

// Columns on screen: UTF-8 code points, not counting colour escapes.
size_t displayWidth(std::string_view s);
// Control characters from the agent would move the cursor or break a row.
std::string cleanCell(std::string_view s);
// Columns separated by three spaces, padded to the widest cell; no trailing
// blanks. Headers are printed as given.
std::string renderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows);
// "key:   value" lines with the values aligned.
std::string renderKeyValues(const std::vector<std::pair<std::string, std::string>>& rows);

std::string stateName(v1::Environment::State state);
std::string coloredState(v1::Environment::State state, const Style& style);
std::string shortCommit(std::string_view commit);

std::string formatEnvironmentTable(const v1::ListEnvironmentsResponse& list, TimePoint now,
                                   const Style& style = {});
// Every field as "key: value", then the events (most recent first as given).
std::string formatEnvironment(const v1::Environment& env, const v1::ListEventsResponse* events,
                              TimePoint now, const Style& style = {});
std::string formatEventsTable(const v1::ListEventsResponse& events, TimePoint now);
std::string formatImagesTable(const v1::ListImagesResponse& images, TimePoint now);
std::string formatHostStatus(const v1::HostStatus& status);
std::string formatHostsTable(const v1::ListHostsResponse& hosts);
// qabox check: KIND, NAME, WHAT, one row per violation; a line when clean.
std::string formatViolationsTable(const v1::CheckInvariantsResponse& checked);
std::string formatTokensTable(const v1::ListTokensResponse& tokens, TimePoint now);
std::string formatReap(const v1::ReapResponse& reap);
// "clone 0.02s" or "merge 0.31s  feature/x into develop".
std::string formatDeployPhase(const v1::DeployEvent& event);

// Protobuf JSON, one line, proto field names, zero values included.
std::string toJson(const google::protobuf::Message& message);

}  // namespace qabox::cli
