#pragma once

// A second interceptor beside auth's: counts every API call by RPC and gRPC
// code in qabox_api_calls_total. The RPC label is a name from kRpcAccess, or
// "unknown" for any other method a client names.

#include <grpcpp/support/server_interceptor.h>

#include <string>
#include <string_view>

namespace qabox {

class Metrics;

// "/qabox.v1.Qabox/Deploy" -> "Deploy"; a method not in kRpcAccess -> "unknown".
std::string rpcLabel(std::string_view fullMethod);

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(Metrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  Metrics& metrics_;
};

}  // namespace qabox
