#include "common/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <string>
#include <string_view>

#include "common/strings.h"

namespace logferry {
namespace {

class EscapingSink final : public spdlog::sinks::sink {
 public:
  explicit EscapingSink(std::shared_ptr<spdlog::sinks::sink> inner) : inner_(std::move(inner)) {}

  void log(const spdlog::details::log_msg& msg) override {
    std::string safe = EscapeForDisplay(std::string_view(msg.payload.data(), msg.payload.size()));
    if (safe.size() > kMaxLogMessageBytes) {
      size_t cut = kMaxLogMessageBytes;
      // Escaped text is valid UTF-8: back off to the start of a character.
      while (cut > 0 && (static_cast<unsigned char>(safe[cut]) & 0xC0) == 0x80) --cut;
      size_t dropped = safe.size() - cut;
      safe.resize(cut);
      safe += "… (" + std::to_string(dropped) + " more bytes not logged)";
    }
    spdlog::details::log_msg copy(msg);
    copy.payload = spdlog::string_view_t(safe.data(), safe.size());
    inner_->log(copy);
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    inner_->set_formatter(std::move(formatter));
  }

 private:
  std::shared_ptr<spdlog::sinks::sink> inner_;
};

}  // namespace

std::shared_ptr<spdlog::sinks::sink> MakeEscapingSink(std::shared_ptr<spdlog::sinks::sink> inner) {
  return std::make_shared<EscapingSink>(std::move(inner));
}

void InstallLogging(spdlog::level::level_enum level) {
  auto logger = spdlog::get("logferry");
  if (!logger) {
    auto sink = MakeEscapingSink(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    logger = std::make_shared<spdlog::logger>("logferry", std::move(sink));
    spdlog::register_logger(logger);
    spdlog::set_default_logger(logger);
  }
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(level);
}

}  // namespace logferry
