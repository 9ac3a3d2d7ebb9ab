#pragma once

// What an image version carries about itself: `images/<name>-v<N>/image.json`,
// beside its lxc config, written when its build ends. It is what its row in
// the images table holds, so `qaboxd --rebuild-state` can rebuild the row
// (with its parent and recipe hash) when qabox.db is lost.

#include <string>
#include <string_view>

#include "core/status.h"
#include "store/store.h"

namespace qabox {

std::string imageRecordJson(const ImageVersion& image);
// INVALID_ARGUMENT naming the field for anything that is not such a record.
Result<ImageVersion> parseImageRecord(std::string_view text);

inline std::string imageRecordPath(const std::string& versionDir) {
  return versionDir + "/image.json";
}

}  // namespace qabox
