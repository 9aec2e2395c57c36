// index.json <-> image::Image. Parsing is strict: a missing or mistyped field is an error, never a default.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "image/model.h"

namespace bpfckpt::image {

nlohmann::json to_json_value(const Image& img);
Result<Image> from_json_value(const nlohmann::json& j);
Result<Image> parse_index(const std::string& text);

}  // namespace bpfckpt::image
