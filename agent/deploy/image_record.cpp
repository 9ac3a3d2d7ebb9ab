#include "deploy/image_record.h"

#include <nlohmann/json.hpp>

namespace qabox {

using nlohmann::json;

std::string imageRecordJson(const ImageVersion& im) {
  json j = {{"name", im.name},
            {"version", im.version},
            {"built_at", toUnixMillis(im.builtAt)},
            {"description", im.description},
            {"parent", im.parent},
            {"parent_version", im.parentVersion},
            {"recipe_hash", im.recipeHash}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<ImageVersion> parseImageRecord(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalidArgument("not a JSON object");
  try {
    ImageVersion im;
    im.name = j.at("name").get<std::string>();
    im.version = j.at("version").get<uint32_t>();
    im.builtAt = fromUnixMillis(j.value("built_at", int64_t{0}));
    im.description = j.value("description", "");
    im.parent = j.value("parent", "");
    im.parentVersion = j.value("parent_version", 0U);
    im.recipeHash = j.value("recipe_hash", "");
    if (im.name.empty() || im.version == 0) return invalidArgument("name and version must be set");
    return im;
  } catch (const json::exception& e) {
    return invalidArgument(e.what());
  }
}

}  // namespace qabox
