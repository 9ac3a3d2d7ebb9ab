#include "cli/exit_code.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace qabox::cli {
namespace {

TEST(ExitCode, EveryGrpcCodeHasAStableExitCode) {
  const std::map<grpc::StatusCode, int> expected = {
      {grpc::StatusCode::OK, 0},
      {grpc::StatusCode::CANCELLED, 1},
      {grpc::StatusCode::UNKNOWN, 1},
      {grpc::StatusCode::INVALID_ARGUMENT, 1},
      {grpc::StatusCode::DEADLINE_EXCEEDED, 6},
      {grpc::StatusCode::NOT_FOUND, 3},
      {grpc::StatusCode::ALREADY_EXISTS, 4},
      {grpc::StatusCode::PERMISSION_DENIED, 5},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, 1},
      {grpc::StatusCode::FAILED_PRECONDITION, 4},
      {grpc::StatusCode::ABORTED, 4},
      {grpc::StatusCode::OUT_OF_RANGE, 1},
      {grpc::StatusCode::UNIMPLEMENTED, 1},
      {grpc::StatusCode::INTERNAL, 1},
      {grpc::StatusCode::UNAVAILABLE, 6},
      {grpc::StatusCode::DATA_LOSS, 1},
      {grpc::StatusCode::UNAUTHENTICATED, 5},
  };
  for (int c = 0; c <= 16; ++c) {
    auto code = static_cast<grpc::StatusCode>(c);
    ASSERT_EQ(expected.count(code), 1u) << c;
    EXPECT_EQ(exitCodeFor(code), expected.at(code)) << statusCodeName(code);
  }
}

TEST(ExitCode, NamesAreTheCanonicalOnes) {
  EXPECT_EQ(statusCodeName(grpc::StatusCode::FAILED_PRECONDITION), "FAILED_PRECONDITION");
  EXPECT_EQ(statusCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
  EXPECT_EQ(statusCodeName(grpc::StatusCode::OK), "OK");
}

TEST(ExitCode, HelpDocumentsEveryCode) {
  std::string help = kExitCodeHelp;
  for (int code = 0; code <= 7; ++code) {
    EXPECT_NE(help.find("  " + std::to_string(code) + "  "), std::string::npos) << code;
  }
  EXPECT_NE(help.find("deploy failed"), std::string::npos);
}

}  // namespace
}  // namespace qabox::cli
