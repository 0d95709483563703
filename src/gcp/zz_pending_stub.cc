// TEMPORARY (removed when src/gcp/credentials.cc lands): weak definitions so
// the tree links while the token provider is being written.
#include "gcp/credentials.h"

namespace logferry::gcp {
__attribute__((weak)) std::unique_ptr<TokenProvider> MakeTokenProvider(TokenOptions) {
  return nullptr;
}
namespace {
class FixedToken final : public TokenProvider {
 public:
  explicit FixedToken(std::string t) : t_(std::move(t)) {}
  StatusOr<AccessToken> Get() override { return AccessToken{t_, 0, "static"}; }

 private:
  std::string t_;
};
}  // namespace
__attribute__((weak)) std::unique_ptr<TokenProvider> MakeStaticTokenProvider(std::string t) {
  return std::make_unique<FixedToken>(std::move(t));
}
}  // namespace logferry::gcp
