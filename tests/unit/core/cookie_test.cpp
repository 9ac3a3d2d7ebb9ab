#include "core/cookie.h"

#include <gtest/gtest.h>

#include "core/url.h"

namespace qabox {
namespace {

using std::chrono::seconds;

TEST(CookieTest, ValuesOfOneNameInOrder) {
  auto v = cookieValues("a=1; qabox_session=x.y; b=2;qabox_session=\"z\"", "qabox_session");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], "x.y");
  EXPECT_EQ(v[1], "z");
  EXPECT_TRUE(cookieValues("", "qabox_session").empty());
  EXPECT_TRUE(cookieValues("qabox_session", "qabox_session").empty());  // no '=': no value
  EXPECT_TRUE(cookieValues("xqabox_session=1", "qabox_session").empty());
}

TEST(CookieTest, TlsNamesCarryTheHostPrefix) {
  EXPECT_EQ(cookieName(kSessionCookie, true), "__Host-qabox_session");
  EXPECT_EQ(cookieName(kPreviewCookie, false), "qabox_preview");
}

TEST(CookieTest, StripsOnlyQaboxsCookies) {
  EXPECT_EQ(withoutQaboxCookies("a=1; qabox_session=s; __Host-qabox_preview=p; qabox_previewx=3; "
                                "b=2; qabox_preview=q"),
            "a=1; qabox_previewx=3; b=2");
  EXPECT_EQ(withoutQaboxCookies("qabox_session=s"), "");
  EXPECT_EQ(withoutQaboxCookies(" qabox_session = s ;"), "");
  EXPECT_EQ(withoutQaboxCookies("a=1;;b=2"), "a=1; b=2");
}

TEST(CookieTest, SetCookieIsHttpOnlyLaxAndSecureOverTls) {
  EXPECT_EQ(setCookie("qabox_session", "v", seconds(60), false),
            "qabox_session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=60");
  EXPECT_EQ(setCookie("__Host-qabox_session", "v", seconds(0), true),
            "__Host-qabox_session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure");
}

TEST(UrlTest, EncodesAndDecodes) {
  EXPECT_EQ(urlEncode("http://a.b/c?d=e f"), "http%3A%2F%2Fa.b%2Fc%3Fd%3De%20f");
  EXPECT_EQ(urlDecode("http%3A%2F%2Fa.b%2Fc%3Fd%3De%20f+g"), "http://a.b/c?d=e f g");
  EXPECT_EQ(urlDecode("%"), std::nullopt);
  EXPECT_EQ(urlDecode("%4"), std::nullopt);
  EXPECT_EQ(urlDecode("%zz"), std::nullopt);
  EXPECT_EQ(urlDecode("a%0d%0aSet-Cookie:x"), std::nullopt);  // header injection
  EXPECT_EQ(urlDecode("%00"), std::nullopt);
}

TEST(UrlTest, QueryParam) {
  EXPECT_EQ(queryParam("a=1&grant=x.y&next=%2F", "grant"), "x.y");
  EXPECT_EQ(queryParam("a=1&a=2", "a"), "1");
  EXPECT_EQ(queryParam("flag&b=1", "flag"), "");
  EXPECT_EQ(queryParam("ab=1", "a"), std::nullopt);
}

TEST(UrlTest, LocalPathsOnly) {
  EXPECT_TRUE(isLocalPath("/"));
  EXPECT_TRUE(isLocalPath("/orders?id=3#x"));
  EXPECT_FALSE(isLocalPath(""));
  EXPECT_FALSE(isLocalPath("//evil.example/"));
  EXPECT_FALSE(isLocalPath("/\\evil.example/"));
  EXPECT_FALSE(isLocalPath("http://evil.example/"));
  EXPECT_FALSE(isLocalPath("/a\\b"));
  EXPECT_FALSE(isLocalPath("/a b"));
  EXPECT_FALSE(isLocalPath("/a\r\nLocation: x"));
}

}  // namespace
}  // namespace qabox
