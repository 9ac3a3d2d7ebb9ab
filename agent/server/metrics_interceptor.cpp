#include "server/metrics_interceptor.h"

#include "metrics/metrics.h"
#include "server/auth.h"

namespace qabox {
namespace {

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(grpc::experimental::ServerRpcInfo* info, Metrics& metrics)
      : rpc_(rpcLabel(info->method())), metrics_(metrics) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_.apiCall(rpc_, static_cast<int>(methods->GetSendStatus().error_code()));
    }
    methods->Proceed();
  }

 private:
  std::string rpc_;
  Metrics& metrics_;
};

}  // namespace

std::string rpcLabel(std::string_view fullMethod) {
  if (fullMethod.substr(0, kServicePrefix.size()) != kServicePrefix) return "unknown";
  std::string_view rpc = fullMethod.substr(kServicePrefix.size());
  for (const auto& a : kRpcAccess) {
    if (a.rpc == rpc) return std::string(a.rpc);
  }
  return "unknown";
}

grpc::experimental::Interceptor* MetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new MetricsInterceptor(info, metrics_);
}

}  // namespace qabox
