#pragma once

// Rows as the store's earlier hand-written JSON writer left them in the field,
// for the tests that check they still read back the same.

#include <map>
#include <string>
#include <vector>

namespace qabox::test {

// Exact bytes the earlier writer produced for kEnv and kKeys (copied from a
// database it wrote): escapes for '"', '\\' and the control characters
// (\u00xx in lower case), DEL and UTF-8 as they are, keys in byte order.
inline const std::string kOldEnvJson =
    R"({"BACK":"a\\b","CTRL":"tab\tnl\ncr\rbs\bff\f\u0001\u001f)"
    "\x7f"
    R"(","EMPTY":"","PLAIN":"value","QUOTE":"say \"hi\"","SLASH":"a/b","UNI":"gr)"
    "\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"
    R"(",")"
    "\xc3\xbcn\xc3\xaf"
    R"(":"k"})";
inline const std::string kOldKeysJson = R"(["QUOTE",")"
                                        "\xc3\xbcn\xc3\xaf"
                                        R"(","x\"y\\z\n"])";

inline const std::map<std::string, std::string> kEnv = {
    {"BACK", "a\\b"},
    {"CTRL", std::string("tab\tnl\ncr\rbs\bff\f") + '\x01' + '\x1f' + '\x7f'},
    {"EMPTY", ""},
    {"PLAIN", "value"},
    {"QUOTE", "say \"hi\""},
    {"SLASH", "a/b"},
    {"UNI", "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"},
    {"\xc3\xbcn\xc3\xaf", "k"},
};
inline const std::vector<std::string> kKeys = {"QUOTE", "\xc3\xbcn\xc3\xaf", "x\"y\\z\n"};

}  // namespace qabox::test
